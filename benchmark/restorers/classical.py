"""Classical restorers from scikit-image: the baselines every learned restorer must beat.

All run on the CPU, take float RGB in [0, 1] and estimate the noise level themselves
(``skimage.restoration.estimate_sigma``, a wavelet median-absolute-deviation estimate) where
they need one, so they run blind across a whole grid.
"""

from __future__ import annotations

import cv2
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


def oracle_psf(degradation: dict | None) -> np.ndarray | None:
    """The true PSF of a cell from its degradation parameters, or None when it has none.

    Knows ``gaussian_blur`` (``sigma``) and ``defocus_blur`` (``radius``, ``alias_blur``); in a
    chain the first such step counts.

    Parameters
    ----------
    degradation : dict or None
        Degradation parameters as the runner records them (``degradation_params``).

    Returns
    -------
    ndarray or None
        A normalised 2-D kernel.
    """
    if not degradation:
        return None
    steps = degradation.get("steps") or [degradation]
    for step in steps:
        if step.get("name") == "gaussian_blur" and "sigma" in step:
            return gaussian_psf(float(step["sigma"]))
        if step.get("name") == "defocus_blur" and "radius" in step:
            from restorelab.degradations.blur import disk_kernel

            kernel = np.asarray(disk_kernel(step["radius"], step["alias_blur"]), dtype=np.float64)
            return kernel / kernel.sum()
    return None


def _psf(psf_sigma: float, oracle: bool, degradation: dict | None) -> np.ndarray:
    """The oracle PSF when asked for and known, else a Gaussian of ``psf_sigma``."""
    if oracle:
        psf = oracle_psf(degradation)
        if psf is not None:
            return psf
    if psf_sigma <= 0:
        raise ValueError(f"psf_sigma must be > 0, got {psf_sigma}")
    return gaussian_psf(float(psf_sigma))


def _per_channel_padded(image: np.ndarray, psf: np.ndarray, fn) -> np.ndarray:
    """Apply ``fn(channel, psf)`` to each channel of ``image`` padded by reflection, then crop."""
    pad = psf.shape[0] // 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    channels = [fn(padded[..., c], psf) for c in range(image.shape[2])]
    return np.stack(channels, axis=-1)[pad : pad + image.shape[0], pad : pad + image.shape[1]]


@float_restorer("rl", wants_degradation=True, psf_sigma=2.0, num_iter=10, oracle=False)
def richardson_lucy(
    image: np.ndarray,
    *,
    psf_sigma: float,
    num_iter: int,
    oracle: bool,
    degradation: dict | None = None,
) -> np.ndarray:
    """Richardson–Lucy deconvolution with an assumed Gaussian PSF of ``psf_sigma`` pixels.

    The image is padded by reflection (by the PSF radius) before deconvolution and cropped
    after, so the borders do not darken as they do with zero padding. With ``oracle=true`` and a
    cell whose true blur is known (``gaussian_blur`` / ``defocus_blur``), the true PSF is used
    instead (an upper bound for non-blind deconvolution); other cells fall back to
    ``psf_sigma``.
    """
    psf = _psf(psf_sigma, bool(oracle), degradation)
    return _per_channel_padded(
        image,
        psf,
        lambda ch, k: restoration.richardson_lucy(ch, k, num_iter=int(num_iter), clip=True),
    )


@float_restorer("wiener", wants_degradation=True, psf_sigma=2.0, balance=0.01, oracle=False)
def wiener(
    image: np.ndarray,
    *,
    psf_sigma: float,
    balance: float,
    oracle: bool,
    degradation: dict | None = None,
) -> np.ndarray:
    """Wiener–Hunt deconvolution (:func:`skimage.restoration.wiener`) with a Gaussian PSF.

    ``balance`` trades data fidelity against the Laplacian prior (larger: smoother). Padding
    and ``oracle`` work as for ``rl``.
    """
    if balance <= 0:
        raise ValueError(f"balance must be > 0, got {balance}")
    psf = _psf(psf_sigma, bool(oracle), degradation)
    return _per_channel_padded(
        image, psf, lambda ch, k: restoration.wiener(ch, k, float(balance), clip=True)
    )


@float_restorer("bilateral", sigma_color="auto", color_factor=2.0, sigma_spatial=3.0)
def bilateral(
    image: np.ndarray, *, sigma_color: float | str, color_factor: float, sigma_spatial: float
) -> np.ndarray:
    """Bilateral filter (Tomasi & Manduchi 1998, OpenCV's ``bilateralFilter``).

    ``sigma_color="auto"`` uses ``color_factor·σ̂`` (σ̂ the estimated noise level on [0, 1]);
    the window spans ±2·``sigma_spatial`` pixels.
    """
    if sigma_color == "auto":
        sigma_color = max(1e-3, color_factor * _sigma(image))
    diameter = 2 * int(np.ceil(2 * float(sigma_spatial))) + 1
    out = cv2.bilateralFilter(
        image.astype(np.float32), diameter, float(sigma_color), float(sigma_spatial)
    )
    return out.astype(np.float64)
