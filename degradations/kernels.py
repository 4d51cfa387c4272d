"""Blur kernels as plain arrays (float32, normalised to sum 1), and the compiled conversion
loops behind ``to_float32`` / ``to_uint8``.

Conventions: kernels are 2-D, indexed [row, column] = [y, x], with the centre at
``(size // 2, size // 2)``; they are applied by correlation (``cv2.filter2D``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numba import njit


def gaussian_radius(sigma: float, truncate: float = 4.0) -> int:
    """Half-width of a Gaussian kernel cut at ``truncate`` σ (scikit-image / SciPy rule)."""
    return int(truncate * float(sigma) + 0.5)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """ImageNet-C's defocus kernel: a filled disk of ``radius`` px, anti-aliased by a Gaussian.

    Like imagecorruptions' ``disk``: the support is 17×17 for radius ≤ 8 (3×3 anti-aliasing
    blur) and ``2·radius + 1`` square above (5×5 blur), the Gaussian has σ = ``alias_blur`` px
    and reflect-101 borders, and the disk is normalised before the anti-aliasing.
    """
    disk, ksize = disk_parts(radius)
    return cv2.GaussianBlur(disk, ksize=(ksize, ksize), sigmaX=alias_blur)


def disk_parts(radius: float) -> tuple[np.ndarray, int]:
    """The two parts of :func:`disk_kernel`: the normalised filled disk (float32, on the
    kernel's support) and the side of its anti-aliasing Gaussian (3 or 5)."""
    if radius <= 8:
        half, ksize = 8, 3
    else:
        half, ksize = int(radius), 5
    coords = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(coords, coords)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    return disk, ksize


def motion_kernel(
    radius: int, sigma: float, angle_deg: float, max_shift: tuple[int, int]
) -> np.ndarray:
    """ImageNet-C's motion-blur kernel (imagecorruptions' shift-and-add), as one 2-D kernel.

    The image is averaged over ``2·radius + 1`` copies shifted along a line at ``angle_deg``
    (degrees, 0 = horizontal), with one-sided Gaussian weights of σ = ``sigma`` (in steps)
    that favour the unshifted copy. Copies whose shift reaches ``max_shift`` = (H, W) of the
    image are dropped, as in the reference. Correlating with this kernel under replicated
    borders equals the reference's sequence of edge-replicating shifts.
    """
    width = 2 * int(radius) + 1
    weights = np.exp(-(np.arange(width, dtype=np.float64) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    point_y = width * math.sin(math.radians(angle_deg))
    point_x = width * math.cos(math.radians(angle_deg))
    hypot = math.hypot(point_y, point_x)
    size = 2 * width + 1
    kernel = np.zeros((size, size), np.float64)
    centre = width
    for i in range(width):
        dy = -math.ceil(i * point_y / hypot - 0.5)
        dx = -math.ceil(i * point_x / hypot - 0.5)
        if abs(dy) >= max_shift[0] or abs(dx) >= max_shift[1]:
            break
        # shifted[y, x] = image[y - dy, x - dx]  →  correlation tap at offset (-dy, -dx)
        kernel[centre - dy, centre - dx] += weights[i]
    return kernel.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Compiled element loops shared by the ops (numba, cached on disk). They do the same float
# arithmetic, in the same order, as the NumPy expressions they replace; they draw no random
# numbers (the callers pass in fields drawn from their ``rng``).
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def float_to_uint8(values: np.ndarray, out: np.ndarray, truncate: bool) -> None:
    """``out = clip(rint(values · 255), 0, 255)`` on flat arrays, in the dtype of ``values``;
    with ``truncate``, ``uint8(clip(values · 255, 0, 255))`` (truncation, as NumPy's cast).

    NaN gives 0, as NumPy's cast does on x86.
    """
    scale = values.dtype.type(255)
    for i in range(values.size):
        v = values[i] * scale
        if not truncate:
            v = np.rint(v)
        if v >= 255:
            out[i] = 255
        elif v > 0:
            out[i] = np.uint8(v)
        else:
            out[i] = 0


@njit(cache=True, nogil=True)
def uint8_to_float32(values: np.ndarray, out: np.ndarray) -> None:
    """``out = float32(values) · float32(1 / 255)`` on flat arrays."""
    scale = np.float32(1 / 255)
    for i in range(values.size):
        out[i] = np.float32(values[i]) * scale
