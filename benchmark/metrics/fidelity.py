"""Full-reference fidelity metrics: PSNR and SSIM on RGB and on BT.601 luma (Y).

Conventions (those of the MATLAB code behind most restoration papers, and of BasicSR):
data range 255; images in float64, never rounded; Y = 16 + (65.481 R + 128.553 G + 24.966 B)
with RGB in [0, 1] (limited range, values in [16, 235]); SSIM with an 11×11 Gaussian window
(σ = 1.5), K1 = 0.01, K2 = 0.03, population covariances, averaged over the valid region only;
RGB SSIM is the mean of the three per-channel SSIMs; ``crop_border`` pixels are removed from
each side before scoring.

SSIM is computed here with OpenCV's separable filtering in float64 (``cv2.sepFilter2D``),
equal to scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`` to ~1e-12 and several times faster; see
docs/PERFORMANCE.md, "Metrics".
"""

from __future__ import annotations

import cv2
import numpy as np

from restorelab.benchmark.metrics.base import register_metric


def _crop(image: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border == 0:
        return image
    if min(image.shape[:2]) <= 2 * crop_border:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {image.shape} image")
    return image[crop_border:-crop_border, crop_border:-crop_border]


#: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 as one affine row for ``cv2.transform``.
_Y_ROW = np.array([[65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0, 16.0]])


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 limited-range luma of RGB ``uint8`` (H, W, 3) as float64 in [16, 235], unrounded.

    ``16 + (65.481 R + 128.553 G + 24.966 B)`` with RGB in [0, 1], in float64 (one affine
    ``cv2.transform``; equal to the NumPy formula to 1e-13, about 4× faster than its matmul).
    """
    return cv2.transform(np.asarray(image, dtype=np.float64), _Y_ROW)


def _psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    """PSNR (data range 255) of two arrays of one shape; uint8 or float64.

    The squared error is summed by ``cv2.norm(NORM_L2SQR)``: exact for ``uint8`` (an integer
    sum far below 2**53; the PSNR equals NumPy's float64 formula to 1e-15 dB) and ~80× faster
    than it, with no float64 copies of the images.
    """
    if reference.dtype != distorted.dtype or reference.dtype not in (np.uint8, np.float64):
        reference, distorted = reference.astype(np.float64), distorted.astype(np.float64)
    squared = cv2.norm(
        np.ascontiguousarray(reference), np.ascontiguousarray(distorted), cv2.NORM_L2SQR
    )
    mse = squared / reference.size
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


# SSIM constants (Wang et al. 2004; scikit-image's gaussian_weights path): sigma = 1.5 truncated
# at 3.5 sigma, i.e. radius int(3.5 * 1.5 + 0.5) = 5 and an 11x11 window.
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)
_SSIM_KERNEL = np.exp(-0.5 * (np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1) / _SSIM_SIGMA) ** 2)
_SSIM_KERNEL /= _SSIM_KERNEL.sum()
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


def _gaussian_valid(image: np.ndarray) -> np.ndarray:
    """11x11 Gaussian (sigma 1.5) weighted local mean of float64 ``image``, valid region only."""
    r = _SSIM_RADIUS
    out = cv2.sepFilter2D(
        image, cv2.CV_64F, _SSIM_KERNEL, _SSIM_KERNEL, borderType=cv2.BORDER_REFLECT
    )
    return out[r:-r, r:-r]


_SSIM_STRIP_ROWS = 64  # output rows per strip: keeps the ten work arrays in the CPU cache


def _ssim_sum(x: np.ndarray, y: np.ndarray) -> float:
    """Sum of the SSIM map of float64 (h, W) strips ``x``, ``y`` over their valid region."""
    ux, uy = _gaussian_valid(x), _gaussian_valid(y)
    uxx, uyy, uxy = _gaussian_valid(x * x), _gaussian_valid(y * y), _gaussian_valid(x * y)
    # In place, to limit passes over memory; the formula is
    # ((2 ux uy + C1)(2 vxy + C2)) / ((ux² + uy² + C1)(vx + vy + C2)), population covariances.
    uxuy = ux * uy
    squares = ux * ux
    squares += uy * uy  # ux² + uy²
    covariance = uxy - uxuy
    covariance *= 2.0
    covariance += _SSIM_C2  # 2 vxy + C2
    variances = uxx + uyy
    variances -= squares
    variances += _SSIM_C2  # vx + vy + C2
    uxuy *= 2.0
    uxuy += _SSIM_C1  # 2 ux uy + C1
    squares += _SSIM_C1  # ux² + uy² + C1
    uxuy *= covariance
    squares *= variances
    uxuy /= squares
    return float(uxuy.sum(dtype=np.float64))


def _ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two float64 (H, W) planes over the valid region.

    The local statistics are Gaussian-weighted means; pixels whose window would leave the
    image are dropped, as scikit-image does, so the border mode does not matter. The plane is
    processed in strips of :data:`_SSIM_STRIP_ROWS` output rows (plus the 5-row halo each
    side), which gives the same values as one pass and is ~1.6x faster on large images.
    """
    r = _SSIM_RADIUS
    height, width = x.shape
    total = 0.0
    for top in range(0, height - 2 * r, _SSIM_STRIP_ROWS):
        bottom = min(top + _SSIM_STRIP_ROWS + 2 * r, height)
        total += _ssim_sum(x[top:bottom], y[top:bottom])
    return total / ((height - 2 * r) * (width - 2 * r))


def _ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SSIM of float (H, W) or (H, W, C) arrays on the 0-255 scale; mean over channels."""
    window = 2 * _SSIM_RADIUS + 1
    if min(reference.shape[:2]) < window:
        raise ValueError(
            f"SSIM needs images of at least {window}x{window} pixels, got {reference.shape}"
        )
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(distorted, dtype=np.float64)
    if x.ndim == 2:
        return _ssim_plane(x, y)
    planes = [
        _ssim_plane(np.ascontiguousarray(x[..., c]), np.ascontiguousarray(y[..., c]))
        for c in range(x.shape[2])
    ]
    return float(np.mean(planes))


@register_metric(
    "psnr",
    batch="restorelab.benchmark.metrics.batched:psnr_batch",
    higher_is_better=True,
    convention="PSNR on RGB, data_range=255, MSE over all pixels and channels",
    value_range=(0.0, float("inf")),
    crop_border=0,
)
def psnr(reference: np.ndarray, distorted: np.ndarray, *, crop_border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB on RGB (``inf`` for identical images)."""
    return _psnr(_crop(reference, crop_border), _crop(distorted, crop_border))


@register_metric(
    "psnr_y",
    batch="restorelab.benchmark.metrics.batched:psnr_y_batch",
    higher_is_better=True,
    convention="PSNR on BT.601 limited-range Y (16-235, unrounded), data_range=255",
    value_range=(0.0, float("inf")),
    crop_border=0,
)
def psnr_y(reference: np.ndarray, distorted: np.ndarray, *, crop_border: int = 0) -> float:
    """PSNR in dB on the luma channel, MATLAB/BasicSR convention."""
    return _psnr(rgb_to_y(_crop(reference, crop_border)), rgb_to_y(_crop(distorted, crop_border)))


@register_metric(
    "ssim",
    batch="restorelab.benchmark.metrics.batched:ssim_batch",
    higher_is_better=True,
    convention="SSIM on RGB (mean of channels), 11x11 Gaussian sigma=1.5, K=(.01,.03), "
    "data_range=255, valid region",
    value_range=(-1.0, 1.0),
    crop_border=0,
)
def ssim(reference: np.ndarray, distorted: np.ndarray, *, crop_border: int = 0) -> float:
    """Structural similarity (Wang et al. 2004) on RGB, mean of the per-channel SSIMs."""
    return _ssim(_crop(reference, crop_border), _crop(distorted, crop_border))


@register_metric(
    "ssim_y",
    batch="restorelab.benchmark.metrics.batched:ssim_y_batch",
    higher_is_better=True,
    convention="SSIM on BT.601 limited-range Y (unrounded), 11x11 Gaussian sigma=1.5, "
    "K=(.01,.03), data_range=255, valid region",
    value_range=(-1.0, 1.0),
    crop_border=0,
)
def ssim_y(reference: np.ndarray, distorted: np.ndarray, *, crop_border: int = 0) -> float:
    """Structural similarity on the luma channel, MATLAB/BasicSR convention."""
    return _ssim(rgb_to_y(_crop(reference, crop_border)), rgb_to_y(_crop(distorted, crop_border)))
