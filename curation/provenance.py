"""Which member of a duplicate group the others were derived from.

A copy made from a photo carries traces of how it was made; the keeper rules of
:func:`restorelab.curation.dedup.choose_keeper` use them before size and file format, so
that a group keeps the source rather than its best-looking file:

- **JPEG trace** (:func:`jpeg_trace`): a JPEG's decoded pixels have 8×8 block DCT
  coefficients on the lattice of its quantisation table. A re-encode of those pixels at a
  higher quality (q85 → q98), or a lossless copy (PNG) of them, keeps that lattice: its
  coefficients sit near multiples of the source's steps. An unrelated or original picture
  has a smooth coefficient distribution. The trace is the mean, over the usable positions,
  of ``|mean over blocks of exp(2πi·c / Q)|``: near 1 on the lattice, near 0 off it.
- **Mode** (:func:`derived_mode`): a file with an alpha channel (composited on white when
  decoded) or in CMYK was converted from a plain RGB picture; it loses to a plain member
  of the same or larger size.
- **Tone comb** (:func:`tone_comb`): a brightness, contrast or gamma change of 8-bit pixels
  leaves empty or doubled levels (a comb) in the channel histograms; the smooth-histogram
  member of the same size is the source.

Measured on scikit-image's photos (``tests/test_curation.py``): JPEG trace 0.55–0.95 for
q85/q75 sources re-encoded at q95–q98 or saved as PNG, ≤ 0.12 for the reverse direction and
for unrelated pairs; tone comb ≤ 0.06 for photos and their JPEG or PNG copies, 0.2–0.6
after a ±10 % brightness change or alpha-200 compositing saved losslessly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: A copy is derived from a JPEG when its trace of that JPEG's table reaches this.
MIN_JPEG_TRACE = 0.3
#: Quantiser steps below this are too fine to leave a trace (rounding noise is ~0.5-1).
MIN_TRACE_STEP = 4
#: A position is usable when the copy's mean |coefficient| is at least this many steps
#: (natural coefficients then spread over many lattice cells: off-lattice score ~0.01).
MIN_SPREAD_STEPS = 1.5
#: Fewer usable positions than this: no conclusion.
MIN_TRACE_POSITIONS = 3
#: Most 8×8 blocks used (evenly spaced).
MAX_TRACE_BLOCKS = 20_000
#: A member is tone-shifted when its comb exceeds this and twice the other's plus a margin.
MIN_TONE_COMB, TONE_COMB_MARGIN = 0.12, 0.04
#: Pillow modes that are converted (composited or colour-converted) when decoded.
DERIVED_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La", "CMYK"})


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)[:, None]
    n = np.arange(8)[None, :]
    matrix = np.cos(np.pi * k * (2 * n + 1) / 16.0) * np.sqrt(2.0 / 8.0)
    matrix[0] /= np.sqrt(2.0)
    return matrix


_DCT8 = _dct_matrix()


def block_dct(luma: np.ndarray, *, max_blocks: int = MAX_TRACE_BLOCKS) -> np.ndarray:
    """Orthonormal 8×8 DCT (JPEG's, level-shifted by 128) of up to ``max_blocks`` blocks.

    Parameters
    ----------
    luma : ndarray, shape (H, W)
        Luma in 0–255 (any real dtype); blocks start at (0, 0), as JPEG's do.

    Returns
    -------
    ndarray of float64, shape (N, 64)
        Coefficients per block, natural (row-major) order; evenly spaced blocks when the image
        has more than ``max_blocks``.
    """
    h, w = (luma.shape[0] // 8) * 8, (luma.shape[1] // 8) * 8
    if h == 0 or w == 0:
        return np.zeros((0, 64))
    grid = np.asarray(luma[:h, :w], np.float64).reshape(h // 8, 8, w // 8, 8)
    blocks = grid.transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    if len(blocks) > max_blocks:
        blocks = blocks[np.linspace(0, len(blocks) - 1, max_blocks).astype(np.int64)]
    coeffs = _DCT8 @ (blocks - 128.0) @ _DCT8.T
    return coeffs.reshape(-1, 64)


def jpeg_trace(
    pixels: np.ndarray, table: np.ndarray, own_table: np.ndarray | None = None
) -> float | None:
    """How strongly ``pixels`` keep the quantisation lattice of a JPEG with luma ``table``.

    Parameters
    ----------
    pixels : ndarray of uint8, shape (H, W, 3)
        The candidate copy, decoded, the same size as the JPEG (blocks aligned at (0, 0)).
    table : array_like of int, shape (64,)
        The JPEG's luma quantisation table, natural order.
    own_table : array_like of int, shape (64,), optional
        The copy's own luma table when it is a JPEG: positions where its own step is not
        finer than ``table``'s are left out (its own lattice would explain them).

    Returns
    -------
    float or None
        0–1 (see the module docstring); None when fewer than :data:`MIN_TRACE_POSITIONS`
        positions are usable (steps ≥ :data:`MIN_TRACE_STEP` and coefficients spread over
        ≥ :data:`MIN_SPREAD_STEPS` steps).
    """
    table = np.asarray(table, np.float64).ravel()
    luma = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    coeffs = block_dct(luma)
    if len(coeffs) < 16:
        return None
    usable = table >= MIN_TRACE_STEP
    if own_table is not None:
        usable &= np.asarray(own_table, np.float64).ravel() < table
    usable &= np.abs(coeffs).mean(axis=0) >= MIN_SPREAD_STEPS * table
    positions = np.flatnonzero(usable)
    if positions.size < MIN_TRACE_POSITIONS:
        return None
    phase = 2.0 * np.pi * coeffs[:, positions] / table[positions]
    strength = np.hypot(np.cos(phase).mean(axis=0), np.sin(phase).mean(axis=0))
    return float(strength.mean())


def derived_mode(mode: str | None) -> bool:
    """True for file modes that a photo's source never has (alpha, CMYK): converted copies."""
    return mode in DERIVED_MODES


def tone_comb(pixels: np.ndarray) -> float:
    """How combed (gaps and spikes) the channel histograms are: 0 smooth, ~0.2+ after a tone
    change of 8-bit pixels.

    Per channel, over the levels between its 0.5th and 99.5th percentiles, the sum of
    ``|h − smooth(h)|`` (a 5-level moving average) over the sum of ``h``; the mean of the
    three channels. Natural photos measure a few hundredths (sampling noise of the counts).
    """
    histograms = [
        cv2.calcHist([channel], [0], None, [256], [0, 256]).ravel()
        for channel in cv2.split(np.ascontiguousarray(pixels))
    ]
    return tone_comb_of_histograms(histograms)


def tone_comb_of_histograms(histograms: list[np.ndarray]) -> float:
    """:func:`tone_comb` from the three channel histograms (256 counts each)."""
    combs = []
    for hist in histograms:
        counts = np.asarray(hist, np.float64).ravel()
        total = counts.sum()
        if total <= 0:
            continue
        cumulative = np.cumsum(counts) / total
        low = int(np.searchsorted(cumulative, 0.005))
        high = int(np.searchsorted(cumulative, 0.995))
        if high - low < 16:
            continue
        smooth = np.convolve(counts, np.ones(5) / 5.0, mode="same")
        inside = slice(low + 2, high - 1)
        mass = counts[inside].sum()
        if mass > 0:
            combs.append(float(np.abs(counts[inside] - smooth[inside]).sum() / mass))
    return float(np.mean(combs)) if combs else 0.0


def tone_shifted(comb: float | None, other_comb: float | None) -> bool:
    """True when a member with ``comb`` is a tone-shifted copy of one with ``other_comb``."""
    if comb is None or other_comb is None or not math.isfinite(comb):
        return False
    return comb >= MIN_TONE_COMB and comb > 2.0 * other_comb + TONE_COMB_MARGIN
