"""A baseline JPEG encode + decode round trip in torch, integer for integer as libjpeg-turbo.

:func:`jpeg_roundtrip_batch` reproduces what Pillow (libjpeg-turbo) gives for
``Image.save(format="JPEG", quality=q)`` followed by decoding, on a whole batch at once and on
any device, so the JPEG op of the zoo runs on the GPU. Every stage uses libjpeg's default
integer arithmetic, so the decoded bytes are the same as Pillow's, not just close:

1. RGB → YCbCr, JFIF equations in libjpeg's 16-bit fixed point (``jccolor.c``).
2. Chroma 4:2:0: the planes are padded to an even number of rows and to whole 16-px MCUs
   across by repeating the last row and column, each 2×2 cell is averaged as
   ``(a + b + c + d + bias) >> 2`` with the bias alternating 1, 2 along a row (``jcsample.c``,
   ``h2v2_downsample``), and the last downsampled row is repeated down to whole blocks
   (``jcprepct.c``). Partial luma blocks repeat the last row and column.
3. The "islow" forward DCT (``jfdctint.c``, Loeffler–Ligtenberg–Moschytz with 13-bit
   constants; output scaled by 8), then quantisation by ``8 · Q`` rounding half away from
   zero, with the IJG tables scaled for ``quality`` and clamped to 1–255 (``force_baseline``,
   as Pillow asks). :func:`restorelab.jpeg.ijg_tables` gives the tables.
4. Dequantisation and the "islow" inverse DCT (``jidctint.c``), level shift and clamp to
   0–255.
5. "Fancy" (triangular) chroma upsampling, ``(3 · near + far + 8 or 7) >> 4`` in both
   directions with the edge rows and columns repeated (``jdsample.c``, ``h2v2_fancy_upsample``).
6. YCbCr → RGB in libjpeg's fixed point (``jdcolor.c``), clamped to 0–255.

The arithmetic is ``int32`` on the batch's device (every intermediate of the 8-bit islow
transforms fits in 31 bits). The entropy coding is lossless and is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from restorelab.jpeg import ijg_tables

__all__ = ["jpeg_roundtrip_batch", "rgb_to_ycbcr_jpeg", "ycbcr_to_rgb_jpeg"]

_SCALEBITS = 16  # jccolor.c / jdcolor.c fixed point
_ONE_HALF = 1 << (_SCALEBITS - 1)
_CBCR_OFFSET = 128 << _SCALEBITS

_CONST_BITS = 13  # jfdctint.c / jidctint.c, 8-bit samples
_PASS1_BITS = 2


def _fix(value: float) -> int:
    """libjpeg's ``FIX(x)``: ``x`` in fixed point with :data:`_SCALEBITS` fraction bits."""
    return int(value * (1 << _SCALEBITS) + 0.5)


# 13-bit DCT constants, FIX(x) with CONST_BITS = 13, as the islow sources list them.
_F0_298 = 2446
_F0_390 = 3196
_F0_541 = 4433
_F0_765 = 6270
_F0_899 = 7373
_F1_175 = 9633
_F1_501 = 12299
_F1_847 = 15137
_F1_961 = 16069
_F2_053 = 16819
_F2_562 = 20995
_F3_072 = 25172


def _descale(value: torch.Tensor, bits: int) -> torch.Tensor:
    """``(x + 2**(bits-1)) >> bits``: divide by 2**bits rounding half up (arithmetic shift)."""
    return (value + (1 << (bits - 1))) >> bits


# ---------------------------------------------------------------------------------------------
# colour


def rgb_to_ycbcr_jpeg(rgb: torch.Tensor) -> torch.Tensor:
    """Integer RGB (..., 3, H, W) in 0–255 → Y, Cb, Cr (..., 3, H, W) as libjpeg computes them.

    ``Y = (19595 R + 38470 G + 7471 B + 2**15) >> 16``; Cb and Cr add ``128 · 2**16 + 2**15 - 1``
    before the shift (JFIF coefficients in ``FIX`` form; ``rgb_ycc_convert``).
    """
    r, g, b = rgb.to(torch.int32).unbind(-3)
    y = (_fix(0.29900) * r + _fix(0.58700) * g + _fix(0.11400) * b + _ONE_HALF) >> _SCALEBITS
    bias = _CBCR_OFFSET + _ONE_HALF - 1
    cb = (-_fix(0.16874) * r - _fix(0.33126) * g + _fix(0.5) * b + bias) >> _SCALEBITS
    cr = (_fix(0.5) * r - _fix(0.41869) * g - _fix(0.08131) * b + bias) >> _SCALEBITS
    return torch.stack((y, cb, cr), dim=-3)


def ycbcr_to_rgb_jpeg(ycc: torch.Tensor) -> torch.Tensor:
    """Integer Y, Cb, Cr (..., 3, H, W) → RGB (..., 3, H, W) ``int32`` clamped to 0–255.

    libjpeg's ``ycc_rgb_convert``: ``R = Y + ((91881 · Cr' + 2**15) >> 16)``,
    ``B = Y + ((116130 · Cb' + 2**15) >> 16)``,
    ``G = Y + ((-22554 · Cb' - 46802 · Cr' + 2**15) >> 16)`` with ``Cb' = Cb - 128``.
    """
    y, cb, cr = ycc.to(torch.int32).unbind(-3)
    cb, cr = cb - 128, cr - 128
    r = y + ((_fix(1.40200) * cr + _ONE_HALF) >> _SCALEBITS)
    b = y + ((_fix(1.77200) * cb + _ONE_HALF) >> _SCALEBITS)
    g = y + ((-_fix(0.34414) * cb - _fix(0.71414) * cr + _ONE_HALF) >> _SCALEBITS)
    return torch.stack((r, g, b), dim=-3).clamp_(0, 255)


# ---------------------------------------------------------------------------------------------
# chroma resampling


def _replicate_to(plane: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Extend (..., h, w) to (..., height, width) by repeating the last row and column."""
    h, w = plane.shape[-2:]
    rows = torch.arange(height, device=plane.device).clamp_(max=h - 1)
    cols = torch.arange(width, device=plane.device).clamp_(max=w - 1)
    return plane.index_select(-2, rows).index_select(-1, cols)


def _round_up(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _downsample_h2v2(plane: torch.Tensor) -> torch.Tensor:
    """2×2 average with libjpeg's alternating bias 1, 2, 1, 2 … along each output row."""
    h, w = plane.shape[-2:]
    cells = plane.reshape(*plane.shape[:-2], h // 2, 2, w // 2, 2).sum(dim=(-3, -1))
    bias = torch.ones(w // 2, dtype=plane.dtype, device=plane.device)
    bias[1::2] = 2
    return (cells + bias) >> 2


def _upsample_h2v2_fancy(plane: torch.Tensor) -> torch.Tensor:
    """Triangular 2× upsampling of (..., h, w) → (..., 2h, 2w), as ``h2v2_fancy_upsample``.

    Vertically each output row sums ``3 · nearest + next nearest`` input row; horizontally
    output ``2j`` is ``(3 · s[j] + s[j-1] + 8) >> 4`` and ``2j + 1`` is
    ``(3 · s[j] + s[j+1] + 7) >> 4``. Rows and columns past the edge repeat the edge, which
    gives libjpeg's special cases for the first and last row and column.
    """
    h, w = plane.shape[-2:]
    rows = torch.arange(h, device=plane.device)
    above = plane.index_select(-2, (rows - 1).clamp_(min=0))
    below = plane.index_select(-2, (rows + 1).clamp_(max=h - 1))
    three = 3 * plane
    sums = torch.stack((three + above, three + below), dim=-2).flatten(-3, -2)  # (..., 2h, w)
    cols = torch.arange(w, device=plane.device)
    left = sums.index_select(-1, (cols - 1).clamp_(min=0))
    right = sums.index_select(-1, (cols + 1).clamp_(max=w - 1))
    three = 3 * sums
    even = (three + left + 8) >> 4
    odd = (three + right + 7) >> 4
    return torch.stack((even, odd), dim=-1).flatten(-2)


# ---------------------------------------------------------------------------------------------
# blocks and the islow DCT


def _to_blocks(plane: torch.Tensor) -> torch.Tensor:
    """(..., 8m, 8n) → (..., m, n, 8, 8)."""
    h, w = plane.shape[-2:]
    blocks = plane.reshape(*plane.shape[:-2], h // 8, 8, w // 8, 8)
    return blocks.transpose(-3, -2)


def _from_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """(..., m, n, 8, 8) → (..., 8m, 8n)."""
    m, n = blocks.shape[-4:-2]
    return blocks.transpose(-3, -2).reshape(*blocks.shape[:-4], 8 * m, 8 * n)


def _fdct_1d(d: list[torch.Tensor], first_pass: bool) -> list[torch.Tensor]:
    """One pass of ``jpeg_fdct_islow`` over eight sample vectors (a row or a column)."""
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    bits = _CONST_BITS - _PASS1_BITS if first_pass else _CONST_BITS + _PASS1_BITS
    if first_pass:
        out0, out4 = (tmp10 + tmp11) << _PASS1_BITS, (tmp10 - tmp11) << _PASS1_BITS
    else:
        out0, out4 = _descale(tmp10 + tmp11, _PASS1_BITS), _descale(tmp10 - tmp11, _PASS1_BITS)
    z1 = (tmp12 + tmp13) * _F0_541
    out2 = _descale(z1 + tmp13 * _F0_765, bits)
    out6 = _descale(z1 - tmp12 * _F1_847, bits)
    z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
    z5 = (z3 + z4) * _F1_175
    tmp4, tmp5, tmp6, tmp7 = tmp4 * _F0_298, tmp5 * _F2_053, tmp6 * _F3_072, tmp7 * _F1_501
    z1, z2 = z1 * -_F0_899, z2 * -_F2_562
    z3, z4 = z3 * -_F1_961 + z5, z4 * -_F0_390 + z5
    out7 = _descale(tmp4 + z1 + z3, bits)
    out5 = _descale(tmp5 + z2 + z4, bits)
    out3 = _descale(tmp6 + z2 + z3, bits)
    out1 = _descale(tmp7 + z1 + z4, bits)
    return [out0, out1, out2, out3, out4, out5, out6, out7]


def _idct_1d(d: list[torch.Tensor], first_pass: bool) -> list[torch.Tensor]:
    """One pass of ``jpeg_idct_islow`` over eight coefficient vectors (columns, then rows)."""
    z1 = (d[2] + d[6]) * _F0_541
    tmp2 = z1 - d[6] * _F1_847
    tmp3 = z1 + d[2] * _F0_765
    tmp0 = (d[0] + d[4]) << _CONST_BITS
    tmp1 = (d[0] - d[4]) << _CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    tmp0, tmp1, tmp2, tmp3 = d[7], d[5], d[3], d[1]
    z1, z2, z3, z4 = tmp0 + tmp3, tmp1 + tmp2, tmp0 + tmp2, tmp1 + tmp3
    z5 = (z3 + z4) * _F1_175
    tmp0, tmp1, tmp2, tmp3 = tmp0 * _F0_298, tmp1 * _F2_053, tmp2 * _F3_072, tmp3 * _F1_501
    z1, z2 = z1 * -_F0_899, z2 * -_F2_562
    z3, z4 = z3 * -_F1_961 + z5, z4 * -_F0_390 + z5
    tmp0 = tmp0 + z1 + z3
    tmp1 = tmp1 + z2 + z4
    tmp2 = tmp2 + z2 + z3
    tmp3 = tmp3 + z1 + z4
    bits = _CONST_BITS - _PASS1_BITS if first_pass else _CONST_BITS + _PASS1_BITS + 3
    pairs = ((tmp10, tmp3), (tmp11, tmp2), (tmp12, tmp1), (tmp13, tmp0))
    head = [_descale(a + b, bits) for a, b in pairs]
    tail = [_descale(a - b, bits) for a, b in reversed(pairs)]
    return head + tail


def _separable(blocks: torch.Tensor, transform: Callable, first_dim: int) -> torch.Tensor:
    """A 1-D 8-point ``transform`` along ``first_dim`` (-1 rows, -2 columns), then the other."""
    out = torch.stack(transform(list(blocks.unbind(first_dim)), True), dim=first_dim)
    second = -2 if first_dim == -1 else -1
    return torch.stack(transform(list(out.unbind(second)), False), dim=second)


def fdct_islow(blocks: torch.Tensor) -> torch.Tensor:
    """libjpeg's integer forward DCT of level-shifted samples (..., 8, 8) → coefficients × 8.

    Rows first, then columns, as ``jpeg_fdct_islow``; ``int32`` in and out.
    """
    return _separable(blocks, _fdct_1d, -1)


def idct_islow(coefficients: torch.Tensor) -> torch.Tensor:
    """libjpeg's integer inverse DCT of dequantised coefficients (..., 8, 8) → samples − 128.

    Columns first, then rows, as ``jpeg_idct_islow``; the caller adds 128 and clamps.
    """
    return _separable(coefficients, _idct_1d, -2)


@lru_cache(maxsize=128)
def _tables(quality: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    luma, chroma = ijg_tables(quality)
    return tuple(  # type: ignore[return-value]
        torch.from_numpy(t.astype(np.int32).reshape(8, 8)).to(device) for t in (luma, chroma)
    )


def _quantise_roundtrip(samples: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Plane (..., 8m, 8n) of 0–255 samples → the same after DCT, quantisation and inverse DCT.

    Quantisation divides the ×8-scaled coefficients by ``8 · Q`` rounding half away from zero
    (libjpeg's ``quantize``), and the decoder multiplies by ``Q`` before its inverse DCT.
    """
    coefficients = fdct_islow(_to_blocks(samples - 128))
    divisor = table << 3
    quantised = (coefficients.abs() + (divisor >> 1)).div(divisor, rounding_mode="floor")
    quantised = quantised * coefficients.sign()
    restored = idct_islow(quantised * table) + 128
    return _from_blocks(restored.clamp_(0, 255))


def jpeg_roundtrip_batch(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode RGB images as Pillow's baseline JPEG at ``quality`` (4:2:0 chroma).

    Parameters
    ----------
    images : torch.Tensor
        Integer-valued RGB, shape (B, 3, H, W) (any dtype; values rounded and clipped to
        0–255 are used), on any device.
    quality : int
        libjpeg quality factor 1–100.

    Returns
    -------
    torch.Tensor
        ``int32`` (B, 3, H, W) in 0–255 on the same device: the pixels libjpeg-turbo decodes
        from the file Pillow writes with ``Image.save(..., "JPEG", quality=quality)``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.dtype.is_floating_point:
        images = images.round()
    rgb = images.clamp(0, 255).to(torch.int32)
    height, width = rgb.shape[-2:]
    ycc = rgb_to_ycbcr_jpeg(rgb)
    luma_table, chroma_table = _tables(int(quality), images.device)
    luma = _replicate_to(ycc[:, 0], _round_up(height, 8), _round_up(width, 8))
    luma = _quantise_roundtrip(luma, luma_table)[:, :height, :width]
    # libjpeg pads the rows to a whole 2-row group and the columns to whole MCUs before
    # downsampling, then repeats the last downsampled row down to a whole block.
    chroma = _replicate_to(ycc[:, 1:], _round_up(height, 2), _round_up(width, 16))
    chroma = _downsample_h2v2(chroma)
    chroma = _replicate_to(chroma, _round_up(chroma.shape[-2], 8), chroma.shape[-1])
    chroma = _quantise_roundtrip(chroma, chroma_table)
    chroma = chroma[..., : -(-height // 2), : -(-width // 2)]
    chroma = _upsample_h2v2_fancy(chroma)[..., :height, :width]
    return ycbcr_to_rgb_jpeg(torch.cat((luma[:, None], chroma), dim=1))
