"""Batched torch PSNR and SSIM (RGB and Y) for GPUs, with the conventions of ``fidelity``.

Every function takes two float (B, 3, H, W) batches in [0, 1] on one device and returns a
(B,) tensor, one score per pair. The arithmetic is float64 by default, so the values equal the
per-image numpy path (:mod:`restorelab.benchmark.metrics.fidelity`) to about 1e-12;
``dtype=torch.float32`` is faster on GPUs with little float64 throughput and agrees to about
1e-5 dB / 1e-6 SSIM.

Conventions, as in ``fidelity``: data range 255 (inputs are scaled by 255, never rounded);
Y = 16 + (65.481 R + 128.553 G + 24.966 B) with RGB in [0, 1]; SSIM with an 11×11 Gaussian
window (σ = 1.5, 11 taps), K1 = 0.01, K2 = 0.03, population covariances, mean over the valid
region (no padding), RGB SSIM = mean of the channel SSIMs; ``crop_border`` pixels removed from
each side first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812

from restorelab.benchmark.metrics.fidelity import (
    _SSIM_C1,
    _SSIM_C2,
    _SSIM_KERNEL,
    _SSIM_RADIUS,
)

__all__ = [
    "crop_batch",
    "psnr_batch",
    "psnr_y_batch",
    "rgb_to_y_batch",
    "ssim_batch",
    "ssim_y_batch",
]

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def crop_batch(batch: torch.Tensor, crop_border: int) -> torch.Tensor:
    """``batch`` (..., H, W) without ``crop_border`` pixels on each side (a view)."""
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if not crop_border:
        return batch
    if min(batch.shape[-2:]) <= 2 * crop_border:
        raise ValueError(
            f"crop_border={crop_border} leaves nothing of a {tuple(batch.shape)} batch"
        )
    return batch[..., crop_border:-crop_border, crop_border:-crop_border]


def _prepare(batch: torch.Tensor, crop_border: int, dtype: torch.dtype) -> torch.Tensor:
    """[0, 1] batch → 0-255 scale in ``dtype``, cropped."""
    return crop_batch(batch, crop_border).to(dtype) * 255.0


def rgb_to_y_batch(rgb255: torch.Tensor) -> torch.Tensor:
    """BT.601 limited-range luma (B, 1, H, W) of RGB (B, 3, H, W) on the 0-255 scale."""
    weights = torch.tensor(_Y_WEIGHTS, dtype=rgb255.dtype, device=rgb255.device)
    return 16.0 + torch.einsum("bchw,c->bhw", rgb255 / 255.0, weights)[:, None]


def _psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mse = (x - y).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)  # inf where mse == 0, as the numpy path


#: How :func:`_gaussian_valid` filters: "shift" (eleven shifted multiply-adds per axis),
#: "banded" (tiles times a banded matrix: one read and one write per axis, as matrix
#: products), or None: "shift" on the CPU (3× faster there), "banded" elsewhere (the shifted
#: adds read and write the planes 22 times, which bounds a GPU's memory bandwidth).
FILTER_METHOD: str | None = None

_TILE = 64  # output samples per tile of the banded product


def _gaussian_valid(planes: torch.Tensor, method: str | None = None) -> torch.Tensor:
    """The 11-tap Gaussian along W then H over the valid region of (..., H, W) planes.

    Elementwise kernels or matrix products only: no float64 convolution (which cuDNN and
    oneDNN handle poorly) and no TF32 rounding of float32 on GPUs. Both methods agree to
    ~1e-13 on the 0-255 scale (summation order).
    """
    method = method or FILTER_METHOD or ("shift" if planes.device.type == "cpu" else "banded")
    if method == "banded":
        rows = _banded_last_axis(planes)
        return _banded_last_axis(rows.transpose(-1, -2)).transpose(-1, -2)
    if method != "shift":
        raise ValueError(f"method must be 'shift' or 'banded', got {method!r}")
    taps = [float(w) for w in _SSIM_KERNEL]
    width = planes.shape[-1] - len(taps) + 1
    rows = planes[..., :width] * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        rows.add_(planes[..., offset : offset + width], alpha=weight)
    height = planes.shape[-2] - len(taps) + 1
    out = rows[..., :height, :] * taps[0]
    for offset, weight in enumerate(taps[1:], start=1):
        out.add_(rows[..., offset : offset + height, :], alpha=weight)
    return out


@functools.lru_cache(maxsize=8)
def _band(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(TILE + 10, TILE) matrix whose column j holds the taps at rows j..j+10."""
    taps = torch.as_tensor(_SSIM_KERNEL, dtype=dtype)
    band = torch.zeros(_TILE + len(taps) - 1, _TILE, dtype=dtype)
    columns = torch.arange(_TILE)
    for k, weight in enumerate(taps):
        band[columns + k, columns] = weight
    return band.to(device)


def _banded_last_axis(x: torch.Tensor) -> torch.Tensor:
    """Valid 11-tap correlation along the last axis: overlapping tiles times :func:`_band`."""
    length = x.shape[-1]
    halo = len(_SSIM_KERNEL) - 1
    valid = length - halo
    tiles = -(-valid // _TILE)
    padded = F.pad(x, (0, tiles * _TILE + halo - length))
    windows = padded.unfold(-1, _TILE + halo, _TILE)  # (..., tiles, TILE + 10), a view
    return (windows @ _band(x.dtype, x.device)).flatten(-2)[..., :valid]


def _ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM over channels and the valid region of (B, C, H, W) batches (0-255 scale)."""
    window = 2 * _SSIM_RADIUS + 1
    if min(x.shape[-2:]) < window:
        raise ValueError(
            f"SSIM needs images of at least {window}x{window} pixels, got {tuple(x.shape)}"
        )
    # the five local statistics of every channel, filtered together
    planes = _gaussian_valid(torch.stack((x, y, x * x, y * y, x * y), dim=2))
    ux, uy, uxx, uyy, uxy = planes.unbind(2)
    uxuy = ux * uy
    squares = ux * ux + uy * uy
    numerator = (2.0 * uxuy + _SSIM_C1) * (2.0 * (uxy - uxuy) + _SSIM_C2)
    denominator = (squares + _SSIM_C1) * (uxx + uyy - squares + _SSIM_C2)
    return (numerator / denominator).mean(dim=(2, 3)).mean(dim=1)


def _pairwise(score: Callable, on_luma: bool, doc: str) -> Callable[..., torch.Tensor]:
    """A batched metric: crop and scale both batches (and take Y), then ``score`` them."""

    def metric(
        reference: torch.Tensor,
        distorted: torch.Tensor,
        *,
        crop_border: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        x = _prepare(reference, crop_border, dtype)
        y = _prepare(distorted, crop_border, dtype)
        if on_luma:
            x, y = rgb_to_y_batch(x), rgb_to_y_batch(y)
        return score(x, y)

    metric.__doc__ = doc
    return metric


psnr_batch = _pairwise(_psnr, False, "PSNR in dB on RGB per pair (``inf`` for identical images).")
psnr_y_batch = _pairwise(_psnr, True, "PSNR in dB on BT.601 limited-range Y per pair.")
ssim_batch = _pairwise(_ssim, False, "SSIM on RGB per pair (mean of the three channel SSIMs).")
ssim_y_batch = _pairwise(_ssim, True, "SSIM on BT.601 limited-range Y per pair.")
