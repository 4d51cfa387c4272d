"""The Real-ESRGAN high-order degradation pipeline (Wang et al., ICCV-W 2021).

A re-implementation, from the paper and the published training code's description, of the
synthetic "second-order" degradation model used to train Real-ESRGAN. The stage layout is the
published code's (Real-ESRGAN 0.3.0 ``RealESRGANModel.feed_data``, kernels drawn as in BasicSR
``RealESRGANDataset``):

1. first stage: blur (one of six Gaussian-like kernels, or a 2-D sinc) → random resize →
   Gaussian or Poisson noise (colour or gray) → JPEG;
2. second stage: blur (with probability 0.8) → random resize to a size relative to the final
   ``1/4`` size → noise, with milder ranges and **no JPEG**;
3. final step, in one of two random orders: [resize to ``1/4`` + optional sinc] then JPEG,
   or JPEG then [resize to ``1/4`` + optional sinc].

So the second order makes two JPEG round trips (first stage and final step), as the first
order does. The paper's Fig. 2 draws a JPEG in each stage; that variant (three round trips)
is the level ``"second_order_jpeg_per_stage"``, off by default and not the published code.

Default parameters mirror ``options/train_realesrgan_x4plus.yml`` of xinntao/Real-ESRGAN
(see :data:`REALESRGAN_DEFAULTS`); the sampling logic follows the paper and the published
dataset/model description (kernel sizes, sinc cut-off ranges, the β split at 1, the Poisson
"number of grey levels" rule). No code was taken from those repositories.

Known differences from the published pipeline, on purpose (their measured sizes are in
docs/DEGRADATIONS.md):

- The clean image is degraded as is. The published training code degrades an
  unsharp-masked (USM) copy of the ground truth; that sharpening is a training-target
  trick, not a camera degradation, and a benchmark's low-quality input must derive from
  the reference image it is scored against.
- JPEG is Pillow/libjpeg (baseline, 4:2:0 chroma subsampling) at an integer quality: the
  quality is drawn uniformly from the continuous range, as in the original, then rounded.
  The original uses DiffJPEG, a differentiable PyTorch JPEG simulation that accepts real
  qualities and does not quantise its input to 8 bits first.
- Filtering uses mirror ("reflect") padding extended periodically, so tiny intermediate
  images (smaller than half a 21-tap kernel) work; for larger images this is exactly the
  reflect padding of the original.
- The low-resolution result (rounded to 8 bits, as in the original) is resized back to the
  input size with bicubic interpolation, because the benchmark's restorers (SUPIR-style)
  take the low-quality image at the target size.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from scipy import ndimage, special

from restorelab.degradations.base import register_degradation, to_uint8

__all__ = [
    "KERNEL_TYPES",
    "LEVELS",
    "REALESRGAN_DEFAULTS",
    "RealESRGANConfig",
    "StageConfig",
    "anisotropic_gaussian_kernel",
    "circular_lowpass_kernel",
    "generalized_gaussian_kernel",
    "isotropic_gaussian_kernel",
    "kernel_grid",
    "plateau_kernel",
    "realesrgan",
]

#: Names of the blur-kernel families, in the order of the yml's ``kernel_list``.
KERNEL_TYPES: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)

#: The two orders of the final step, as recorded in ``params["final"]["order"]``.
FINAL_ORDERS: tuple[str, str] = ("resize_sinc_then_jpeg", "jpeg_then_resize_sinc")

#: Values of the op's ``level``: the severity table (first and second order, the published
#: layout) and the paper-figure variant with a JPEG in each stage (not in the table; pass it
#: as a level, e.g. ``apply_level(image, "realesrgan", "second_order_jpeg_per_stage")``).
LEVELS: tuple[str, ...] = ("first_order", "second_order", "second_order_jpeg_per_stage")

#: Interpolation modes of ``torch.nn.functional.interpolate`` drawn uniformly at each resize.
RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")


# --------------------------------------------------------------------------------------------
# Parameter tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageConfig:
    """Sampling ranges of one degradation stage (blur → resize → noise, and JPEG in the first).

    Ranges are closed intervals ``(low, high)`` sampled uniformly. σ of the blur kernels is in
    pixels; Gaussian-noise σ is on the 0-255 scale; JPEG quality is the libjpeg quality factor.
    """

    blur_prob: float  # probability that the stage blurs at all
    kernel_list: tuple[str, ...]  # kernel families
    kernel_prob: tuple[float, ...]  # their probabilities (sum to 1)
    kernel_sizes: tuple[int, ...]  # odd kernel sizes, drawn uniformly
    sinc_prob: float  # probability that the blur kernel is a 2-D sinc instead
    blur_sigma: tuple[float, float]  # σx, σy range, pixels
    betag_range: tuple[float, float]  # β of the generalized Gaussian kernels
    betap_range: tuple[float, float]  # β of the plateau kernels
    resize_prob: tuple[float, float, float]  # probabilities of up, down, keep
    resize_range: tuple[float, float]  # scale range: down draws [low, 1], up draws [1, high]
    gaussian_noise_prob: float  # Gaussian noise with this probability, else Poisson
    noise_range: tuple[float, float]  # Gaussian σ, on the 0-255 scale
    poisson_scale_range: tuple[float, float]  # multiplier of the Poisson noise
    gray_noise_prob: float  # probability that the noise is the same in all channels
    jpeg_range: tuple[float, float]  # JPEG quality range (first stage; final step: second's)


@dataclass(frozen=True)
class RealESRGANConfig:
    """The whole pipeline's parameters: two stages, the final sinc, the scale factor."""

    first: StageConfig
    second: StageConfig
    final_sinc_prob: float  # probability of the final 2-D sinc filter
    final_sinc_cutoff: tuple[float, float]  # its cut-off range, radians per pixel
    sinc_cutoff_small: tuple[float, float]  # stage-sinc cut-off for kernels < 13 taps
    sinc_cutoff_large: tuple[float, float]  # stage-sinc cut-off for kernels ≥ 13 taps
    final_order_prob: float  # probability of [resize + sinc] then JPEG (else the reverse)
    scale: int  # the final downscale factor


_KERNEL_SIZES = tuple(range(7, 22, 2))  # 7, 9, ..., 21 (``kernel_range`` in the dataset)
_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # kernel_prob, kernel_prob2

#: Published defaults: xinntao/Real-ESRGAN ``options/train_realesrgan_x4plus.yml`` (yml key in
#: the comments; keys ending in 2 belong to the second stage) and the constants of
#: ``realesrgan/data/realesrgan_dataset.py`` / ``realesrgan/models/realesrgan_model.py``.
REALESRGAN_DEFAULTS = RealESRGANConfig(
    first=StageConfig(
        blur_prob=1.0,  # the first stage always blurs
        kernel_list=KERNEL_TYPES,  # kernel_list
        kernel_prob=_KERNEL_PROB,  # kernel_prob: .45/.25/.12/.03/.12/.03
        kernel_sizes=_KERNEL_SIZES,  # blur_kernel_size: 21 is the largest; sizes 7..21 odd
        sinc_prob=0.1,  # sinc_prob
        blur_sigma=(0.2, 3.0),  # blur_sigma
        betag_range=(0.5, 4.0),  # betag_range
        betap_range=(1.0, 2.0),  # betap_range
        resize_prob=(0.2, 0.7, 0.1),  # resize_prob: up, down, keep
        resize_range=(0.15, 1.5),  # resize_range
        gaussian_noise_prob=0.5,  # gaussian_noise_prob
        noise_range=(1.0, 30.0),  # noise_range (0-255 scale)
        poisson_scale_range=(0.05, 3.0),  # poisson_scale_range
        gray_noise_prob=0.4,  # gray_noise_prob
        jpeg_range=(30.0, 95.0),  # jpeg_range
    ),
    second=StageConfig(
        blur_prob=0.8,  # second_blur_prob
        kernel_list=KERNEL_TYPES,  # kernel_list2
        kernel_prob=_KERNEL_PROB,  # kernel_prob2
        kernel_sizes=_KERNEL_SIZES,  # blur_kernel_size2: 21
        sinc_prob=0.1,  # sinc_prob2
        blur_sigma=(0.2, 1.5),  # blur_sigma2
        betag_range=(0.5, 4.0),  # betag_range2
        betap_range=(1.0, 2.0),  # betap_range2
        resize_prob=(0.3, 0.4, 0.3),  # resize_prob2: up, down, keep
        resize_range=(0.3, 1.2),  # resize_range2
        gaussian_noise_prob=0.5,  # gaussian_noise_prob2
        noise_range=(1.0, 25.0),  # noise_range2 (0-255 scale)
        poisson_scale_range=(0.05, 2.5),  # poisson_scale_range2
        gray_noise_prob=0.4,  # gray_noise_prob2
        jpeg_range=(30.0, 95.0),  # jpeg_range2: the final step's JPEG (and the variant's 2nd)
    ),
    final_sinc_prob=0.8,  # final_sinc_prob
    final_sinc_cutoff=(math.pi / 3, math.pi),  # dataset: final sinc ω_c ~ U[π/3, π]
    sinc_cutoff_small=(math.pi / 3, math.pi),  # dataset: kernel_size < 13
    sinc_cutoff_large=(math.pi / 5, math.pi),  # dataset: kernel_size ≥ 13
    final_order_prob=0.5,  # model: the two final orders are equally likely
    scale=4,  # scale
)


# --------------------------------------------------------------------------------------------
# Blur kernels
# --------------------------------------------------------------------------------------------


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"kernel size must be a positive int, got {size!r}")
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    return int(size)


def kernel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets from the centre of an odd ``size`` × ``size`` kernel.

    Parameters
    ----------
    size : int
        Odd kernel size in pixels.

    Returns
    -------
    x, y : ndarray of float64, shape (size, size)
        ``x`` is the column offset (positive to the right), ``y`` the row offset (positive
        downwards), both in pixels, ``0`` at the centre tap ``[size // 2, size // 2]``.
    """
    size = _check_size(size)
    ax = np.arange(size, dtype=np.float64) - size // 2
    x, y = np.meshgrid(ax, ax)
    return x, y


def _mahalanobis2(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """``dᵀ Σ⁻¹ d`` on the kernel grid, Σ = R(θ) diag(σx², σy²) R(θ)ᵀ."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"sigmas must be positive, got {sigma_x}, {sigma_y}")
    x, y = kernel_grid(size)
    c, s = math.cos(theta), math.sin(theta)
    # Coordinates in the rotated frame of the principal axes: u along σx, v along σy.
    u = c * x + s * y
    v = -s * x + c * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def anisotropic_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float
) -> np.ndarray:
    """Bivariate Gaussian blur kernel with covariance ``R(θ) diag(σx², σy²) R(θ)ᵀ``.

    Parameters
    ----------
    size : int
        Odd kernel size in pixels.
    sigma_x, sigma_y : float
        Standard deviations in pixels along the kernel's two principal axes.
    theta : float
        Angle in radians from the image x axis (columns) to the σx axis, measured towards the
        y axis (rows, pointing down), i.e. clockwise on screen.

    Returns
    -------
    ndarray of float64, shape (size, size)
        ``exp(-½ dᵀ Σ⁻¹ d)`` at the integer offsets ``d`` of :func:`kernel_grid`, normalised
        to sum to 1. Point-symmetric: ``k[::-1, ::-1] == k``.
    """
    kernel = np.exp(-0.5 * _mahalanobis2(size, sigma_x, sigma_y, theta))
    return kernel / kernel.sum()


def isotropic_gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Isotropic Gaussian blur kernel of standard deviation ``sigma`` pixels, summing to 1.

    Equal to the outer product of two normalised, sampled 1-D Gaussians of σ = ``sigma``
    (truncated at ``size // 2`` pixels from the centre). See
    :func:`anisotropic_gaussian_kernel` for the conventions.
    """
    return anisotropic_gaussian_kernel(size, sigma, sigma, 0.0)


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> np.ndarray:
    """Generalized Gaussian kernel ``exp(-½ (dᵀ Σ⁻¹ d)^β)``, normalised to sum to 1.

    ``β = 1`` is the Gaussian of :func:`anisotropic_gaussian_kernel`; ``β < 1`` gives heavier
    tails and a sharper peak, ``β > 1`` a flatter top and a faster fall-off. σ in pixels, θ in
    radians, same conventions as :func:`anisotropic_gaussian_kernel`; pass ``sigma_y =
    sigma_x`` and ``theta = 0`` for the isotropic kernel.
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    kernel = np.exp(-0.5 * _mahalanobis2(size, sigma_x, sigma_y, theta) ** beta)
    return kernel / kernel.sum()


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> np.ndarray:
    """Plateau-shaped kernel ``1 / (1 + (dᵀ Σ⁻¹ d)^β)``, normalised to sum to 1.

    A flat top falling off polynomially (heavy tails); larger ``β`` gives a flatter plateau and
    a sharper shoulder. σ in pixels, θ in radians, conventions of
    :func:`anisotropic_gaussian_kernel`; ``sigma_y = sigma_x``, ``theta = 0`` is isotropic.
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    kernel = 1.0 / (1.0 + _mahalanobis2(size, sigma_x, sigma_y, theta) ** beta)
    return kernel / kernel.sum()


def circular_lowpass_kernel(cutoff: float, size: int) -> np.ndarray:
    """Circularly symmetric ideal low-pass ("2-D sinc") kernel, normalised to sum to 1.

    The inverse Fourier transform of a disc of radius ``cutoff`` in frequency:
    ``ω J₁(ω r) / (2π r)`` with ``r`` the distance in pixels from the centre tap and ``J₁``
    the Bessel function of the first kind; its limit ``ω² / (4π)`` at ``r = 0``. Sampled on
    the grid of :func:`kernel_grid`, so it is truncated (not windowed) and has ringing
    side-lobes, which is the point: it simulates ringing and overshoot artefacts.

    Parameters
    ----------
    cutoff : float
        Cut-off angular frequency ω in radians per pixel, in ``(0, π]`` (π is Nyquist).
    size : int
        Odd kernel size in pixels.

    Returns
    -------
    ndarray of float64, shape (size, size)
    """
    if not 0 < cutoff <= math.pi + 1e-12:
        raise ValueError(f"cutoff must be in (0, π], got {cutoff}")
    x, y = kernel_grid(size)
    r = np.hypot(x, y)
    safe_r = np.where(r == 0, 1.0, r)
    kernel = cutoff * special.j1(cutoff * safe_r) / (2 * math.pi * safe_r)
    kernel[r == 0] = cutoff**2 / (4 * math.pi)
    return kernel / kernel.sum()


# --------------------------------------------------------------------------------------------
# Sampling helpers (all randomness comes from the generator passed in)
# --------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _split_beta(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """β uniform on [low, 1] or on [1, high], each with probability ½ (as published)."""
    if rng.random() < 0.5:
        return float(rng.uniform(bounds[0], 1.0))
    return float(rng.uniform(1.0, bounds[1]))


def _sample_blur_kernel(
    rng: np.random.Generator, stage: StageConfig, config: RealESRGANConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw one stage's blur kernel (a sinc with ``sinc_prob``, else a mixed kernel)."""
    size = int(rng.choice(stage.kernel_sizes))
    if rng.random() < stage.sinc_prob:
        bounds = config.sinc_cutoff_small if size < 13 else config.sinc_cutoff_large
        cutoff = _uniform(rng, bounds)
        return circular_lowpass_kernel(cutoff, size), {
            "kernel_type": "sinc",
            "kernel_size": size,
            "cutoff": cutoff,
        }
    kind = stage.kernel_list[int(rng.choice(len(stage.kernel_list), p=stage.kernel_prob))]
    sigma_x = _uniform(rng, stage.blur_sigma)
    if kind.endswith("_aniso") or kind == "aniso":
        sigma_y = _uniform(rng, stage.blur_sigma)
        theta = float(rng.uniform(-math.pi, math.pi))
    else:
        sigma_y, theta = sigma_x, 0.0
    params: dict[str, Any] = {
        "kernel_type": kind,
        "kernel_size": size,
        "sigma_x": sigma_x,
        "sigma_y": sigma_y,
        "theta": theta,
    }
    if kind.startswith("generalized"):
        beta = _split_beta(rng, stage.betag_range)
        kernel = generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, beta)
        params["beta"] = beta
    elif kind.startswith("plateau"):
        beta = _split_beta(rng, stage.betap_range)
        kernel = plateau_kernel(size, sigma_x, sigma_y, theta, beta)
        params["beta"] = beta
    else:
        kernel = anisotropic_gaussian_kernel(size, sigma_x, sigma_y, theta)
    return kernel, params


# --------------------------------------------------------------------------------------------
# Image operations on float64 (H, W, 3) arrays
# --------------------------------------------------------------------------------------------


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-channel 2-D correlation with mirror padding (no edge repeat), output same size."""
    return ndimage.correlate(image, kernel[:, :, None], mode="mirror")


def _resize(
    image: np.ndarray, mode: str, *, size: tuple[int, int] | None = None, scale: float = 1.0
) -> np.ndarray:
    """``torch.nn.functional.interpolate`` (no antialias, ``align_corners=False``) in float64.

    Either an explicit ``size`` (rows, columns) or a ``scale`` factor, which gives
    ``floor(side × scale)`` pixels per side as in PyTorch (at least 1).
    """
    h, w = image.shape[:2]
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    if size is None and min(math.floor(h * scale), math.floor(w * scale)) >= 1:
        out = F.interpolate(tensor, scale_factor=scale, mode=mode)
    else:
        if size is None:
            size = (math.floor(h * scale), math.floor(w * scale))
        size = (max(1, int(size[0])), max(1, int(size[1])))
        out = F.interpolate(tensor, size=size, mode=mode)
    return out[0].numpy().transpose(1, 2, 0).copy()


def _gaussian_noise(
    image: np.ndarray, rng: np.random.Generator, stage: StageConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    sigma = _uniform(rng, stage.noise_range)
    gray = bool(rng.random() < stage.gray_noise_prob)
    h, w = image.shape[:2]
    field = rng.standard_normal((h, w, 1) if gray else (h, w, 3))
    out = np.clip(image + field * (sigma / 255.0), 0.0, 1.0)
    return out, {"kind": "gaussian", "sigma": sigma, "gray": gray}


def _poisson_field(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise of ``image`` (any number of channels) quantised to 8 bits.

    The photon count per grey level is ``2^ceil(log2(number of distinct 8-bit values))``:
    ``noise = Poisson(q × n) / n − q`` with ``q`` the quantised image.
    """
    quantised = np.clip(np.rint(image * 255.0), 0, 255) / 255.0
    levels = 2.0 ** math.ceil(math.log2(max(1, len(np.unique(quantised)))))
    return rng.poisson(quantised * levels) / levels - quantised


def _poisson_noise(
    image: np.ndarray, rng: np.random.Generator, stage: StageConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    scale = _uniform(rng, stage.poisson_scale_range)
    gray = bool(rng.random() < stage.gray_noise_prob)
    if gray:
        # ITU-R 601 luma weights of torchvision's rgb_to_grayscale.
        luma = image @ np.array([0.2989, 0.587, 0.114])
        noise = _poisson_field(luma[:, :, None], rng)
    else:
        noise = _poisson_field(image, rng)
    out = np.clip(image + noise * scale, 0.0, 1.0)
    return out, {"kind": "poisson", "scale": scale, "gray": gray}


def _jpeg(
    image: np.ndarray, rng: np.random.Generator, bounds: tuple[float, float]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Clip, round to 8 bits, encode as baseline JPEG (4:2:0) with Pillow, decode."""
    drawn = _uniform(rng, bounds)
    quality = round(drawn)
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=quality, subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.float64) / 255.0
    return out, {"quality": quality, "quality_drawn": drawn}


def _random_resize(
    image: np.ndarray,
    rng: np.random.Generator,
    stage: StageConfig,
    base_size: tuple[float, float] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Up/down/keep resize; relative to the current size, or to ``base_size`` if given.

    With ``base_size`` (rows, columns; the input size divided by the scale factor, not
    rounded) the target is ``int(base_size × scale)`` per side, as in the published second
    stage.
    """
    direction = ("up", "down", "keep")[int(rng.choice(3, p=stage.resize_prob))]
    if direction == "up":
        scale = float(rng.uniform(1.0, stage.resize_range[1]))
    elif direction == "down":
        scale = float(rng.uniform(stage.resize_range[0], 1.0))
    else:
        scale = 1.0
    mode = RESIZE_MODES[int(rng.integers(len(RESIZE_MODES)))]
    if base_size is None:
        out = _resize(image, mode, scale=scale)
    else:
        size = (int(base_size[0] * scale), int(base_size[1] * scale))
        out = _resize(image, mode, size=size)
    return out, {
        "direction": direction,
        "scale": scale,
        "mode": mode,
        "size": [int(out.shape[0]), int(out.shape[1])],
    }


def _stage(
    image: np.ndarray,
    rng: np.random.Generator,
    stage: StageConfig,
    config: RealESRGANConfig,
    base_size: tuple[float, float] | None,
    *,
    name: str,
    jpeg: bool,
    ops: list[str],
) -> tuple[np.ndarray, dict[str, Any]]:
    """One degradation stage: blur → resize → noise, then JPEG if ``jpeg``.

    Appends ``"<name>.<operation>"`` to ``ops`` for each operation that ran, in order.
    """
    params: dict[str, Any] = {}
    if stage.blur_prob >= 1.0 or rng.random() < stage.blur_prob:
        kernel, kernel_params = _sample_blur_kernel(rng, stage, config)
        image = _filter(image, kernel)
        params["blur"] = {"applied": True, **kernel_params}
        ops.append(f"{name}.blur")
    else:
        params["blur"] = {"applied": False}
    image, params["resize"] = _random_resize(image, rng, stage, base_size)
    ops.append(f"{name}.resize")
    if rng.random() < stage.gaussian_noise_prob:
        image, params["noise"] = _gaussian_noise(image, rng, stage)
    else:
        image, params["noise"] = _poisson_noise(image, rng, stage)
    ops.append(f"{name}.noise")
    if jpeg:
        image, params["jpeg"] = _jpeg(image, rng, stage.jpeg_range)
        ops.append(f"{name}.jpeg")
    return image, params


def _final_step(
    image: np.ndarray,
    rng: np.random.Generator,
    config: RealESRGANConfig,
    lr_size: tuple[int, int],
    ops: list[str],
) -> tuple[np.ndarray, dict[str, Any]]:
    """[resize to ``lr_size`` + optional sinc] and JPEG, in a random order.

    Appends ``"final.resize"``, ``"final.sinc"`` (when drawn) and ``"final.jpeg"`` to ``ops``
    in the order they ran.
    """
    order = FINAL_ORDERS[0] if rng.random() < config.final_order_prob else FINAL_ORDERS[1]
    mode = RESIZE_MODES[int(rng.integers(len(RESIZE_MODES)))]
    if rng.random() < config.final_sinc_prob:
        size = int(rng.choice(config.second.kernel_sizes))
        cutoff = _uniform(rng, config.final_sinc_cutoff)
        sinc: np.ndarray | None = circular_lowpass_kernel(cutoff, size)
        sinc_params: dict[str, Any] = {"applied": True, "kernel_size": size, "cutoff": cutoff}
    else:
        sinc, sinc_params = None, {"applied": False}

    def resize_and_sinc(x: np.ndarray) -> np.ndarray:
        x = _resize(x, mode, size=lr_size)
        ops.append("final.resize")
        if sinc is None:
            return x
        ops.append("final.sinc")
        return _filter(x, sinc)

    if order == FINAL_ORDERS[0]:
        image = resize_and_sinc(image)
        image, jpeg_params = _jpeg(image, rng, config.second.jpeg_range)
        ops.append("final.jpeg")
    else:
        image, jpeg_params = _jpeg(image, rng, config.second.jpeg_range)
        ops.append("final.jpeg")
        image = resize_and_sinc(image)
    return image, {
        "order": order,
        "resize": {"mode": mode, "size": [int(lr_size[0]), int(lr_size[1])]},
        "sinc": sinc_params,
        "jpeg": jpeg_params,
    }


# --------------------------------------------------------------------------------------------
# The registered op
# --------------------------------------------------------------------------------------------


@register_degradation(
    "realesrgan",
    levels=("first_order", "second_order"),
    unit="pipeline",
    stochastic=True,
    reference="Wang et al. 2021, arXiv:2107.10833",
)
def realesrgan(image: np.ndarray, level: str, rng: np.random.Generator) -> tuple:
    """Real-ESRGAN synthetic degradation (×4), resized back to the input size with bicubic.

    Severity 1 (``"first_order"``) applies the first stage (blur → resize → noise → JPEG)
    and then the final step; severity 2 (``"second_order"``) is the published second-order
    pipeline: first stage, second stage (blur with probability 0.8 → resize relative to the
    ``1/4`` size → noise, no JPEG), final step. The final step is, with probability ½ each,
    [resize to ``(H // 4, W // 4)`` + 2-D sinc with probability 0.8] then JPEG, or JPEG then
    [resize + sinc]. Both severities thus make two JPEG round trips. The ``1/4``-size result
    is rounded to 8 bits and resized back up to (H, W) with bicubic interpolation (PyTorch,
    ``align_corners=False``) and clipped, since SUPIR-style restorers take the low-quality
    image at the target size. Parameters are :data:`REALESRGAN_DEFAULTS` (the published
    ``train_realesrgan_x4plus.yml``).

    Parameters
    ----------
    image : ndarray of float64, shape (H, W, 3)
        Clean RGB image in [0, 1]; any size (≥ 32 px a side is the intended use).
    level : {"first_order", "second_order", "second_order_jpeg_per_stage"}
        The severity-table entry, or the variant drawn in the paper's Fig. 2 (a JPEG at the
        end of the second stage too: three round trips). The variant is not the published
        code and not in the severity table; at one seed it is ``"second_order"`` plus that
        JPEG (the earlier draws are the same).
    rng : numpy.random.Generator
        The only source of randomness. Three child generators are drawn from it, one each for
        the first stage, the second stage and the final step, so at one seed severity 1 is
        severity 2 without its second stage (common random numbers).

    Returns
    -------
    out : ndarray of float64, shape (H, W, 3)
        The degraded image in [0, 1].
    params : dict
        JSON-serialisable record of every draw: ``"ops"``, the operations that ran in order
        (``"first.blur"``, ``"first.resize"``, ``"first.noise"``, ``"first.jpeg"``,
        ``"second.blur"`` when drawn, ``"second.resize"``, ``"second.noise"``,
        ``"second.jpeg"`` in the variant only, then ``"final.resize"``, ``"final.sinc"`` when
        drawn and ``"final.jpeg"`` in the drawn order, then ``"round"`` to 8 bits and
        ``"resize_back"``); ``"layout"`` (``"published"`` or ``"jpeg_per_stage"``);
        ``"first"`` (and ``"second"``) with the ``"blur"`` kernel type, size, σx/σy/θ/β or sinc
        cut-off, the ``"resize"`` direction, scale, mode and size, the ``"noise"`` kind, σ or
        scale and gray flag, and the ``"jpeg"`` quality where a JPEG ran; ``"final"`` with the
        ``"order"``, resize mode/size, ``"sinc"`` and ``"jpeg"``; plus ``"stages"``,
        ``"scale"`` and ``"lr_size"``.

    Notes
    -----
    Deviations from the published pipeline: no unsharp masking of the clean image first;
    Pillow JPEG at an integer quality instead of DiffJPEG; mirror padding extended
    periodically for images smaller than the kernel; the bicubic resize back to (H, W).
    """
    if level not in LEVELS:
        raise ValueError(f"realesrgan: unknown level {level!r}; expected one of {LEVELS}")
    config = REALESRGAN_DEFAULTS
    h, w = image.shape[:2]
    lr_size = (max(1, h // config.scale), max(1, w // config.scale))
    first_rng, second_rng, final_rng = (
        np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=3)
    )

    out = np.asarray(image, dtype=np.float64)
    ops: list[str] = []
    second_order = level != "first_order"
    params: dict[str, Any] = {
        "stages": 2 if second_order else 1,
        "layout": "jpeg_per_stage" if level == "second_order_jpeg_per_stage" else "published",
        "ops": ops,
    }
    out, params["first"] = _stage(
        out, first_rng, config.first, config, None, name="first", jpeg=True, ops=ops
    )
    if second_order:
        base = (h / config.scale, w / config.scale)
        out, params["second"] = _stage(
            out,
            second_rng,
            config.second,
            config,
            base,
            name="second",
            jpeg=params["layout"] == "jpeg_per_stage",
            ops=ops,
        )
    out, params["final"] = _final_step(out, final_rng, config, lr_size, ops)

    low = np.clip(np.rint(out * 255.0), 0, 255) / 255.0
    up = _resize(low, "bicubic", size=(h, w))
    ops += ["round", "resize_back"]
    params["scale"] = config.scale
    params["lr_size"] = [int(lr_size[0]), int(lr_size[1])]
    return np.clip(up, 0.0, 1.0), params
