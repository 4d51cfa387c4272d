"""Blur degradations."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from restorelab.degradations.base import register_degradation


@register_degradation(
    "gaussian_blur",
    # σ in pixels, ImageNet-C severities 1-5 (Hendrycks & Dietterich, ICLR 2019;
    # imagecorruptions `gaussian_blur`: c = [1, 2, 3, 4, 6]).
    levels=(1, 2, 3, 4, 6),
    unit="sigma_px",
    stochastic=False,
    reference="Hendrycks & Dietterich 2019, arXiv:1903.12261",
)
def gaussian_blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Isotropic Gaussian blur of standard deviation ``sigma`` pixels.

    Same filter as ImageNet-C (``skimage.filters.gaussian``): per-channel Gaussian,
    kernel truncated at 4σ, borders extended by replicating the edge pixel.
    """
    out = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)
    return out, {"sigma": float(sigma)}
