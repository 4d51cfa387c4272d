"""The Real-ESRGAN second-order degradation: kernels, published defaults, the stage layout of
the published code (JPEG round trips per severity), the pipeline and its mean PSNR."""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from restorelab.degradations import degrade, degrade_with_params, get_degradation
from restorelab.degradations.base import apply_level
from restorelab.degradations.realesrgan import (
    KERNEL_TYPES,
    LEVELS,
    REALESRGAN_DEFAULTS,
    anisotropic_gaussian_kernel,
    circular_lowpass_kernel,
    generalized_gaussian_kernel,
    isotropic_gaussian_kernel,
    kernel_grid,
    plateau_kernel,
)


def psnr(clean: np.ndarray, degraded: np.ndarray) -> float:
    mse = np.mean((clean.astype(np.float64) - degraded.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def all_kernels(size: int = 15) -> dict[str, np.ndarray]:
    return {
        "iso": isotropic_gaussian_kernel(size, 1.7),
        "aniso": anisotropic_gaussian_kernel(size, 2.5, 0.8, 0.6),
        "generalized_iso": generalized_gaussian_kernel(size, 1.5, 1.5, 0.0, 0.7),
        "generalized_aniso": generalized_gaussian_kernel(size, 2.0, 0.9, -1.1, 2.5),
        "plateau_iso": plateau_kernel(size, 1.5, 1.5, 0.0, 1.6),
        "plateau_aniso": plateau_kernel(size, 2.2, 1.0, 2.0, 1.3),
        "sinc": circular_lowpass_kernel(math.pi / 4, size),
    }


# ------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("name", list(all_kernels()))
def test_kernels_sum_to_one_and_are_point_symmetric(name: str) -> None:
    kernel = all_kernels()[name]
    assert kernel.shape == (15, 15)
    assert kernel.dtype == np.float64
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-15)
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (7, 7)


@pytest.mark.parametrize("name", ["iso", "generalized_iso", "plateau_iso", "sinc"])
def test_isotropic_kernels_have_the_symmetries_of_the_square(name: str) -> None:
    kernel = all_kernels()[name]
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[:, ::-1], atol=1e-15)


def test_isotropic_gaussian_is_an_outer_product_of_1d_gaussians() -> None:
    for size, sigma in [(7, 0.2), (13, 1.3), (21, 3.0)]:
        ax = np.arange(size) - size // 2
        g = np.exp(-(ax**2) / (2 * sigma**2))
        g /= g.sum()
        np.testing.assert_allclose(isotropic_gaussian_kernel(size, sigma), np.outer(g, g))


def test_anisotropic_gaussian_axes_and_angle_conventions() -> None:
    ax = np.arange(11) - 5
    gx = np.exp(-(ax**2) / (2 * 2.0**2))
    gy = np.exp(-(ax**2) / (2 * 0.7**2))
    expected = np.outer(gy / gy.sum(), gx / gx.sum())  # rows: y (σy), columns: x (σx)
    np.testing.assert_allclose(anisotropic_gaussian_kernel(11, 2.0, 0.7, 0.0), expected)
    # A quarter turn swaps the axes; a half turn changes nothing.
    np.testing.assert_allclose(anisotropic_gaussian_kernel(11, 2.0, 0.7, math.pi / 2), expected.T)
    np.testing.assert_allclose(
        anisotropic_gaussian_kernel(11, 2.0, 0.7, math.pi),
        anisotropic_gaussian_kernel(11, 2.0, 0.7, 0.0),
    )
    x, y = kernel_grid(11)
    assert x[5, 5] == y[5, 5] == 0 and x[0, -1] == 5 and y[-1, 0] == 5


def test_generalized_gaussian_with_beta_one_is_the_gaussian() -> None:
    np.testing.assert_allclose(
        generalized_gaussian_kernel(13, 2.0, 1.0, 0.4, 1.0),
        anisotropic_gaussian_kernel(13, 2.0, 1.0, 0.4),
    )


def test_plateau_is_flatter_than_the_gaussian_at_the_top() -> None:
    plateau = plateau_kernel(21, 2.0, 2.0, 0.0, 2.0)
    gauss = isotropic_gaussian_kernel(21, 2.0)
    # 1 / (1 + (r²/σ²)^β): one pixel off centre r²/σ² = 1/4, so the ratio is 1 / (1 + 1/16).
    assert plateau[10, 11] / plateau[10, 10] == pytest.approx(1 / (1 + 0.25**2), rel=1e-12)
    assert plateau[10, 11] / plateau[10, 10] > gauss[10, 11] / gauss[10, 10]  # flatter top
    assert plateau[10, 0] / plateau[10, 10] > gauss[10, 0] / gauss[10, 10]  # heavier tail


def test_sinc_kernel_is_odd_sized_and_an_ideal_low_pass() -> None:
    for size in REALESRGAN_DEFAULTS.first.kernel_sizes:
        kernel = circular_lowpass_kernel(math.pi / 3, size)
        assert kernel.shape == (size, size) and size % 2 == 1
        assert kernel.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="odd"):
        circular_lowpass_kernel(math.pi / 3, 12)
    # Cut-off at Nyquist: the sampled ideal low-pass is (almost) a delta.
    delta = circular_lowpass_kernel(math.pi, 21)
    assert delta[10, 10] > 0.7
    # A low cut-off has negative side-lobes (ringing).
    assert circular_lowpass_kernel(math.pi / 5, 21).min() < 0


# ----------------------------------------------------------------------- published table


def test_defaults_mirror_train_realesrgan_x4plus_yml() -> None:
    d = REALESRGAN_DEFAULTS
    assert d.first.kernel_list == d.second.kernel_list == KERNEL_TYPES
    assert d.first.kernel_prob == d.second.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert d.first.kernel_sizes == d.second.kernel_sizes == (7, 9, 11, 13, 15, 17, 19, 21)
    assert (d.first.blur_sigma, d.second.blur_sigma) == ((0.2, 3.0), (0.2, 1.5))
    assert d.first.betag_range == d.second.betag_range == (0.5, 4.0)
    assert d.first.betap_range == d.second.betap_range == (1.0, 2.0)
    assert (d.first.sinc_prob, d.second.sinc_prob, d.final_sinc_prob) == (0.1, 0.1, 0.8)
    assert (d.first.blur_prob, d.second.blur_prob) == (1.0, 0.8)
    assert (d.first.resize_prob, d.second.resize_prob) == ((0.2, 0.7, 0.1), (0.3, 0.4, 0.3))
    assert (d.first.resize_range, d.second.resize_range) == ((0.15, 1.5), (0.3, 1.2))
    assert d.first.gaussian_noise_prob == d.second.gaussian_noise_prob == 0.5
    assert (d.first.noise_range, d.second.noise_range) == ((1.0, 30.0), (1.0, 25.0))
    assert (d.first.poisson_scale_range, d.second.poisson_scale_range) == (
        (0.05, 3.0),
        (0.05, 2.5),
    )
    assert d.first.gray_noise_prob == d.second.gray_noise_prob == 0.4
    assert d.first.jpeg_range == d.second.jpeg_range == (30.0, 95.0)
    assert (d.final_order_prob, d.scale) == (0.5, 4)
    for stage in (d.first, d.second):
        assert sum(stage.kernel_prob) == pytest.approx(1.0)
        assert sum(stage.resize_prob) == pytest.approx(1.0)


def test_registration() -> None:
    op = get_degradation("realesrgan")
    assert op.levels == ("first_order", "second_order")
    assert op.unit == "pipeline" and op.stochastic
    assert op.reference == "Wang et al. 2021, arXiv:2107.10833"


# ------------------------------------------------------------------------------ pipeline


@pytest.mark.parametrize("severity", [1, 2])
def test_shape_dtype_and_determinism(severity: int, astronaut: np.ndarray) -> None:
    a = degrade(astronaut, "realesrgan", severity, seed=5)
    b = degrade(astronaut, "realesrgan", severity, seed=5)
    c = degrade(astronaut, "realesrgan", severity, seed=6)
    assert a.shape == astronaut.shape and a.dtype == astronaut.dtype
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_the_op_returns_float_in_unit_range(astronaut: np.ndarray) -> None:
    op = get_degradation("realesrgan")
    out, _ = op.fn(astronaut / 255.0, "second_order", np.random.default_rng(0))
    assert out.shape == astronaut.shape and out.dtype.kind == "f"
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_params_record_every_draw_and_are_json(astronaut: np.ndarray) -> None:
    stage_keys = {
        "first": {"blur", "resize", "noise", "jpeg"},
        "second": {"blur", "resize", "noise"},
    }
    kinds = set()
    for seed in range(12):
        params = degrade_with_params(astronaut, "realesrgan", 2, seed=seed).params
        assert json.loads(json.dumps(params)) == params
        assert params["level"] == "second_order" and params["stages"] == 2
        assert params["layout"] == "published"
        assert params["scale"] == 4 and params["lr_size"] == [32, 32]
        for name in ("first", "second"):
            stage = params[name]
            assert set(stage) == stage_keys[name]
            blur = stage["blur"]
            if blur["applied"]:
                kinds.add(blur["kernel_type"])
                assert blur["kernel_size"] in range(7, 22, 2)
                if blur["kernel_type"] == "sinc":
                    assert 0 < blur["cutoff"] <= math.pi
                else:
                    assert {"sigma_x", "sigma_y", "theta"} <= set(blur)
                    assert ("beta" in blur) == blur["kernel_type"].startswith(
                        ("generalized", "plateau")
                    )
            assert stage["resize"]["mode"] in ("area", "bilinear", "bicubic")
            assert stage["resize"]["direction"] in ("up", "down", "keep")
            assert set(stage["resize"]) == {"direction", "scale", "mode", "size"}
            noise = stage["noise"]
            assert noise["kind"] in ("gaussian", "poisson")
            assert isinstance(noise["gray"], bool)
            assert ("sigma" if noise["kind"] == "gaussian" else "scale") in noise
            if "jpeg" in stage:
                assert 30 <= stage["jpeg"]["quality"] <= 95
        final = params["final"]
        assert final["order"] in ("resize_sinc_then_jpeg", "jpeg_then_resize_sinc")
        assert final["resize"]["size"] == [32, 32]
        assert isinstance(final["sinc"]["applied"], bool)
        assert 30 <= final["jpeg"]["quality"] <= 95
    assert len(kinds) >= 2


def test_first_order_is_second_order_without_its_second_stage(astronaut: np.ndarray) -> None:
    one = degrade_with_params(astronaut, "realesrgan", 1, seed=3).params
    two = degrade_with_params(astronaut, "realesrgan", 2, seed=3).params
    assert "second" not in one and one["stages"] == 1
    assert one["first"] == two["first"]  # common random numbers across severities
    assert one["final"]["order"] == two["final"]["order"]
    assert one["final"]["sinc"] == two["final"]["sinc"]


# ------------------------------------------------------------------------- stage layout


def expected_ops(params: dict) -> list[str]:
    """The operations the published layout runs for these draws, in order (the variant adds
    ``second.jpeg``): what ``params["ops"]`` must say."""
    ops = ["first.blur", "first.resize", "first.noise", "first.jpeg"]
    if "second" in params:
        ops += ["second.blur"] if params["second"]["blur"]["applied"] else []
        ops += ["second.resize", "second.noise"]
        ops += ["second.jpeg"] if params["layout"] == "jpeg_per_stage" else []
    final = params["final"]
    resize_sinc = ["final.resize"] + (["final.sinc"] if final["sinc"]["applied"] else [])
    if final["order"] == "resize_sinc_then_jpeg":
        ops += [*resize_sinc, "final.jpeg"]
    else:
        ops += ["final.jpeg", *resize_sinc]
    return [*ops, "round", "resize_back"]


# level -> the JPEG round trips, in order (published code: first stage and final step only)
JPEG_ROUND_TRIPS = {
    "first_order": ["first.jpeg", "final.jpeg"],
    "second_order": ["first.jpeg", "final.jpeg"],
    "second_order_jpeg_per_stage": ["first.jpeg", "second.jpeg", "final.jpeg"],
}


@pytest.mark.parametrize("level", LEVELS)
def test_stage_layout_and_jpeg_round_trips(level: str, astronaut: np.ndarray) -> None:
    image = np.ascontiguousarray(astronaut[:64, :64])
    seen = set()
    for seed in range(16):
        params = apply_level(image, "realesrgan", level, seed).params
        ops = params["ops"]
        assert ops == expected_ops(params), (seed, ops)
        assert [op for op in ops if op.endswith(".jpeg")] == JPEG_ROUND_TRIPS[level]
        assert ("second" in params) == (level != "first_order")
        assert ("jpeg" in params.get("second", {})) == (level == "second_order_jpeg_per_stage")
        assert params["layout"] == (
            "jpeg_per_stage" if level == "second_order_jpeg_per_stage" else "published"
        )
        seen.add(params["final"]["order"])
        if "second" in params:
            seen.add(params["second"]["blur"]["applied"])
    # both final orders ran; the second stage both blurred and skipped its blur (p = 0.8)
    assert {"resize_sinc_then_jpeg", "jpeg_then_resize_sinc"} <= seen
    if level != "first_order":
        assert {True, False} <= seen


def test_the_jpeg_per_stage_variant_is_second_order_plus_one_jpeg(astronaut: np.ndarray) -> None:
    assert get_degradation("realesrgan").levels == ("first_order", "second_order")  # not default
    for seed in range(3):
        published = degrade_with_params(astronaut, "realesrgan", 2, seed=seed)
        variant = apply_level(astronaut, "realesrgan", "second_order_jpeg_per_stage", seed)
        # the same draws up to the second stage's noise; the variant then JPEGs once more
        assert variant.params["first"] == published.params["first"]
        second = dict(variant.params["second"])
        assert 30 <= second.pop("jpeg")["quality"] <= 95
        assert second == published.params["second"]
        assert not np.array_equal(variant.image, published.image)
    with pytest.raises(ValueError, match="unknown level"):
        apply_level(astronaut, "realesrgan", "third_order", 0)


# ------------------------------------------------------------------- mean PSNR per severity

# Mean PSNR (dB, uint8 RGB, whole image) of severities 1 and 2 over seeds 0-23 on the
# ``photos`` fixture (astronaut, coffee, chelsea at 96 px; 72 images each). Recorded from
# restorelab's own implementation, not from the published code, after its second order was
# checked against BasicSR 1.4.2 driven in the published feed_data order with the two documented
# deviations (pooled difference within ±0.15 dB on six 256² photographs, see
# docs/DEGRADATIONS.md), on 2026-12-06 with numpy 2.4.6, Pillow 13.0.0 (libjpeg-turbo),
# torch 2.14.1, scipy 1.17.1. Per-image PSNRs spread with SD ≈ 2.4-2.5 dB, so these are not
# population means (SE ≈ 0.3 dB); the seeds are fixed, so the check is exact up to numeric drift
# of the libraries, which TOLERANCE_DB allows. The paper-figure variant (one more JPEG, the
# layout this project had before) gives 17.18 dB at severity 2 on the same draws (0.10 dB lower,
# paired t = -4.3), outside the tolerance. Re-record only after re-checking against the reference.
RECORDED_MEAN_PSNR = {1: 18.1636, 2: 17.2816}
TOLERANCE_DB = 0.03


@pytest.mark.parametrize("severity", [1, 2])
def test_mean_psnr_per_severity_matches_the_recorded_values(
    severity: int, photos: dict[str, np.ndarray]
) -> None:
    values = [
        psnr(image, degrade(image, "realesrgan", severity, seed=seed))
        for image in photos.values()
        for seed in range(24)
    ]
    assert len(values) == 72
    mean = float(np.mean(values))
    assert abs(mean - RECORDED_MEAN_PSNR[severity]) <= TOLERANCE_DB, (severity, mean)
    assert RECORDED_MEAN_PSNR[2] < RECORDED_MEAN_PSNR[1] < 40  # it degrades, the second more


@pytest.mark.parametrize("severity", [1, 2])
def test_odd_small_image(severity: int, astronaut: np.ndarray) -> None:
    image = np.ascontiguousarray(astronaut[:33, 20:67])
    result = degrade_with_params(image, "realesrgan", severity, seed=1)
    assert result.image.shape == (33, 47, 3)
    assert result.params["lr_size"] == [8, 11]


def test_global_random_states_are_untouched(astronaut: np.ndarray) -> None:
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    expected = (np.random.rand(), random.random(), torch.rand(1).item())
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    for seed in range(3):
        degrade(astronaut, "realesrgan", 2, seed=seed)
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected


def test_determinism_across_processes(astronaut: np.ndarray, tmp_path: Path) -> None:
    code = (
        "import hashlib, sys, numpy as np; "
        "from restorelab.degradations import degrade; "
        "img = np.load(sys.argv[1]); "
        "print(hashlib.sha256(degrade(img, 'realesrgan', 2, seed=11).tobytes()).hexdigest())"
    )
    here = hashlib.sha256(degrade(astronaut, "realesrgan", 2, seed=11).tobytes()).hexdigest()
    path = tmp_path / "img.npy"
    np.save(path, astronaut)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == here
