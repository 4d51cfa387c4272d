"""Metrics: reference values, the MATLAB/BasicSR Y convention, and scikit-image agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restorelab.benchmark.metrics import create_metric, list_metrics, rgb_to_y
from restorelab.degradations import degrade


def test_psnr_reference_value() -> None:
    # A constant error of 1 grey level: MSE = 1, PSNR = 20 log10(255) = 48.130803608679 dB.
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + 1
    assert create_metric("psnr")(a, b) == pytest.approx(48.130803608679, abs=1e-9)
    assert math.isinf(create_metric("psnr")(a, a))


def test_psnr_agrees_with_skimage(astronaut: np.ndarray) -> None:
    noisy = degrade(astronaut, "gaussian_noise", 2, seed=0)
    expected = peak_signal_noise_ratio(astronaut, noisy, data_range=255)
    assert create_metric("psnr")(astronaut, noisy) == pytest.approx(expected, abs=1e-10)


def test_y_channel_is_bt601_limited_range() -> None:
    # MATLAB rgb2ycbcr: black → 16, white → 235, pure red → 16 + 65.481 = 81.481.
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    assert rgb_to_y(pixels)[0].tolist() == pytest.approx([16.0, 235.0, 81.481], abs=1e-9)


def test_ssim_matches_the_gaussian_window_convention(astronaut: np.ndarray) -> None:
    blurred = degrade(astronaut, "gaussian_blur", 2)
    expected_rgb = structural_similarity(
        astronaut.astype(float),
        blurred.astype(float),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    expected_y = structural_similarity(
        rgb_to_y(astronaut),
        rgb_to_y(blurred),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert create_metric("ssim")(astronaut, blurred) == pytest.approx(expected_rgb, abs=1e-7)
    assert create_metric("ssim_y")(astronaut, blurred) == pytest.approx(expected_y, abs=1e-7)
    assert create_metric("ssim")(astronaut, astronaut) == pytest.approx(1.0)


def test_crop_border_removes_the_edges() -> None:
    a = np.zeros((16, 16, 3), np.uint8)
    b = a.copy()
    b[:2] = 255  # only the top two rows differ
    assert math.isinf(create_metric("psnr", crop_border=2)(a, b))
    assert not math.isinf(create_metric("psnr")(a, b))
    with pytest.raises(ValueError, match="leaves nothing"):
        create_metric("psnr", crop_border=8)(a, b)


def test_metric_metadata_and_errors() -> None:
    metric = create_metric("psnr")
    assert metric.higher_is_better and not metric.lower_better
    assert "data_range=255" in metric.convention
    assert {"psnr", "ssim", "psnr_y", "ssim_y"} <= set(list_metrics())
    with pytest.raises(ValueError, match="unknown option"):
        create_metric("psnr", bogus=1)
    with pytest.raises(ValueError, match="same shape"):
        metric(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
