"""Noise degradations: ImageNet-C's four noise corruptions, severities 1–5 as published and
6–10 extending each table.

Severities 1–5 are imagecorruptions 1.1.2's tables (Hendrycks & Dietterich, ICLR 2019).
Severities 6–10 continue each table geometrically with a ratio close to that of its own last
published step, so every level degrades more than the one before on average (see
``docs/DEGRADATIONS.md`` for the measured PSNR per level). All arithmetic is float32.

Speed (see ``docs/PERFORMANCE.md``): the element loops are compiled with numba, do the same
float32 arithmetic as the NumPy expressions in the docstrings and return ``uint8`` in the same
pass, truncated as the reference's ``np.uint8(np.clip(x, 0, 1) * 255)`` is (``to_uint8(...,
truncate=True)``). Every random number comes from the op's ``rng``,
drawn before the loops run: Gaussian and uniform fields are NumPy's own float32 samplers
replayed on the generator's raw output (the same numbers, bit for bit), and shot noise
samples its Poisson counts exactly, by inverting tabulated CDFs (one per 8-bit input value).
The unit noise field of the last call is kept (:func:`unit_field`), so the severities of one
(image, op, seed) reuse one draw; the result is byte-identical with and without it
(:func:`clear_noise_cache`).
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
from numba import njit
from scipy.special import pdtr

from restorelab.degradations.base import register_degradation

_REFERENCE = "Hendrycks & Dietterich 2019, arXiv:1903.12261 (imagecorruptions 1.1.2)"

# ---------------------------------------------------------------------------------------------
# The unit noise field, drawn once per (generator state, kind, shape)
# ---------------------------------------------------------------------------------------------

#: Largest field (bytes) that :func:`unit_field` keeps; one field is kept at a time.
FIELD_CACHE_MAX_BYTES = 64 * 2**20

_field_cache: tuple | None = None  # (key, read-only field, generator state after the draw)
_spare: np.ndarray | None = None  # a forgotten field whose memory the next draw may reuse


def _freeze(state: object) -> object:
    """A hashable, exact copy of a bit generator's ``state`` (nested dicts, ints, arrays)."""
    if isinstance(state, dict):
        return tuple((key, _freeze(value)) for key, value in sorted(state.items()))
    if isinstance(state, np.ndarray):
        return (state.dtype.str, state.shape, state.tobytes())
    return state


_KINDS = {"normal32": np.float32, "uniform32": np.float32, "uniform64": np.float64}


def _draw(
    rng: np.random.Generator, kind: str, shape: tuple[int, ...], out: np.ndarray | None = None
) -> np.ndarray:
    if kind == "normal32":
        return standard_normal_float32(rng, shape, out)
    if kind == "uniform32":
        return uniform_float32(rng, shape, out)
    if kind == "uniform64":
        return rng.random(shape, out=out)
    raise ValueError(f"unknown field kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# NumPy's float32 samplers, replayed from the generator's raw output
# ---------------------------------------------------------------------------------------------
# For the PCG64 generators that ``rng_for`` makes, ``Generator.standard_normal(dtype=float32)``
# and ``Generator.random(dtype=float32)`` consume the bit stream as 32-bit halves of each
# 64-bit output (low half first). Drawing the 64-bit words in bulk (``random_raw``) and running
# NumPy's algorithms on them in a compiled loop gives the same numbers, bit for bit, and leaves
# the generator in the same state, in less than half the time. Other bit generators, or one
# holding a buffered half word, use NumPy's own methods.


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.float32, np.float32]:
    """NumPy's 256-layer float32 ziggurat for the standard normal (Marsaglia & Tsang 2000).

    Rebuilt from its two defining constants: the tail start ``r`` and the common layer area
    ``v`` (here exact, ``r·φ(r) + ∫_r^∞ φ``, with ``φ(x) = exp(-x²/2)``). ``k`` are the
    fast-acceptance bounds for the 23-bit magnitudes (rounded), ``w`` the magnitude scales,
    ``f`` the density at the layer edges.
    """
    r = 3.6541528853610088
    v = r * math.exp(-0.5 * r * r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    scale = float(2**23)
    k = np.zeros(256)
    w = np.zeros(256)
    f = np.zeros(256)
    f_r = math.exp(-0.5 * r * r)
    q = v / f_r
    k[0] = r / q * scale
    w[0] = q / scale
    w[255] = r / scale
    f[0] = 1.0
    f[255] = f_r
    x_outer = x = r
    for i in range(254, 0, -1):
        x = math.sqrt(-2.0 * math.log(v / x + math.exp(-0.5 * x * x)))
        k[i + 1] = x / x_outer * scale
        x_outer = x
        f[i] = math.exp(-0.5 * x * x)
        w[i] = x / scale
    return (
        np.rint(k).astype(np.uint32),
        w.astype(np.float32),
        f.astype(np.float32),
        np.float32(r),
        np.float32(1 / r),
    )


_ZIG_K, _ZIG_W, _ZIG_F, _ZIG_R, _ZIG_INV_R = _ziggurat_tables()


@njit(cache=True, nogil=True)
def _ziggurat_float32(
    words: np.ndarray,
    out: np.ndarray,
    done: int,
    k: np.ndarray,
    w: np.ndarray,
    f: np.ndarray,
    r: np.float32,
    inv_r: np.float32,
) -> tuple[int, int]:
    """NumPy's ``random_standard_normal_f`` over the 32-bit stream ``words``, filling
    ``out[done:]``.

    Returns (words used, values done): it stops at the end of ``out`` or, when ``words`` run
    out in the middle of a value, before that value (which starts again on more words).
    """
    available = words.size
    used = 0
    unit = np.float32(1.0 / 16777216.0)
    i = done
    while i < out.size:
        first = used
        value = np.float32(0.0)
        complete = False
        while not complete:
            if used >= available:
                return first, i
            bits = words[used]
            used += 1
            idx = bits & np.uint32(0xFF)
            rabs = (bits >> np.uint32(9)) & np.uint32(0x7FFFFF)
            x = np.float32(rabs) * w[idx]
            if (bits >> np.uint32(8)) & np.uint32(1):
                x = -x
            if rabs < k[idx]:
                value = x
                complete = True
            elif idx == 0:
                # the tail beyond r (Marsaglia's exponential rejection)
                while True:
                    if used + 2 > available:
                        return first, i
                    u1 = np.float32(words[used] >> np.uint32(8)) * unit
                    u2 = np.float32(words[used + 1] >> np.uint32(8)) * unit
                    used += 2
                    xx = -inv_r * np.log1p(-u1)
                    yy = -np.log1p(-u2)
                    if yy + yy > xx * xx:
                        value = -(r + xx) if (rabs >> np.uint32(8)) & np.uint32(1) else r + xx
                        break
                complete = True
            else:
                if used >= available:
                    return first, i
                u = np.float32(words[used] >> np.uint32(8)) * unit
                used += 1
                y = (f[idx - 1] - f[idx]) * u + f[idx]
                complete = np.float64(y) < math.exp(-0.5 * np.float64(x) * np.float64(x))
                value = x
        out[i] = value
        i += 1
    return used, i


def _replayable(rng: np.random.Generator) -> bool:
    bit_generator = rng.bit_generator
    return type(bit_generator) is np.random.PCG64 and not bit_generator.state["has_uint32"]


#: 64-bit words drawn per ``random_raw`` call: small enough to stay out of fresh pages.
_CHUNK_WORDS = 1 << 15


def _halves(raw: np.ndarray) -> np.ndarray:
    """The 32-bit halves of ``raw``, low half first (NumPy's order for ``next_uint32``)."""
    if np.little_endian:
        return raw.view(np.uint32)
    halves = np.empty(raw.size * 2, np.uint32)
    halves[0::2] = raw & np.uint64(0xFFFFFFFF)
    halves[1::2] = raw >> np.uint64(32)
    return halves


def _finish_stream(rng: np.random.Generator, start: dict, used: int, high: int) -> None:
    """Put ``rng`` where NumPy leaves it after ``used`` 32-bit halves drawn from state
    ``start``: ``ceil(used / 2)`` outputs on, and ``high`` (the high half of the last output)
    kept as NumPy keeps it, buffered when ``used`` is odd."""
    bit_generator = rng.bit_generator
    bit_generator.state = start
    bit_generator.advance((used + 1) // 2)
    state = bit_generator.state
    state["has_uint32"] = used & 1
    state["uinteger"] = high
    bit_generator.state = state


def _check_out(out: np.ndarray | None, shape: tuple[int, ...], dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous array of the requested shape and dtype")
    return out


def standard_normal_float32(
    rng: np.random.Generator, shape: tuple[int, ...], out: np.ndarray | None = None
) -> np.ndarray:
    """``rng.standard_normal(shape, dtype=np.float32)``: the same numbers and generator state."""
    out = _check_out(out, tuple(shape), np.float32)
    n = out.size
    if n == 0 or not _replayable(rng):
        return rng.standard_normal(out.shape, dtype=np.float32, out=out)
    bit_generator = rng.bit_generator
    start = bit_generator.state
    flat = out.reshape(-1)
    words = np.empty(0, np.uint32)
    consumed = done = 0  # halves used before ``words``; values written
    while True:
        need = (n - done) // 2 + (n - done) // 64 + 16  # ~1 % of values take a second half
        fresh = _halves(bit_generator.random_raw(min(need, _CHUNK_WORDS)))
        words = np.concatenate((words, fresh))
        used, done = _ziggurat_float32(
            words, flat, done, _ZIG_K, _ZIG_W, _ZIG_F, _ZIG_R, _ZIG_INV_R
        )
        if done == n:
            break
        consumed += used
        words = words[used:]
    total = consumed + used
    # the high half of the last 64-bit output used: the next half if ``total`` is odd
    high = int(words[used] if total & 1 else words[used - 1]) if total else 0
    _finish_stream(rng, start, total, high)
    return out


def uniform_float32(
    rng: np.random.Generator, shape: tuple[int, ...], out: np.ndarray | None = None
) -> np.ndarray:
    """``rng.random(shape, dtype=np.float32)``: the same numbers and generator state."""
    out = _check_out(out, tuple(shape), np.float32)
    n = out.size
    if n == 0 or not _replayable(rng):
        return rng.random(out.shape, dtype=np.float32, out=out)
    start = rng.bit_generator.state
    flat = out.reshape(-1)
    for first in range(0, n, 2 * _CHUNK_WORDS):
        count = min(2 * _CHUNK_WORDS, n - first)
        words = _halves(rng.bit_generator.random_raw((count + 1) // 2))
        _uniform_from_words(words, flat[first : first + count])
    _finish_stream(rng, start, n, int(words[(count - 1) | 1]))
    return out


@njit(cache=True, nogil=True)
def _uniform_from_words(words: np.ndarray, out: np.ndarray) -> None:
    """NumPy's ``next_float``: ``(word >> 8) · 2⁻²⁴``."""
    unit = np.float32(1.0 / 16777216.0)
    for i in range(out.size):
        out[i] = np.float32(words[i] >> np.uint32(8)) * unit


def unit_field(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """``rng``'s next draw of ``kind`` and ``shape``, read-only; ``rng`` advances past it.

    ``kind`` is ``"normal32"`` (``standard_normal``, float32), ``"uniform32"`` or
    ``"uniform64"`` (``random`` in [0, 1), float32 or float64). The last field of at most
    :data:`FIELD_CACHE_MAX_BYTES` is kept with the generator state it was drawn from and the
    state after it: a generator in that state gets the same array back and is moved to the
    state after the draw, exactly as if it had drawn again. The severities of one
    (image, op, seed) seed their generators identically (``rng_for``), so they share one draw.

    A new draw of the same dtype and shape is written into the memory of the field it
    replaces when nothing else refers to that array any more (fresh pages cost as much as
    the draw itself).
    """
    global _field_cache, _spare
    shape = tuple(int(n) for n in shape)
    key = (kind, shape, _freeze(rng.bit_generator.state))
    entry = _field_cache
    if entry is not None and entry[0] == key:
        rng.bit_generator.state = entry[2]
        return entry[1]
    old = entry[1] if entry is not None else _spare
    _field_cache = _spare = entry = None
    buffer = None
    same = old is not None and old.dtype == _KINDS.get(kind) and old.shape == shape
    if same and sys.getrefcount(old) == 2:  # ``old`` and the call's argument: no one else
        buffer = old
        buffer.flags.writeable = True
    del old
    field = _draw(rng, kind, shape, buffer)
    field.flags.writeable = False
    if field.nbytes <= FIELD_CACHE_MAX_BYTES:
        _field_cache = (key, field, rng.bit_generator.state)
    return field


def clear_noise_cache() -> None:
    """Forget the kept unit field: the next call of every op draws afresh (into the same
    memory when the shape is the same and the old field is no longer referenced)."""
    global _field_cache, _spare
    if _field_cache is not None:
        _spare = _field_cache[1]
    _field_cache = None


def _as_float32(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image, dtype=np.float32)


@njit(inline="always")
def _to_u8(value: np.float32) -> np.uint8:
    """``to_uint8(..., truncate=True)`` of one float32: ``uint8(clip(value · 255, 0, 255))``,
    NaN → 0."""
    v = value * np.float32(255)
    if v >= 255:
        return np.uint8(255)
    if v > 0:
        return np.uint8(v)
    return np.uint8(0)


@njit(cache=True, nogil=True)
def _add_scaled(unit: np.ndarray, sigma: np.float32, image: np.ndarray, out: np.ndarray) -> None:
    """``out = to_uint8(unit · sigma + image)`` (flat; float32 arithmetic)."""
    for i in range(out.size):
        out[i] = _to_u8(unit[i] * sigma + image[i])


@njit(cache=True, nogil=True)
def _add_speckle(unit: np.ndarray, sigma: np.float32, image: np.ndarray, out: np.ndarray) -> None:
    """``out = to_uint8((unit · sigma) · image + image)`` (flat; float32 arithmetic)."""
    for i in range(out.size):
        out[i] = _to_u8(unit[i] * sigma * image[i] + image[i])


@njit(cache=True, nogil=True)
def _salt_and_pepper(
    u: np.ndarray, amount: np.float32, half: np.float32, image: np.ndarray, out: np.ndarray
) -> None:
    """``out = 0 where u < half, else 255 where u < amount, else to_uint8(image)`` (flat)."""
    for i in range(out.size):
        if u[i] < half:
            out[i] = 0
        elif u[i] < amount:
            out[i] = 255
        else:
            out[i] = _to_u8(image[i])


@register_degradation(
    "gaussian_noise",
    # σ on the [0, 1] scale. 1-5: [.08, .12, .18, .26, .38] (ImageNet-C);
    # 6-10: ×≈1.3 per level (the 4→5 step is ×1.46, flattened so clipping does not saturate).
    levels=(0.08, 0.12, 0.18, 0.26, 0.38, 0.50, 0.65, 0.85, 1.10, 1.40),
    unit="sigma_01",
    stochastic=True,
    reference=_REFERENCE,
    truncate=True,
)
def gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Additive white Gaussian noise of standard deviation ``sigma`` on [0, 1], then clipped.

    Independent per pixel and channel. At one seed the unit-variance field is the same for
    every ``sigma`` (common random numbers across severities). Returns ``uint8``
    (``to_uint8(..., truncate=True)`` of the float32 sum, in the same pass).
    """
    image = _as_float32(image)
    noise = unit_field(rng, "normal32", image.shape)  # rng.standard_normal(shape, float32)
    out = np.empty(image.shape, np.uint8)
    _add_scaled(noise.reshape(-1), np.float32(sigma), image.reshape(-1), out.reshape(-1))
    return out, {"sigma": float(sigma)}


@register_degradation(
    "shot_noise",
    # photons per unit intensity (fewer = noisier). 1-5: [60, 25, 12, 5, 3] (ImageNet-C);
    # 6-10: [2.2, 1.8, 1.5, 1.25, 1.0] — below ~1 photon the clipped Poisson image is mostly
    # 0 or 1 and stops losing fidelity (PSNR rises again), so the table ends at 1.
    levels=(60, 25, 12, 5, 3, 2.2, 1.8, 1.5, 1.25, 1.0),
    unit="photons_per_unit",
    stochastic=True,
    reference=_REFERENCE,
    truncate=True,
)
def shot_noise(image: np.ndarray, photons: float, rng: np.random.Generator) -> tuple:
    """Poisson (photon shot) noise: ``Poisson(x · photons) / photons``, clipped to [0, 1].

    The counts are exact Poisson draws of mean ``float32(x) · float32(photons)``: for images
    on the 8-bit grid (``x = v / 255``, as :func:`degrade` passes them) by inverting the CDF
    of each of the 256 means at one uniform per value (:func:`poisson_tables`); other
    inputs, and ``photons`` outside (0, :data:`MAX_TABLE_PHOTONS`], use ``rng.poisson``.
    On the grid it returns ``uint8`` (``to_uint8(float32(K) / float32(photons), truncate=True)``).
    """
    image = _as_float32(image)
    params = {"photons": float(photons)}
    scale = np.float32(photons)
    if 0 < photons <= MAX_TABLE_PHOTONS:
        u = unit_field(rng, "uniform64", image.shape)  # rng.random(shape), float64 in [0, 1)
        levels = np.empty(image.shape, np.uint8)
        if _grid_levels(image.reshape(-1), levels.reshape(-1)):
            cdf, guide, values = poisson_tables(float(photons))
            flat = levels.reshape(-1)
            _poisson_by_table(u.reshape(-1), flat, cdf, guide, values, flat)  # in place
            return levels, params
    counts = rng.poisson(image * scale)
    return counts.astype(np.float32) / scale, params


#: Largest ``photons`` sampled from tables (their size grows with it; 60 is the mildest
#: published level).
MAX_TABLE_PHOTONS = 1000.0


#: Guide-table cells per CDF. A cell [j, j + 1) / _GUIDE holding no CDF step fixes the
#: count outright (all but ~1-3 % of the draws); otherwise the search starts at the first
#: count whose CDF exceeds j / _GUIDE and takes a step or two.
_GUIDE = 1024


@functools.lru_cache(maxsize=16)
def poisson_tables(photons: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 8-bit level ``v``: the Poisson CDF and its guide table; and the ``uint8`` output
    of each count.

    Level ``v`` has mean ``λ = float32(float32(v / 255) · float32(photons))`` (the mean
    ``rng.poisson`` got from the float32 image). ``cdf[v, k] = P(K ≤ k)`` (SciPy's ``pdtr``,
    float64, so it reaches 1.0 where the upper tail drops below ~1e-16: no 53-bit uniform
    falls beyond) for k up to λ + 20√λ + 40, whose last entry is set to 2 so every search
    stops. ``guide[v, j]`` is the smallest ``k`` with ``cdf[v, k] > j / _GUIDE``, stored as
    ``-k - 1`` when the cell's upper end has a larger one (a search is needed);
    ``values[k] = to_uint8(float32(k) / float32(photons), truncate=True)``.
    """
    grid = np.arange(256, dtype=np.float32) * np.float32(1 / 255)  # to_float32's levels
    lam = (grid * np.float32(photons)).astype(np.float64)
    top = float(lam.max())
    size = int(top + 20.0 * math.sqrt(top) + 40.0)
    counts = np.arange(size, dtype=np.float64)
    cdf = pdtr(counts[None, :], lam[:, None])
    cdf[:, -1] = 2.0
    edges = np.arange(_GUIDE + 1, dtype=np.float64) / _GUIDE
    first = np.stack([np.searchsorted(row, edges, side="right") for row in cdf])
    first = np.minimum(first, size - 1)
    fixed = first[:, :-1] == first[:, 1:]
    guide = np.where(fixed, first[:, :-1], -first[:, :-1] - 1).astype(np.int16)
    values = counts.astype(np.float32) / np.float32(photons)  # float32(K) / float32(photons)
    with np.errstate(invalid="ignore"):
        values = np.clip(values * np.float32(255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(cdf), guide, values


@njit(cache=True, nogil=True)
def _grid_levels(image: np.ndarray, levels: np.ndarray) -> bool:
    """``levels = rint(image · 255)`` (clipped, uint8); True when every value of ``image`` is
    exactly ``float32(level) · float32(1 / 255)``, the value ``to_float32`` gives it."""
    exact = True
    scale = np.float32(255)
    unit = np.float32(1 / 255)
    for i in range(image.size):
        x = image[i]
        level = min(max(np.rint(x * scale), np.float32(0)), np.float32(255))
        exact &= level * unit == x
        levels[i] = np.uint8(level)
    return exact


@njit(cache=True, nogil=True)
def _poisson_by_table(
    u: np.ndarray,
    levels: np.ndarray,
    cdf: np.ndarray,
    guide: np.ndarray,
    values: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out = values[K]``, ``K`` the smallest count with ``cdf[level, K] > u`` (flat arrays)."""
    cells = guide.shape[1]
    for i in range(out.size):
        v = np.int64(levels[i])
        ui = u[i]
        k = np.int64(guide[v, np.int64(ui * cells)])
        if k < 0:
            k = -k - 1
            while cdf[v, k] <= ui:
                k += 1
        out[i] = values[k]


@register_degradation(
    "impulse_noise",
    # fraction of values replaced by salt or pepper. 1-5: [.03, .06, .09, .17, .27]
    # (ImageNet-C); 6-10: +≈.1 per level up to .7 (the 4→5 step is +.10).
    levels=(0.03, 0.06, 0.09, 0.17, 0.27, 0.36, 0.45, 0.54, 0.62, 0.70),
    unit="fraction",
    stochastic=True,
    reference=_REFERENCE,
    truncate=True,
)
def impulse_noise(image: np.ndarray, amount: float, rng: np.random.Generator) -> tuple:
    """Salt-and-pepper noise: each value independently becomes 0 or 1 with probability
    ``amount`` (half salt, half pepper), as ``skimage.util.random_noise(mode="s&p")``.

    One uniform draw per value decides both whether and which: u < amount/2 → pepper (0),
    amount/2 ≤ u < amount → salt (1); this has the reference's distribution. Returns
    ``uint8``.
    """
    image = _as_float32(image)
    u = unit_field(rng, "uniform32", image.shape)  # rng.random(shape, dtype=float32)
    out = np.empty(image.shape, np.uint8)
    _salt_and_pepper(
        u.reshape(-1),
        np.float32(amount),
        np.float32(amount / 2),
        image.reshape(-1),
        out.reshape(-1),
    )
    return out, {"amount": float(amount)}


@register_degradation(
    "speckle_noise",
    # σ of the multiplicative noise. 1-5: [.15, .2, .35, .45, .6] (ImageNet-C);
    # 6-10: ×≈1.3 per level (the 4→5 step is ×1.33).
    levels=(0.15, 0.20, 0.35, 0.45, 0.60, 0.80, 1.05, 1.35, 1.75, 2.25),
    unit="sigma_01",
    stochastic=True,
    reference=_REFERENCE,
    truncate=True,
)
def speckle_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """Multiplicative Gaussian (speckle) noise: ``x + x · N(0, sigma²)``, clipped to [0, 1].

    Returns ``uint8`` (``to_uint8(..., truncate=True)`` of the float32 result, in one pass).
    """
    image = _as_float32(image)
    noise = unit_field(rng, "normal32", image.shape)  # rng.standard_normal(shape, float32)
    out = np.empty(image.shape, np.uint8)
    _add_speckle(noise.reshape(-1), np.float32(sigma), image.reshape(-1), out.reshape(-1))
    return out, {"sigma": float(sigma)}
