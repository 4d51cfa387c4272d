"""The fast internals of the degradation zoo against the plain NumPy / OpenCV computations they
replace: conversions, NumPy's samplers replayed from raw bits, the noise-field cache, exact
Poisson sampling, and the blur decompositions (disk, taps, zoom layers)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import stats
from skimage import data
from tests_support import resized

from restorelab.degradations import degrade, get_degradation, noise
from restorelab.degradations.base import to_float32, to_uint8
from restorelab.degradations.blur import _disk_plan, correlate_disk, correlate_taps
from restorelab.degradations.kernels import disk_kernel, motion_kernel

NOISE = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return resized(data.astronaut(), 96)


# --- conversions ----------------------------------------------------------------------------
def _to_uint8_numpy(x: np.ndarray, truncate: bool = False) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        scaled = x * x.dtype.type(255)
        return np.clip(scaled if truncate else np.rint(scaled), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_uint8_rounds_like_numpy_at_every_half_step(dtype) -> None:
    # values within a few thousand ulps of (k + 0.5) / 255, where rounding decides
    ints = np.int32 if dtype == np.float32 else np.int64
    centres = ((np.arange(-2, 258) + 0.5) / 255).astype(dtype)
    steps = np.arange(-3000, 3000, dtype=ints)
    x = (centres.view(ints)[:, None] + steps[None, :]).view(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 2.0**31], dtype)
    for values in (x, specials, np.random.default_rng(0).normal(0.5, 0.7, (64, 64, 3))):
        values = values.astype(dtype)
        assert np.array_equal(to_uint8(values), _to_uint8_numpy(values))
    # non-contiguous input takes the NumPy path, with the same result
    assert np.array_equal(to_uint8(x[:, ::2]), _to_uint8_numpy(x[:, ::2]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_uint8_truncates_like_the_imagenet_c_reference(dtype) -> None:
    """``np.uint8(np.clip(x, 0, 1) * 255)``, at every integer step (where truncation decides)."""
    ints = np.int32 if dtype == np.float32 else np.int64
    steps = (np.arange(-2, 258) / 255).astype(dtype)
    x = (steps.view(ints)[:, None] + np.arange(-3000, 3000, dtype=ints)[None, :]).view(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 2.0**31], dtype)
    for values in (x, specials, np.random.default_rng(0).normal(0.5, 0.7, (64, 64, 3))):
        values = values.astype(dtype)
        expected = _to_uint8_numpy(values, truncate=True)
        assert np.array_equal(to_uint8(values, truncate=True), expected)
        reference = np.uint8(np.nan_to_num(np.clip(values, 0, 1), nan=0.0) * 255)
        assert np.array_equal(expected, reference)
    assert np.array_equal(to_uint8(x[:, ::2], truncate=True), _to_uint8_numpy(x[:, ::2], True))
    # every 8-bit level survives the float32 round trip (levels in, the same levels out)
    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_uint8(to_float32(levels), truncate=True), levels)


def test_to_float32_is_the_numpy_product(photo: np.ndarray) -> None:
    expected = photo.astype(np.float32) * np.float32(1 / 255)
    assert np.array_equal(to_float32(photo), expected)
    assert np.array_equal(to_float32(photo[:, ::2]), expected[:, ::2])


# --- NumPy's samplers, replayed -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["normal32", "uniform32"])
def test_replayed_samplers_equal_numpy_and_leave_the_same_state(kind: str) -> None:
    for seed in range(6):
        for shape in [(1,), (7,), (33, 31, 3), (300, 401)]:
            ours, theirs = np.random.default_rng([seed, 5]), np.random.default_rng([seed, 5])
            if seed % 2:  # a draw before, of another kind
                ours.random(3)
                theirs.random(3)
            if kind == "normal32":
                expected = theirs.standard_normal(shape, dtype=np.float32)
                got = noise.standard_normal_float32(ours, shape)
            else:
                expected = theirs.random(shape, dtype=np.float32)
                got = noise.uniform_float32(ours, shape)
            assert np.array_equal(got, expected)
            assert ours.bit_generator.state == theirs.bit_generator.state
            assert np.array_equal(ours.random(3, dtype=np.float32), theirs.random(3, np.float32))


def test_replayed_normal_covers_the_tails() -> None:
    # 4M draws reach the ziggurat's tail (|x| > 3.65) and wedges many times
    ours, theirs = np.random.default_rng(11), np.random.default_rng(11)
    got = noise.standard_normal_float32(ours, (4_000_001,))
    assert np.array_equal(got, theirs.standard_normal(4_000_001, dtype=np.float32))
    assert (np.abs(got) > 3.7).sum() > 500
    assert ours.bit_generator.state == theirs.bit_generator.state


def test_samplers_fall_back_for_other_generators_and_buffered_words() -> None:
    for make in (lambda: np.random.Generator(np.random.MT19937(3)), lambda: _buffered(3)):
        ours, theirs = make(), make()
        assert np.array_equal(
            noise.standard_normal_float32(ours, (50,)),
            theirs.standard_normal(50, dtype=np.float32),
        )
        assert np.array_equal(noise.uniform_float32(ours, (9,)), theirs.random(9, np.float32))


def _buffered(seed: int) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    rng.integers(0, 10, dtype=np.int32)  # leaves half a 64-bit word buffered
    assert rng.bit_generator.state["has_uint32"]
    return rng


# --- the unit-field cache -------------------------------------------------------------------
@pytest.mark.parametrize("name", NOISE)
def test_cache_gives_the_same_bytes_as_fresh_draws(name: str, photo: np.ndarray) -> None:
    noise.clear_noise_cache()
    warm = [degrade(photo, name, s, seed=4) for s in range(1, 11)]
    cold = []
    for severity in range(1, 11):
        noise.clear_noise_cache()
        cold.append(degrade(photo, name, severity, seed=4))
    assert all(np.array_equal(a, b) for a, b in zip(warm, cold, strict=True))


def test_cache_restores_the_generator_and_is_bounded(monkeypatch) -> None:
    noise.clear_noise_cache()
    first = np.random.default_rng(9)
    field = noise.unit_field(first, "normal32", (40, 50))
    assert not field.flags.writeable
    again = np.random.default_rng(9)
    assert noise.unit_field(again, "normal32", (40, 50)) is field
    assert again.bit_generator.state == first.bit_generator.state
    assert again.random() == first.random()
    monkeypatch.setattr(noise, "FIELD_CACHE_MAX_BYTES", 1000)
    noise.clear_noise_cache()
    noise.unit_field(np.random.default_rng(9), "normal32", (40, 50))
    assert noise._field_cache is None


# --- exact Poisson ------------------------------------------------------------------------
@pytest.mark.parametrize(("level", "photons"), [(255, 60), (40, 60), (128, 12), (3, 25), (200, 3)])
def test_shot_noise_counts_are_poisson(level: int, photons: float) -> None:
    x = to_float32(np.full((200, 250, 3), level, np.uint8)).ravel()
    u = noise.unit_field(np.random.default_rng(1), "uniform64", x.shape)
    cdf, guide, values = noise.poisson_tables(float(photons))
    levels = np.empty(x.size, np.uint8)
    assert noise._grid_levels(x, levels) and (levels == level).all()
    counts = np.empty(x.size, np.int64)
    every = np.arange(cdf.shape[1], dtype=np.int64)
    noise._poisson_by_table(u, levels, cdf, guide, every, counts)
    # the op maps the same counts through to_uint8(float32(K) / float32(photons), truncate)
    image = (x * np.float32(255)).round().astype(np.uint8).reshape(200, 250, 3)
    out, _ = get_degradation("shot_noise").fn(to_float32(image), photons, np.random.default_rng(1))
    expected = to_uint8(counts.astype(np.float32) / np.float32(photons), truncate=True)
    assert np.array_equal(out.ravel(), expected) and np.array_equal(values[counts], expected)
    lam = float(x[0] * np.float32(photons))
    # chi-square over the bins holding 99.9 % of the mass, tails pooled
    lo, hi = int(stats.poisson.ppf(5e-4, lam)), int(stats.poisson.ppf(1 - 5e-4, lam))
    edges = np.arange(lo, hi + 2)
    observed = np.array([(counts < lo).sum(), *np.histogram(counts, edges)[0], (counts > hi).sum()])
    mass = [stats.poisson.cdf(lo - 1, lam), *stats.poisson.pmf(edges[:-1], lam)]
    expected = counts.size * np.array([*mass, stats.poisson.sf(hi, lam)])
    keep = expected > 5
    chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    assert abs(counts.mean() - lam) < 5 * math.sqrt(lam / counts.size) + 1e-9


def test_shot_noise_off_the_8_bit_grid_uses_numpy_poisson() -> None:
    image = np.full((40, 40, 3), 0.3001, np.float32)
    out, _ = get_degradation("shot_noise").fn(image, 25, np.random.default_rng(2))
    assert out.dtype == np.float32 and abs(out.mean() - 0.3001) < 0.02


@pytest.mark.parametrize("name", NOISE)
def test_noise_ops_return_what_to_uint8_of_the_float_result_gives(name: str, photo) -> None:
    x = to_float32(photo)
    level = get_degradation(name).levels[2]
    out, _ = get_degradation(name).fn(x, level, np.random.default_rng(6))
    assert out.dtype == np.uint8
    rng = np.random.default_rng(6)
    if name == "gaussian_noise":
        ref = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(level) + x
    elif name == "speckle_noise":
        ref = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(level) * x + x
    elif name == "impulse_noise":
        u = rng.random(x.shape, dtype=np.float32)
        ref = x.copy()
        ref[u < np.float32(level)] = 1.0
        ref[u < np.float32(level / 2)] = 0.0
    else:
        assert abs(out.mean() - photo.mean()) < 5  # unbiased (Poisson counts: above)
        return
    assert np.array_equal(out, _to_uint8_numpy(ref, truncate=True))


# --- blurs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("severity", range(1, 11))
def test_defocus_split_equals_the_whole_kernel(severity: int) -> None:
    radius, alias = get_degradation("defocus_blur").levels[severity - 1]
    rng = np.random.default_rng(severity)
    for shape in [(96, 128, 3), (33, 33, 3), (32, 97, 3)]:
        image = rng.random(shape, dtype=np.float32)
        expected = cv2.filter2D(
            image, -1, disk_kernel(radius, alias), borderType=cv2.BORDER_REFLECT_101
        )
        got = degrade_fn("defocus_blur", image, (radius, alias))
        assert np.abs(got - expected).max() < 5e-6
    plan = _disk_plan(float(radius), float(alias))
    if plan is not None:
        assert np.abs(correlate_disk(image, plan) - got).max() == 0


def degrade_fn(name: str, image: np.ndarray, level) -> np.ndarray:
    out, _ = get_degradation(name).fn(image, level, np.random.default_rng(0))
    return out


def test_disk_split_is_used_for_the_middle_radii() -> None:
    assert _disk_plan(3.0, 0.1) is None  # 9×9 of taps: OpenCV's direct filter
    assert _disk_plan(6.0, 0.5) is not None and _disk_plan(6.0, 0.5).tap_weights.size == 0
    assert _disk_plan(8.0, 0.5) is not None


@pytest.mark.parametrize("severity", [1, 5, 10])
def test_motion_taps_equal_the_kernel(severity: int) -> None:
    radius, sigma = get_degradation("motion_blur").levels[severity - 1]
    image = np.random.default_rng(3).random((70, 90, 3), dtype=np.float32)
    for angle in (-45.0, -12.3, 0.0, 30.0, 45.0):
        kernel = motion_kernel(radius, sigma, angle, image.shape[:2])
        expected = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        got = correlate_taps(image, kernel, cv2.BORDER_REPLICATE)
        assert np.abs(got - expected).max() < 2e-6


def _zoom_reference(image: np.ndarray, level: tuple) -> np.ndarray:
    """The plain zoom blur: float32 RGB warps summed with NumPy (the op before RGBA layers)."""
    stop, step = level
    height, width = image.shape[:2]
    total = image.astype(np.float32, copy=True)
    factors = np.arange(1, stop, step)
    for zoom in factors:
        crop_h, crop_w = math.ceil(height / zoom), math.ceil(width / zoom)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        out_h, out_w = round(crop_h * zoom), round(crop_w * zoom)
        scale_y = (crop_h - 1) / (out_h - 1) if out_h > 1 else 0.0
        scale_x = (crop_w - 1) / (out_w - 1) if out_w > 1 else 0.0
        matrix = np.array([[scale_x, 0.0, left], [0.0, scale_y, top]])
        total += cv2.warpAffine(
            image,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    total /= np.float32(len(factors) + 1)
    return to_uint8(total, truncate=True)


@pytest.mark.parametrize("severity", [1, 2, 5, 10])
def test_zoom_blur_equals_float_rgb_warps(severity: int, photo: np.ndarray) -> None:
    level = get_degradation("zoom_blur").levels[severity - 1]
    for image in (photo, data.coffee()[:45, :77]):
        expected = _zoom_reference(to_float32(np.ascontiguousarray(image)), level)
        assert np.array_equal(degrade(np.ascontiguousarray(image), "zoom_blur", severity), expected)


def test_glass_moves_drawn_in_blocks_equal_one_draw() -> None:
    """RandomState moves are drawn a block of rows at a time: the same numbers as one call."""
    from restorelab.degradations import blur

    image = np.random.default_rng(0).integers(0, 256, (700, 300, 3), dtype=np.uint8)
    out, _ = blur.glass_blur(to_float32(image), (1.5, 4, 2), np.random.RandomState(3))
    offsets = np.random.RandomState(3).randint(-4, 4, size=(2, 692, 292, 2)).astype(np.int16)
    pixels = blur.gaussian_filter(to_float32(image), 1.5) * np.float32(255)
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    blur._local_shuffle(pixels, offsets, 4)
    expected = blur.gaussian_filter(pixels.astype(np.float32) * np.float32(1 / 255), 1.5)
    assert blur._GLASS_DRAW_ROWS < 692 * 2  # several blocks
    assert np.array_equal(out, expected)
