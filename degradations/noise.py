"""Noise degradations."""

from __future__ import annotations

import numpy as np

from restorelab.degradations.base import register_degradation


@register_degradation(
    "gaussian_noise",
    # σ on the [0, 1] intensity scale, ImageNet-C severities 1-5
    # (imagecorruptions `gaussian_noise`: c = [.08, .12, 0.18, 0.26, 0.38]).
    levels=(0.08, 0.12, 0.18, 0.26, 0.38),
    unit="sigma_01",
    stochastic=True,
    reference="Hendrycks & Dietterich 2019, arXiv:1903.12261",
)
def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Additive white Gaussian noise of standard deviation ``sigma`` on [0, 1], then clipped.

    Independent per pixel and channel. At one seed the unit-variance field is the same for
    every ``sigma``, so higher severities are the same noise, scaled.
    """
    noise = rng.standard_normal(image.shape)
    return np.clip(image + sigma * noise, 0.0, 1.0), {"sigma": float(sigma)}
