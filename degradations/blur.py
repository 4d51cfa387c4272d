"""Blur degradations: ImageNet-C's five blurs, severities 1–5 as published and 6–10 extending
each table.

Severities 1–5 are imagecorruptions 1.1.2's tables (Hendrycks & Dietterich, ICLR 2019),
including its reimplementations: motion blur by shift-and-add instead of ImageMagick, zoom
blur by bilinear zooms of a centre crop. Severities 6–10 continue each table along its own
published trend (see each table's comment and ``docs/DEGRADATIONS.md``). Filtering uses
OpenCV and compiled (numba) loops on float32 images; ``docs/PERFORMANCE.md`` has the speed
against imagecorruptions and what each op does to get it.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from restorelab.degradations.base import register_degradation
from restorelab.degradations.kernels import (
    disk_kernel,
    disk_parts,
    gaussian_radius,
    motion_kernel,
)

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


#: Largest kernel area (taps) that ``cv2.filter2D`` applies directly on float32 images; from
#: 130 taps on it switches to a DFT (about 11 ms at 512², whatever the size up to ~30²).
_DIRECT_TAPS = 129


def _trim(kernel: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``kernel`` cut to the bounding box of its non-zero taps, and the box's top-left offset
    from the kernel centre (row, column)."""
    rows, cols = np.nonzero(kernel)
    if rows.size == 0:
        return kernel[:1, :1] * 0, 0, 0
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    trimmed = kernel[top : bottom + 1, left : right + 1]
    return trimmed, int(top - kernel.shape[0] // 2), int(left - kernel.shape[1] // 2)


def correlate_direct(image: np.ndarray, kernel: np.ndarray, border: int) -> np.ndarray:
    """``cv2.filter2D(image, -1, kernel, borderType=border)`` with the kernel's zero margins
    dropped first, so that small kernels in a large support take the direct path."""
    kernel = np.asarray(kernel, np.float32)
    trimmed, top, left = _trim(kernel)
    rows, cols = trimmed.shape
    anchor = (-left, -top)  # the original centre, inside the box for symmetric supports
    if rows * cols <= _DIRECT_TAPS and 0 <= anchor[0] < cols and 0 <= anchor[1] < rows:
        return cv2.filter2D(image, -1, trimmed, anchor=anchor, borderType=border)
    return cv2.filter2D(image, -1, kernel, borderType=border)


@njit(cache=True, nogil=True)
def _shift_and_add(
    padded: np.ndarray, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:
    """``out[y, j] = Σ_t weights[t] · padded[y + rows[t], j + cols[t]]`` (2-D float32, taps in
    the given order)."""
    height, width = out.shape
    for y in range(height):
        dst = out[y]
        # slices of the exact width keep the inner loops free of index wrap-around, so that
        # they compile to SIMD
        src = padded[y + rows[0], cols[0] : cols[0] + width]
        w = weights[0]
        for j in range(width):
            dst[j] = w * src[j]
        for t in range(1, weights.size):
            src = padded[y + rows[t], cols[t] : cols[t] + width]
            w = weights[t]
            for j in range(width):
                dst[j] += w * src[j]


def correlate_taps(image: np.ndarray, kernel: np.ndarray, border: int) -> np.ndarray:
    """Correlation of an (H, W, C) float32 image with a sparse, odd-sized ``kernel``.

    The image is padded once (``border``) and the shifted copies of its non-zero taps are
    summed, row by row, in one compiled pass: the cost is the number of taps, not the kernel
    area (a motion-blur line has 2·radius + 1 taps in a kernel of up to (4·radius + 3)²).
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    kernel = np.asarray(kernel, np.float32)
    height, width = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    ys, xs = np.nonzero(kernel)
    if ys.size == 0:
        return np.zeros_like(image)
    dy, dx = ys - cy, xs - cx
    pad_y, pad_x = int(np.abs(dy).max()), int(np.abs(dx).max())
    padded = cv2.copyMakeBorder(image, pad_y, pad_y, pad_x, pad_x, border)
    padded = padded.reshape(height + 2 * pad_y, -1)
    out = np.empty(image.shape, np.float32)
    _shift_and_add(
        padded,
        (dy + pad_y).astype(np.int64),
        ((dx + pad_x) * channels).astype(np.int64),
        kernel[ys, xs].astype(np.float32),
        out.reshape(height, width * channels),
    )
    return out


@register_degradation(
    "gaussian_blur",
    # σ in px. 1-5: [1, 2, 3, 4, 6] (ImageNet-C); 6-10: +2, +2, +3, +3, +4.
    levels=(1, 2, 3, 4, 6, 8, 10, 13, 16, 20),
    unit="sigma_px",
    stochastic=False,
    reference=_REFERENCE,
    truncate=True,
)
def gaussian_blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Isotropic Gaussian blur of standard deviation ``sigma`` px (:func:`gaussian_filter`)."""
    return gaussian_filter(image, sigma), {"sigma": float(sigma)}


@dataclass(frozen=True)
class _DiskPlan:
    """:func:`disk_kernel` as ``Gaussian ⊛ disk + residual`` (see :func:`correlate_disk`)."""

    gauss: np.ndarray  # 1-D anti-aliasing Gaussian, float32
    value: float  # the disk's constant weight (1 / its pixel count, as float32)
    columns: np.ndarray  # column offsets dx of the disk (int64)
    heights: np.ndarray  # half-height of the disk in each of those columns (int64)
    tap_rows: np.ndarray  # residual taps: row offsets dy (int64) ...
    tap_cols: np.ndarray  # ... column offsets dx (int64) ...
    tap_weights: np.ndarray  # ... and weights (float32)
    pad: int  # border needed on each side


#: Residual taps whose magnitudes sum to at most this are dropped (an output error below
#: 2e-6 on [0, 1], 1/2000 of a grey level, the size of float32 rounding in the sums).
_DISK_RESIDUAL_BUDGET = 2e-6

#: Up to this many taps the kernel is applied directly (``cv2.filter2D`` without its DFT).
_DISK_DIRECT_TAPS = 121

#: With more residual taps than this (the 5×5 anti-aliasing of radius > 8 leaves 130-190)
#: the split is no faster than OpenCV's DFT of the whole kernel, which is used instead.
_DISK_MAX_RESIDUAL_TAPS = 64


@functools.lru_cache(maxsize=64)
def _disk_plan(radius: float, alias_blur: float) -> _DiskPlan | None:
    """Split the defocus kernel K into a disk D of constant weight, blurred by the separable
    anti-aliasing Gaussian G, and a sparse residual E = K − G ⊛ D.

    E is zero where ``disk_kernel``'s reflect-101 anti-aliasing does not reach the border of
    its support (radius 3, 4 and 6 of ImageNet-C) and a few dozen taps at the four tips
    otherwise. None when the kernel is small enough to apply directly, the residual has
    more than :data:`_DISK_MAX_RESIDUAL_TAPS` taps, or D is not a disk of full columns.
    """
    kernel = disk_kernel(radius, alias_blur)
    trimmed, _, _ = _trim(kernel)
    if trimmed.size <= _DISK_DIRECT_TAPS:
        return None
    disk, ksize = disk_parts(radius)
    half, spread = disk.shape[0] // 2, ksize // 2
    values = np.unique(disk[disk > 0])
    if values.size != 1:
        return None
    columns, heights = [], []
    for col in range(disk.shape[1]):
        rows = np.nonzero(disk[:, col])[0]
        if rows.size == 0:
            continue
        if rows[0] + rows[-1] != 2 * half or rows.size != rows[-1] - rows[0] + 1:
            return None  # not a symmetric interval
        columns.append(col - half)
        heights.append(half - rows[0])
    gauss = cv2.getGaussianKernel(ksize, alias_blur, ktype=cv2.CV_64F)[:, 0]
    blurred = np.zeros((disk.shape[0] + 2 * spread,) * 2)
    for i, gy in enumerate(gauss):
        for j, gx in enumerate(gauss):
            blurred[i : i + disk.shape[0], j : j + disk.shape[1]] += gy * gx * disk
    residual = -blurred
    residual[spread:-spread, spread:-spread] += kernel
    order = np.argsort(np.abs(residual), axis=None)
    dropped = np.cumsum(np.abs(residual).ravel()[order]) <= _DISK_RESIDUAL_BUDGET
    keep = np.zeros(residual.size, bool)
    keep[order[~dropped]] = True
    keep = keep.reshape(residual.shape)
    rows, cols = np.nonzero(keep)
    if rows.size > _DISK_MAX_RESIDUAL_TAPS:
        return None
    centre = half + spread
    return _DiskPlan(
        gauss=gauss.astype(np.float32),
        value=float(values[0]),
        columns=np.asarray(columns, np.int64),
        heights=np.asarray(heights, np.int64),
        tap_rows=(rows - centre).astype(np.int64),
        tap_cols=(cols - centre).astype(np.int64),
        tap_weights=residual[rows, cols].astype(np.float32),
        pad=half + spread,
    )


def correlate_disk(image: np.ndarray, plan: _DiskPlan) -> np.ndarray:
    """Correlation with the defocus kernel of ``plan``, reflect-101 borders, in O(radius) per
    pixel: ``corr(P, K) = corr(corr(P, G), D) + corr(P, E)`` on the image P padded once.

    ``corr(·, D)`` sums, per disk column, a vertical run of the Gaussian-filtered image,
    read off running column sums (float64, ring buffer); the residual taps are added as
    shifted copies. Equal to ``cv2.filter2D`` with the whole kernel up to float rounding.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    pad = plan.pad
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    filtered = cv2.sepFilter2D(
        padded, cv2.CV_32F, plan.gauss, plan.gauss, borderType=cv2.BORDER_REFLECT_101
    )
    rows = height + 2 * pad
    out = np.empty(image.shape, np.float32)
    _disk_sums(
        filtered.reshape(rows, -1),
        padded.reshape(rows, -1),
        (plan.columns + pad) * channels,
        plan.heights,
        plan.value,
        plan.tap_rows + pad,
        (plan.tap_cols + pad) * channels,
        plan.tap_weights,
        pad,
        out.reshape(height, width * channels),
    )
    return out


@njit(cache=True, nogil=True)
def _disk_sums(
    filtered: np.ndarray,
    padded: np.ndarray,
    offsets: np.ndarray,
    heights: np.ndarray,
    value: float,
    tap_rows: np.ndarray,
    tap_cols: np.ndarray,
    tap_weights: np.ndarray,
    pad: int,
    out: np.ndarray,
) -> None:
    """``out[y] = value · Σ_i Σ_{|t| ≤ heights[i]} filtered[y + pad + t, offsets[i] + ·]
    + Σ_t tap_weights[t] · padded[y + tap_rows[t], tap_cols[t] + ·]`` (2-D arrays)."""
    height, width = out.shape
    reach = 0
    for h in heights:
        reach = max(reach, h)
    span = 2 * reach + 2
    # ring[k % span] = Σ_{first <= k' < k} filtered[k'] for the rows k the current output row
    # reads (running column sums in float64: differences of them are exact to ~1e-13)
    ring = np.zeros((span, filtered.shape[1]), np.float64)
    first = pad - reach
    for k in range(first + 1, first + span):
        src = filtered[k - 1]
        prev = ring[(k - 1) % span]
        cur = ring[k % span]
        for j in range(src.size):
            cur[j] = prev[j] + src[j]
    acc = np.empty(width, np.float64)
    for y in range(height):
        if y > 0:
            k = y + pad + reach + 1
            src = filtered[k - 1]
            prev = ring[(k - 1) % span]
            cur = ring[k % span]
            for j in range(src.size):
                cur[j] = prev[j] + src[j]
        acc[:] = 0.0
        for i in range(offsets.size):
            lo = ring[(y + pad - heights[i]) % span, offsets[i] : offsets[i] + width]
            hi = ring[(y + pad + heights[i] + 1) % span, offsets[i] : offsets[i] + width]
            for j in range(width):
                acc[j] += hi[j] - lo[j]
        dst = out[y]
        for j in range(width):
            dst[j] = np.float32(acc[j] * value)
        for t in range(tap_weights.size):
            w = tap_weights[t]
            src = padded[y + tap_rows[t], tap_cols[t] : tap_cols[t] + width]
            for j in range(width):
                dst[j] += w * src[j]


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
    truncate=True,
)
def defocus_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Defocus: correlation with an anti-aliased disk (:func:`disk_kernel`), reflect-101 borders."""
    radius, alias_blur = level
    plan = _disk_plan(float(radius), float(alias_blur))
    if plan is None:
        out = correlate_direct(image, disk_kernel(radius, alias_blur), cv2.BORDER_REFLECT_101)
    else:
        out = correlate_disk(image, plan)
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
    truncate=True,
    legacy_seed=True,
)
def motion_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Linear motion blur along a random direction in [-45°, 45°] (imagecorruptions' algorithm).

    The angle is ``rng.uniform(-45, 45)`` from ``RandomState(seed)`` (``legacy_seed``): the
    draw imagecorruptions makes after ``np.random.seed(seed)``, so a seed gives its output.

    The weighted shift-and-add is folded into one kernel (:func:`motion_kernel`) and applied
    by correlation with replicated borders, which equals the reference's edge-replicating
    shifts; only its 2·radius + 1 (or fewer) non-zero taps are summed
    (:func:`correlate_taps`).
    """
    radius, sigma = level
    angle = float(rng.uniform(-45.0, 45.0))
    kernel = motion_kernel(radius, sigma, angle, image.shape[:2])
    # trim the empty margin so the filter only covers the taps that are used
    rows, cols = np.nonzero(kernel)
    centre = kernel.shape[0] // 2
    half = int(max(np.abs(rows - centre).max(), np.abs(cols - centre).max()))
    kernel = kernel[centre - half : centre + half + 1, centre - half : centre + half + 1]
    out = correlate_taps(image, kernel, cv2.BORDER_REPLICATE)
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


def glass_parameters(level: tuple) -> tuple[float, int, int]:
    """(σ, δ, iterations) of a glass-blur level, δ and iterations as integers ≥ 1."""
    sigma, delta, iterations = level
    return float(sigma), max(1, round(delta)), max(1, round(iterations))


def glass_moves_shape(delta: int, iterations: int, height: int, width: int) -> tuple:
    """Shape of the (dx, dy) moves: (iterations, H - 2δ, W - 2δ, 2), empty when δ is too big."""
    return (iterations, max(0, height - 2 * delta), max(0, width - 2 * delta), 2)


#: Rows of glass-blur moves drawn per ``RandomState.randint`` call (int64 before narrowing).
_GLASS_DRAW_ROWS = 256


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
    truncate=True,
    legacy_seed=True,
)
def glass_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Frosted glass: Gaussian blur, local pixel shuffling within ±δ, Gaussian blur again.

    The same algorithm as imagecorruptions (sequential pixel moves in reverse raster order,
    see :func:`_local_shuffle`; the intermediate image truncated to ``uint8`` as there),
    compiled with numba; the random offsets are drawn up front, uniform in [-δ, δ - 1]: from
    ``RandomState(seed)`` (``legacy_seed``) in the reference's loop order, so the same integer
    seed moves the same pixels as imagecorruptions after ``np.random.seed(seed)``. δ and the
    iteration count are used as integers (at least 1).
    """
    sigma, delta, iterations = glass_parameters(level)
    height, width = image.shape[:2]
    blurred = gaussian_filter(image, sigma)
    pixels = np.clip(blurred * np.float32(255), 0, 255).astype(np.uint8)  # truncation as reference
    shape = glass_moves_shape(delta, iterations, height, width)
    if isinstance(rng, np.random.RandomState):
        # the reference's np.random.randint(-δ, δ, size=(2,)) per pixel, in its loop order:
        # calls of any size draw the same numbers in sequence (32-bit masked draws, nothing
        # buffered across calls), so blocks of rows keep the int64 temporaries small
        offsets = np.empty(shape, np.int16)
        rows = offsets.reshape(-1, *shape[2:])  # (iterations · rows, columns, 2)
        for start in range(0, rows.shape[0], _GLASS_DRAW_ROWS):
            block = rows[start : start + _GLASS_DRAW_ROWS]
            block[...] = rng.randint(-delta, delta, size=block.shape)
    else:
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
    truncate=True,
)
def zoom_blur(image: np.ndarray, level: tuple, rng: np.random.Generator) -> tuple:
    """Zoom blur: the mean of the image and of centre crops zoomed back up by each factor.

    Each zoom is imagecorruptions' ``clipped_zoom`` (a centre crop of ``ceil(size / z)``
    zoomed bilinearly by ``z`` as ``scipy.ndimage.zoom(order=1)`` maps coordinates, then
    cropped to the image size), done as one affine warp straight to the output size.

    RGB images are warped as RGBA (a fourth channel that is dropped at the end): OpenCV's
    bilinear warp has a SIMD path for four float32 channels and none for three, and gives the
    same RGB values. A zoom of 1 is the image itself and is added without a warp. The sum is
    accumulated in float32 in the same order as ``total += layer`` and returned as ``uint8``
    (``to_uint8(total / (n + 1), truncate=True)``, one compiled pass).
    """
    stop, step = level
    factors = _zoom_factors(stop, step)
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    rgb = image.ndim == 3 and image.shape[2] == 3
    if rgb:
        source, total, layer = _zoom_buffers(height, width)
        cv2.cvtColor(image, cv2.COLOR_RGB2RGBA, dst=source)
        total[...] = source
    else:
        source, total, layer = image, image.copy(), np.empty_like(image)
    for zoom in factors:
        crop_h, crop_w = math.ceil(height / zoom), math.ceil(width / zoom)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        out_h, out_w = round(crop_h * zoom), round(crop_w * zoom)
        scale_y = (crop_h - 1) / (out_h - 1) if out_h > 1 else 0.0
        scale_x = (crop_w - 1) / (out_w - 1) if out_w > 1 else 0.0
        if (crop_h, crop_w, scale_y, scale_x) == (height, width, 1.0, 1.0):
            cv2.add(total, source, dst=total)  # the identity warp (zoom 1) is the image
            continue
        matrix = np.array([[scale_x, 0.0, left], [0.0, scale_y, top]], dtype=np.float64)
        cv2.warpAffine(
            source,
            matrix,
            (width, height),
            dst=layer,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        cv2.add(total, layer, dst=total)
    count = np.float32(len(factors) + 1)
    if not rgb:
        total /= count
        return total, {"zoom_factors": [round(float(z), 4) for z in factors]}
    out = np.empty(image.shape, np.uint8)
    _mean_to_uint8(total.reshape(-1, 4), count, out.reshape(-1, 3))
    return out, {"zoom_factors": [round(float(z), 4) for z in factors]}


#: Largest RGBA float32 buffer (bytes) :func:`_zoom_buffers` keeps between calls.
_ZOOM_BUFFER_MAX_BYTES = 16 * 2**20

_zoom_workspace = threading.local()


def _zoom_buffers(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three (H, W, 4) float32 buffers (source, sum, layer), kept per thread for the last size.

    Zoom blur writes ~50 full-size layers; reusing its buffers avoids the first-touch page
    faults of fresh allocations, which cost as much as the warps on small images. Buffers
    over :data:`_ZOOM_BUFFER_MAX_BYTES` each are allocated per call.
    """
    shape = (height, width, 4)
    kept = getattr(_zoom_workspace, "buffers", None)
    if kept is not None and kept[0].shape == shape:
        return kept
    buffers = tuple(np.empty(shape, np.float32) for _ in range(3))
    if buffers[0].nbytes <= _ZOOM_BUFFER_MAX_BYTES:
        _zoom_workspace.buffers = buffers
    return buffers


@njit(cache=True, nogil=True)
def _mean_to_uint8(total: np.ndarray, count: np.float32, out: np.ndarray) -> None:
    """``out = to_uint8(total[:, :3] / count, truncate=True)`` for (N, 4) float32 ``total``,
    (N, 3) ``out``."""
    scale = np.float32(255)
    for i in range(out.shape[0]):
        for c in range(3):
            v = (total[i, c] / count) * scale
            if v >= 255:
                out[i, c] = 255
            elif v > 0:
                out[i, c] = np.uint8(v)
            else:
                out[i, c] = 0
