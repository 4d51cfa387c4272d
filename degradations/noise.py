"""Noise degradations: ImageNet-C's four noise corruptions, severities 1–5 as published and
6–10 extending each table.

Severities 1–5 are imagecorruptions 1.1.2's tables (Hendrycks & Dietterich, ICLR 2019).
Severities 6–10 continue each table geometrically with a ratio close to that of its own last
published step, so every level degrades more than the one before on average (see
``docs/DEGRADATIONS.md`` for the measured PSNR per level). All arithmetic is float32.
"""

from __future__ import annotations

import numpy as np

from restorelab.degradations.base import register_degradation

_REFERENCE = "Hendrycks & Dietterich 2019, arXiv:1903.12261 (imagecorruptions 1.1.2)"


@register_degradation(
    "gaussian_noise",
    # σ on the [0, 1] scale. 1-5: [.08, .12, .18, .26, .38] (ImageNet-C);
    # 6-10: ×≈1.3 per level (the 4→5 step is ×1.46, flattened so clipping does not saturate).
    levels=(0.08, 0.12, 0.18, 0.26, 0.38, 0.50, 0.65, 0.85, 1.10, 1.40),
    unit="sigma_01",
    stochastic=True,
    reference=_REFERENCE,
)
def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Additive white Gaussian noise of standard deviation ``sigma`` on [0, 1], then clipped.

    Independent per pixel and channel. At one seed the unit-variance field is the same for
    every ``sigma`` (common random numbers across severities).
    """
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    noise += image
    return noise, {"sigma": float(sigma)}


@register_degradation(
    "shot_noise",
    # photons per unit intensity (fewer = noisier). 1-5: [60, 25, 12, 5, 3] (ImageNet-C);
    # 6-10: ×≈0.7 per level (the 4→5 step is ×0.6).
    levels=(60, 25, 12, 5, 3, 2, 1.4, 1.0, 0.7, 0.5),
    unit="photons_per_unit",
    stochastic=True,
    reference=_REFERENCE,
)
def shot_noise(image: np.ndarray, photons: float, rng: np.random.Generator) -> tuple:
    """Poisson (photon shot) noise: ``Poisson(x · photons) / photons``, clipped to [0, 1]."""
    counts = rng.poisson(image * np.float32(photons))
    return counts.astype(np.float32) / np.float32(photons), {"photons": float(photons)}


@register_degradation(
    "impulse_noise",
    # fraction of values replaced by salt or pepper. 1-5: [.03, .06, .09, .17, .27]
    # (ImageNet-C); 6-10: +≈.1 per level up to .7 (the 4→5 step is +.10).
    levels=(0.03, 0.06, 0.09, 0.17, 0.27, 0.36, 0.45, 0.54, 0.62, 0.70),
    unit="fraction",
    stochastic=True,
    reference=_REFERENCE,
)
def impulse_noise(image: np.ndarray, amount: float, rng: np.random.Generator) -> tuple:
    """Salt-and-pepper noise: each value independently becomes 0 or 1 with probability
    ``amount`` (half salt, half pepper), as ``skimage.util.random_noise(mode="s&p")``.

    One uniform draw per value decides both whether and which: u < amount/2 → pepper (0),
    amount/2 ≤ u < amount → salt (1); this has the reference's distribution.
    """
    u = rng.random(image.shape, dtype=np.float32)
    out = image.copy()
    out[u < np.float32(amount)] = 1.0
    out[u < np.float32(amount / 2)] = 0.0
    return out, {"amount": float(amount)}


@register_degradation(
    "speckle_noise",
    # σ of the multiplicative noise. 1-5: [.15, .2, .35, .45, .6] (ImageNet-C);
    # 6-10: ×≈1.3 per level (the 4→5 step is ×1.33).
    levels=(0.15, 0.20, 0.35, 0.45, 0.60, 0.80, 1.05, 1.35, 1.75, 2.25),
    unit="sigma_01",
    stochastic=True,
    reference=_REFERENCE,
)
def speckle_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Multiplicative Gaussian (speckle) noise: ``x + x · N(0, sigma²)``, clipped to [0, 1]."""
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    noise *= image
    noise += image
    return noise, {"sigma": float(sigma)}
