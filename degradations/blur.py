"""Blur degradations: ImageNet-C's five blurs, severities 1–5 as published and 6–10 extending
each table.

Severities 1–5 are imagecorruptions 1.1.2's tables (Hendrycks & Dietterich, ICLR 2019),
including its reimplementations: motion blur by shift-and-add instead of ImageMagick, zoom
blur by bilinear zooms of a centre crop. Severities 6–10 continue each table along its own
published trend (see each table's comment and ``docs/DEGRADATIONS.md``). Filtering uses
OpenCV on float32 images.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numba import njit

from restorelab.degradations.base import register_degradation
from restorelab.degradations.kernels import disk_kernel, gaussian_radius, motion_kernel

_REFERENCE = "Hendrycks & Dietterich 2019, arXiv:1903.12261 (imagecorruptions 1.1.2)"


def gaussian_filter(image: np.ndarray, sigma: float) -> np.ndarray:
    """Per-channel Gaussian of ``sigma`` px, cut at 4σ, edge pixels replicated.

    The filter of ``skimage.filters.gaussian`` (SciPy's ``mode="nearest"``, ``truncate=4``).
    """
    size = 2 * gaussian_radius(sigma) + 1
    return cv2.GaussianBlur(
        image,
        (size, size),
        sigmaX=float(sigma),
        sigmaY=float(sigma),
        borderType=cv2.BORDER_REPLICATE,
    )


@register_degradation(
    "gaussian_blur",
    # σ in px. 1-5: [1, 2, 3, 4, 6] (ImageNet-C); 6-10: +2, +2, +3, +3, +4.
    levels=(1, 2, 3, 4, 6, 8, 10, 13, 16, 20),
    unit="sigma_px",
    stochastic=False,
    reference=_REFERENCE,
)
def gaussian_blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Isotropic Gaussian blur of standard deviation ``sigma`` px (:func:`gaussian_filter`)."""
    return gaussian_filter(image, sigma), {"sigma": float(sigma)}


@register_degradation(
    "defocus_blur",
    # (disk radius px, anti-alias σ px). 1-5: [(3,.1), (4,.5), (6,.5), (8,.5), (10,.5)]
    # (ImageNet-C); 6-10: radius ×≈1.25 per level (the 4→5 step is ×1.25).
    levels=(
        (3, 0.1),
        (4, 0.5),
        (6, 0.5),
        (8, 0.5),
        (10, 0.5),
        (13, 0.5),
        (16, 0.5),
        (20, 0.5),
        (25, 0.5),
        (30, 0.5),
    ),
    unit="(radius_px, alias_sigma_px)",
    stochastic=False,
    reference=_REFERENCE,
)
def defocus_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Defocus: correlation with an anti-aliased disk (:func:`disk_kernel`), reflect-101 borders."""
    radius, alias_blur = level
    kernel = disk_kernel(radius, alias_blur)
    out = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out, {"radius": float(radius), "alias_blur": float(alias_blur)}


@register_degradation(
    "motion_blur",
    # (radius = half the number of steps, σ of the step weights). 1-5: [(10,3), (15,5),
    # (15,8), (15,12), (20,15)] (ImageNet-C); 6-10: radius +5/+5/+10/+10/+10, σ ×≈1.3.
    levels=(
        (10, 3),
        (15, 5),
        (15, 8),
        (15, 12),
        (20, 15),
        (25, 20),
        (30, 25),
        (40, 30),
        (50, 40),
        (60, 50),
    ),
    unit="(radius_steps, sigma_steps)",
    stochastic=True,
    reference=_REFERENCE,
)
def motion_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Linear motion blur along a random direction in [-45°, 45°] (imagecorruptions' algorithm).

    The weighted shift-and-add is folded into one kernel (:func:`motion_kernel`) and applied
    by correlation with replicated borders, which equals the reference's edge-replicating
    shifts.
    """
    radius, sigma = level
    angle = float(rng.uniform(-45.0, 45.0))
    kernel = motion_kernel(radius, sigma, angle, image.shape[:2])
    # trim the empty margin so the filter only covers the taps that are used
    rows, cols = np.nonzero(kernel)
    centre = kernel.shape[0] // 2
    half = int(max(np.abs(rows - centre).max(), np.abs(cols - centre).max()))
    kernel = kernel[centre - half : centre + half + 1, centre - half : centre + half + 1]
    out = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    return out, {"radius": int(radius), "sigma": float(sigma), "angle_deg": angle}


@njit(cache=True, nogil=True)
def _local_shuffle(pixels: np.ndarray, offsets: np.ndarray, delta: int) -> None:
    """In place: imagecorruptions' glass-blur pixel moves, in its order, with pre-drawn offsets.

    For each iteration, rows h from H-δ down to δ+1 and columns w from W-δ down to δ+1,
    pixel (h, w) takes the value of (h + dy, w + dx), where ``offsets[it, i, j] = (dx, dy)``.

    The reference writes a swap, ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``, but on numpy
    arrays both sides are views, so the second assignment copies back the value just written:
    the published corruption (ImageNet-C and imagecorruptions alike) copies, it does not swap.
    We reproduce what the published code does.
    """
    height, width, channels = pixels.shape
    for it in range(offsets.shape[0]):
        for i in range(height - 2 * delta):
            h = height - delta - i
            for j in range(width - 2 * delta):
                w = width - delta - j
                hp = h + offsets[it, i, j, 1]
                wp = w + offsets[it, i, j, 0]
                for c in range(channels):
                    pixels[h, w, c] = pixels[hp, wp, c]


@register_degradation(
    "glass_blur",
    # (σ px, max displacement δ px, iterations). 1-5: [(0.7,1,2), (0.9,2,1), (1,2,3),
    # (1.1,3,2), (1.5,4,2)] (ImageNet-C); 6-10: σ +≈0.4, δ +1..2, iterations 2-3.
    levels=(
        (0.7, 1, 2),
        (0.9, 2, 1),
        (1.0, 2, 3),
        (1.1, 3, 2),
        (1.5, 4, 2),
        (1.8, 5, 2),
        (2.1, 6, 2),
        (2.5, 7, 3),
        (3.0, 8, 3),
        (3.5, 10, 3),
    ),
    unit="(sigma_px, max_delta_px, iterations)",
    stochastic=True,
    reference=_REFERENCE,
)
def glass_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Frosted glass: Gaussian blur, local pixel shuffling within ±δ, Gaussian blur again.

    The same algorithm as imagecorruptions (sequential pixel moves in reverse raster order,
    see :func:`_local_shuffle`; the intermediate image truncated to ``uint8`` as there),
    compiled with numba; the random offsets are drawn up front from ``rng``, uniform in
    [-δ, δ - 1] like ``np.random.randint``. δ and the iteration count are used as integers
    (at least 1).
    """
    sigma, delta, iterations = level
    delta, iterations = max(1, round(delta)), max(1, round(iterations))
    height, width = image.shape[:2]
    blurred = gaussian_filter(image, sigma)
    pixels = np.clip(blurred * np.float32(255), 0, 255).astype(np.uint8)  # truncation as reference
    shape = (iterations, max(0, height - 2 * delta), max(0, width - 2 * delta), 2)
    offsets = rng.integers(-delta, delta, size=shape, dtype=np.int16)
    _local_shuffle(pixels, offsets, delta)
    out = gaussian_filter(pixels.astype(np.float32) * np.float32(1 / 255), sigma)
    return out, {"sigma": float(sigma), "max_delta": int(delta), "iterations": int(iterations)}


def _zoom_factors(stop: float, step: float) -> np.ndarray:
    return np.arange(1, stop, step)


@register_degradation(
    "zoom_blur",
    # (stop, step): zoom factors np.arange(1, stop, step). 1-5: [(1.11,.01), (1.16,.01),
    # (1.21,.02), (1.26,.02), (1.31,.03)] (ImageNet-C); 6-10: stop +.1/+.1/+.15/+.15/+.2.
    levels=(
        (1.11, 0.01),
        (1.16, 0.01),
        (1.21, 0.02),
        (1.26, 0.02),
        (1.31, 0.03),
        (1.41, 0.03),
        (1.51, 0.04),
        (1.66, 0.05),
        (1.81, 0.06),
        (2.01, 0.08),
    ),
    unit="(max_zoom, zoom_step)",
    stochastic=False,
    reference=_REFERENCE,
)
def zoom_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Zoom blur: the mean of the image and of centre crops zoomed back up by each factor.

    Each zoom is imagecorruptions' ``clipped_zoom`` (a centre crop of ``ceil(size / z)``
    zoomed bilinearly by ``z`` as ``scipy.ndimage.zoom(order=1)`` maps coordinates, then
    cropped to the image size), done as one affine warp straight to the output size.
    """
    stop, step = level
    factors = _zoom_factors(stop, step)
    height, width = image.shape[:2]
    total = image.astype(np.float32, copy=True)
    for zoom in factors:
        crop_h, crop_w = math.ceil(height / zoom), math.ceil(width / zoom)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        out_h, out_w = round(crop_h * zoom), round(crop_w * zoom)
        scale_y = (crop_h - 1) / (out_h - 1) if out_h > 1 else 0.0
        scale_x = (crop_w - 1) / (out_w - 1) if out_w > 1 else 0.0
        matrix = np.array([[scale_x, 0.0, left], [0.0, scale_y, top]], dtype=np.float64)
        total += cv2.warpAffine(
            image,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    total /= np.float32(len(factors) + 1)
    return total, {"zoom_factors": [round(float(z), 4) for z in factors]}
