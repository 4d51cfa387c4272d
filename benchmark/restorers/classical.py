"""Classical restorers from scikit-image: the baselines every learned restorer must beat.

All run on the CPU, take float RGB in [0, 1] and estimate the noise level themselves
(``skimage.restoration.estimate_sigma``, a wavelet median-absolute-deviation estimate) where
they need one, so they run blind across a whole grid.
"""

from __future__ import annotations

import numpy as np
from skimage import restoration

from restorelab.benchmark.restorers.base import Restorer, float_restorer, register_restorer


@register_restorer
class IdentityRestorer(Restorer):
    """Returns the degraded input unchanged: the "do nothing" baseline."""

    name = "identity"

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        return image.copy()


def _sigma(image: np.ndarray) -> float:
    """Estimated noise σ on [0, 1], averaged over channels."""
    return float(np.mean(restoration.estimate_sigma(image, channel_axis=-1)))


@float_restorer("nlm", h_factor=0.8, patch_size=5, patch_distance=6)
def nlm(image: np.ndarray, *, h_factor: float, patch_size: int, patch_distance: int) -> np.ndarray:
    """Non-local means (Buades et al. 2005), fast mode, filter strength ``h = h_factor·σ̂``."""
    sigma = _sigma(image)
    return restoration.denoise_nl_means(
        image,
        h=h_factor * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=patch_size,
        patch_distance=patch_distance,
        channel_axis=-1,
    )


@float_restorer("tv", weight="auto", weight_factor=1.0)
def tv(image: np.ndarray, *, weight: float | str, weight_factor: float) -> np.ndarray:
    """Total-variation denoising (Chambolle 2004); ``weight="auto"`` uses ``weight_factor·σ̂``."""
    if weight == "auto":
        weight = float(np.clip(weight_factor * _sigma(image), 1e-3, 1.0))
    return restoration.denoise_tv_chambolle(image, weight=float(weight), channel_axis=-1)


@float_restorer("wavelet", wavelet="db1", method="BayesShrink")
def wavelet(image: np.ndarray, *, wavelet: str, method: str) -> np.ndarray:
    """Wavelet shrinkage (BayesShrink or VisuShrink) in YCbCr, soft thresholds."""
    return restoration.denoise_wavelet(
        image,
        wavelet=wavelet,
        method=method,
        mode="soft",
        rescale_sigma=True,
        convert2ycbcr=True,
        channel_axis=-1,
    )


def gaussian_psf(sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian kernel of standard deviation ``sigma`` pixels, radius 4σ."""
    radius = max(1, int(np.ceil(4 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    psf = np.outer(g, g)
    return psf / psf.sum()


@float_restorer("rl", psf_sigma=2.0, num_iter=10)
def richardson_lucy(image: np.ndarray, *, psf_sigma: float, num_iter: int) -> np.ndarray:
    """Richardson–Lucy deconvolution with an assumed Gaussian PSF of ``psf_sigma`` pixels.

    The image is padded by reflection (by the PSF radius) before deconvolution and cropped
    after, so the borders do not darken as they do with zero padding.
    """
    if psf_sigma <= 0:
        raise ValueError(f"psf_sigma must be > 0, got {psf_sigma}")
    psf = gaussian_psf(float(psf_sigma))
    pad = psf.shape[0] // 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    channels = [
        restoration.richardson_lucy(padded[..., c], psf, num_iter=int(num_iter), clip=True)
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=-1)[pad:-pad, pad:-pad]
