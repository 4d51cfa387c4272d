"""The degradation registry and the entry points :func:`degrade` and :func:`degrade_with_params`.

Conventions
-----------
- Images are RGB ``uint8`` arrays of shape (H, W, 3) in and out.
- Each degradation is a pure function ``fn(image, level, rng) -> (image, params)``. It takes
  float32 RGB in [0, 1] (or the ``uint8`` image itself when registered with
  ``takes_uint8=True``) and returns float in [0, 1] or ``uint8``. Float results become
  ``uint8`` by truncation for ops registered with ``truncate=True`` (the ImageNet-C ops:
  their reference ends with ``np.uint8(np.clip(x, 0, 1) * 255)``, and matching it keeps
  mild levels on smooth photographs within 0.01 dB of it, where rounding sat up to 2.5 dB
  above), else by rounding to nearest. ``level`` is the table entry for the severity (σ in
  pixels, a JPEG quality, ...).
- Severity tables are data, stored beside the function (``Degradation.levels``); severity ``k``
  uses ``levels[k - 1]``.
- Randomness: every random draw comes from a ``numpy.random.Generator`` seeded from
  ``(seed, name)``. The severity is deliberately *not* part of the seed: at one seed, all
  severities of an op share the same underlying noise field (common random numbers), so the
  curve over severity compares levels, not draws.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from restorelab.imageio import check_image
from restorelab.registry import Registry

#: Smallest image side, in pixels, that every degradation accepts (as ImageNet-C).
MIN_SIDE = 32

#: ``fn(image, level, rng) -> (degraded, params)``
DegradationFn = Callable[[np.ndarray, Any, np.random.Generator], tuple[np.ndarray, dict]]


@dataclass(frozen=True)
class Degradation:
    """A registered degradation: its function, severity table and metadata."""

    name: str
    fn: DegradationFn
    levels: tuple
    unit: str
    stochastic: bool
    description: str = ""
    reference: str = ""
    takes_uint8: bool = False
    truncate: bool = False
    legacy_seed: bool = False

    @property
    def severities(self) -> tuple[int, ...]:
        """Valid severities, 1-based."""
        return tuple(range(1, len(self.levels) + 1))

    def level(self, severity: int) -> Any:
        """The table entry for ``severity`` (1-based)."""
        if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
            raise TypeError(f"severity must be an int, got {severity!r}")
        if not 1 <= severity <= len(self.levels):
            raise ValueError(f"{self.name}: severity {severity} out of range 1..{len(self.levels)}")
        return self.levels[severity - 1]


@dataclass(frozen=True)
class DegradationResult:
    """A degraded image and the parameters actually used to make it."""

    image: np.ndarray
    params: dict = field(default_factory=dict)


DEGRADATIONS: Registry[Degradation] = Registry("degradation")


def register_degradation(
    name: str,
    *,
    levels: tuple,
    unit: str,
    stochastic: bool,
    reference: str = "",
    takes_uint8: bool = False,
    truncate: bool = False,
    legacy_seed: bool = False,
) -> Callable[[DegradationFn], DegradationFn]:
    """Register ``fn`` as degradation ``name`` with its severity table ``levels``.

    ``takes_uint8`` passes the ``uint8`` image itself instead of float32 in [0, 1];
    ``truncate`` converts a float result to ``uint8`` by truncation, as the op's reference
    implementation does (default: rounding to nearest). ``legacy_seed`` gives the op
    ``numpy.random.RandomState(seed)`` as its generator (see :func:`op_rng`).
    """

    def decorator(fn: DegradationFn) -> DegradationFn:
        doc = (fn.__doc__ or "").strip().splitlines()
        DEGRADATIONS.add(
            name,
            Degradation(
                name=name,
                fn=fn,
                levels=tuple(levels),
                unit=unit,
                stochastic=stochastic,
                description=doc[0] if doc else "",
                reference=reference,
                takes_uint8=takes_uint8,
                truncate=truncate,
                legacy_seed=legacy_seed,
            ),
        )
        return fn

    return decorator


def get_degradation(name: str) -> Degradation:
    """The registered :class:`Degradation` called ``name``."""
    return DEGRADATIONS.get(name)


def list_degradations() -> list[str]:
    """Names of all registered degradations."""
    return DEGRADATIONS.names()


def rng_for(name: str, seed: int, step: int | None = None) -> np.random.Generator:
    """The generator used for op ``name`` at ``seed`` (independent of process and severity).

    ``step`` (≥ 1) distinguishes later steps of a chain, so an op repeated in a chain draws
    fresh noise; the first step of a chain uses the op's own stream (``step=None``).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    entropy = [int(seed), zlib.crc32(name.encode())]
    if step:
        entropy.append(int(step))
    return np.random.default_rng(np.random.SeedSequence(entropy))


def op_rng(
    name: str, seed: int, step: int | None = None
) -> np.random.Generator | np.random.RandomState:
    """The generator op ``name`` draws from at ``seed`` (and chain ``step``).

    :func:`rng_for`, except for ops registered with ``legacy_seed=True`` applied alone or as
    the first step of a chain, with ``seed < 2**32``: those get ``RandomState(seed)``, the
    stream ImageNet-C's code draws from after ``np.random.seed(seed)``. ``motion_blur`` takes
    a single draw (its angle), so with it the same integer seed gives imagecorruptions'
    output, not just its distribution. Still no global state is touched.
    """
    op = get_degradation(name)
    stream = rng_for(op.name, seed, step)  # validates the seed
    if op.legacy_seed and not step and seed < 2**32:
        return np.random.RandomState(int(seed))
    return stream


def to_float(image: np.ndarray) -> np.ndarray:
    """``uint8`` [0, 255] → float64 [0, 1]."""
    return image.astype(np.float64) / 255.0


def to_float32(image: np.ndarray) -> np.ndarray:
    """``uint8`` [0, 255] → float32 [0, 1]."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.flags.c_contiguous:
        # one compiled pass, the same float32 product as the NumPy expression below
        from restorelab.degradations.kernels import uint8_to_float32

        out = np.empty(image.shape, np.float32)
        uint8_to_float32(image.reshape(-1), out.reshape(-1))
        return out
    return image.astype(np.float32) * np.float32(1 / 255)


def to_uint8(image: np.ndarray, *, truncate: bool = False) -> np.ndarray:
    """float [0, 1] → ``uint8`` [0, 255], clipped, then rounded to nearest or (``truncate``)
    truncated as ``np.uint8(np.clip(x, 0, 1) * 255)``; ``uint8`` passes unchanged."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype in (np.float32, np.float64) and image.flags.c_contiguous:
        # one compiled pass with the same arithmetic as the NumPy expression below
        from restorelab.degradations.kernels import float_to_uint8

        out = np.empty(image.shape, np.uint8)
        float_to_uint8(image.reshape(-1), out.reshape(-1), truncate)
        return out
    scaled = image * image.dtype.type(255) if image.dtype.kind == "f" else image * 255.0
    if not truncate:
        scaled = np.rint(scaled)
    with np.errstate(invalid="ignore"):  # NaN → 0, as the compiled pass
        return np.clip(scaled, 0, 255).astype(np.uint8)


def is_chain(spec: str) -> bool:
    """True when ``spec`` names a chain (``"a:3+b"``) rather than one registered op."""
    return "+" in spec or ":" in spec


def is_stochastic(spec: str) -> bool:
    """Whether op or chain ``spec`` draws random values (noise, random kernels, ...).

    A chain is stochastic when any of its steps is. Unknown names raise with suggestions.
    """
    if is_chain(spec):
        from restorelab.degradations.chain import parse_chain

        return any(get_degradation(step.name).stochastic for step in parse_chain(spec))
    return get_degradation(spec).stochastic


def apply_level(
    image: np.ndarray, name: str, level: Any, seed: int = 0, *, step: int | None = None
) -> DegradationResult:
    """Apply op ``name`` with an explicit table entry ``level`` (any value of the op's kind).

    The building block of :func:`degrade_with_params`, chains and calibration: ``level`` need
    not be in the op's table (e.g. σ = 2.5 for ``gaussian_blur``).
    """
    check_image(image)
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"image is {image.shape[1]}x{image.shape[0]} px; degradations need at least "
            f"{MIN_SIDE} px on each side"
        )
    op = get_degradation(name)
    rng = op_rng(op.name, seed, step)
    out, params = op.fn(image if op.takes_uint8 else to_float32(image), level, rng)
    out8 = to_uint8(out, truncate=op.truncate)
    if out8.shape != image.shape:
        raise RuntimeError(f"{op.name} changed the shape {image.shape} -> {out8.shape}")
    return DegradationResult(
        image=out8, params={"name": op.name, "seed": int(seed), "level": level, **params}
    )


def degrade_with_params(
    image: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    *,
    levels: Sequence | None = None,
) -> DegradationResult:
    """Apply degradation ``name`` at ``severity``; return the image and the parameters used.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        Clean RGB image.
    name : str
        A registered degradation (see :func:`list_degradations`), or a chain such as
        ``"gaussian_blur:3+gaussian_noise:4"`` (see :mod:`restorelab.degradations.chain`).
    severity : int
        1-based index into the degradation's severity table.
    seed : int, default 0
        Seeds every random draw; the same (image, name, severity, seed) gives the same bytes.
    levels : sequence, optional
        A replacement severity table for this call (e.g. PSNR-matched levels from
        calibration); severity ``k`` then uses ``levels[k - 1]``. Single ops only.

    Returns
    -------
    DegradationResult
        ``image`` (uint8, same shape) and ``params`` (the level and any sampled values).
    """
    if is_chain(name):
        if levels is not None:
            raise ValueError("levels overrides apply to single ops, not chains")
        from restorelab.degradations.chain import apply_chain

        return apply_chain(image, name, severity, seed)
    op = get_degradation(name)
    if levels is None:
        level = op.level(severity)
    else:
        if isinstance(severity, bool) or not 1 <= int(severity) <= len(levels):
            raise ValueError(f"{name}: severity {severity} out of range 1..{len(levels)}")
        level = levels[int(severity) - 1]
    result = apply_level(image, op.name, level, seed)
    result.params["severity"] = int(severity)
    return result


def degrade(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Apply degradation ``name`` (or a chain ``"a:3+b:4"``) at ``severity`` to RGB ``uint8``.

    Deterministic for a given ``seed``; see :func:`degrade_with_params` for the parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from restorelab.degradations import degrade
    >>> img = np.full((32, 32, 3), 128, np.uint8)
    >>> degrade(img, "gaussian_blur", 3).shape
    (32, 32, 3)
    """
    return degrade_with_params(image, name, severity, seed).image
