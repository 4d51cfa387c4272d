"""Full-reference fidelity metrics: PSNR and SSIM on RGB and on BT.601 luma (Y).

Conventions (those of the MATLAB code behind most restoration papers, and of BasicSR):
data range 255; images in float64, never rounded; Y = 16 + (65.481 R + 128.553 G + 24.966 B)
with RGB in [0, 1] (limited range, values in [16, 235]); SSIM with an 11×11 Gaussian window
(σ = 1.5), K1 = 0.01, K2 = 0.03, population covariances, averaged over the valid region only;
RGB SSIM is the mean of the three per-channel SSIMs; ``crop_border`` pixels are removed from
each side before scoring.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from restorelab.benchmark.metrics.base import register_metric


def _crop(image: np.ndarray, crop_border: int) -> np.ndarray:
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border == 0:
        return image
    if min(image.shape[:2]) <= 2 * crop_border:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {image.shape} image")
    return image[crop_border:-crop_border, crop_border:-crop_border]


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 limited-range luma of RGB ``uint8`` (H, W, 3) as float64 in [16, 235], unrounded."""
    rgb = image.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - distorted.astype(np.float64)) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    channel_axis = -1 if reference.ndim == 3 else None
    return float(
        structural_similarity(
            reference.astype(np.float64),
            distorted.astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255.0,
            channel_axis=channel_axis,
        )
    )


@register_metric(
    "psnr",
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
    higher_is_better=True,
    convention="SSIM on BT.601 limited-range Y (unrounded), 11x11 Gaussian sigma=1.5, "
    "K=(.01,.03), data_range=255, valid region",
    value_range=(-1.0, 1.0),
    crop_border=0,
)
def ssim_y(reference: np.ndarray, distorted: np.ndarray, *, crop_border: int = 0) -> float:
    """Structural similarity on the luma channel, MATLAB/BasicSR convention."""
    return _ssim(rgb_to_y(_crop(reference, crop_border)), rgb_to_y(_crop(distorted, crop_border)))
