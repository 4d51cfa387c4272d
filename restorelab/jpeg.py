"""JPEG format facts shared by the curation signals and the degradation zoo.

The IJG (libjpeg) quantisation tables and quality scaling, and the zig-zag coefficient order.
Pure data and small functions; no codec.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "IJG_CHROMA_TABLE",
    "IJG_LUMA_TABLE",
    "ZIGZAG_TO_NATURAL",
    "ijg_scale_factor",
    "ijg_tables",
]

#: ITU-T T.81 Annex K, table K.1: luminance quantisation table, natural (row-major) order.
IJG_LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
).ravel()

#: ITU-T T.81 Annex K, table K.2: chrominance quantisation table, natural order.
IJG_CHROMA_TABLE = np.full((8, 8), 99, dtype=np.int64)
IJG_CHROMA_TABLE[:4, :4] = [
    [17, 18, 24, 47],
    [18, 21, 26, 66],
    [24, 26, 56, 99],
    [47, 66, 99, 99],
]
IJG_CHROMA_TABLE = IJG_CHROMA_TABLE.ravel()


def _zigzag_to_natural() -> np.ndarray:
    """Natural (row-major) index of each coefficient in the JPEG zig-zag order."""
    cells = [(i, j) for i in range(8) for j in range(8)]
    cells.sort(key=lambda c: (c[0] + c[1], c[0] if (c[0] + c[1]) % 2 else -c[0]))
    return np.array([8 * i + j for i, j in cells], dtype=np.intp)


#: ``ZIGZAG_TO_NATURAL[k]`` is the natural (row-major) index of the k-th zig-zag coefficient.
ZIGZAG_TO_NATURAL = _zigzag_to_natural()


def ijg_scale_factor(quality: int) -> int:
    """libjpeg's percentage scale for a quality (``jpeg_quality_scaling`` in ``jcparam.c``).

    Quality is clamped to 1–100; below 50 the scale is ``5000 // q``, from 50 on ``200 − 2q``.

    Examples
    --------
    >>> [ijg_scale_factor(q) for q in (1, 30, 50, 75, 100)]
    [5000, 166, 100, 50, 0]
    """
    quality = min(100, max(1, int(quality)))
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def ijg_tables(quality: int, *, baseline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The luminance and chrominance tables libjpeg writes for ``quality`` (natural order).

    Each entry is ``(base · scale + 50) // 100`` clamped to 1–255 (``baseline``, as Pillow and
    most encoders force) or 1–32767.

    Examples
    --------
    >>> luma_q, chroma_q = ijg_tables(90)
    >>> luma_q[:8].tolist(), chroma_q[:4].tolist()
    ([3, 2, 2, 3, 5, 8, 10, 12], [3, 4, 5, 9])
    """
    scale = ijg_scale_factor(quality)
    top = 255 if baseline else 32767
    return tuple(  # type: ignore[return-value]
        np.clip((base * scale + 50) // 100, 1, top) for base in (IJG_LUMA_TABLE, IJG_CHROMA_TABLE)
    )
