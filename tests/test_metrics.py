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


def _basicsr_style_y(image: np.ndarray) -> np.ndarray:
    """Y as BasicSR's ``to_y_channel`` makes it: float32 in [0, 1], then back to [0, 255]."""
    scaled = image.astype(np.float32) / 255.0
    weights = np.array([65.481, 128.553, 24.966], np.float32)
    return ((scaled @ weights + 16.0) / 255.0 * 255.0).astype(np.float64)[..., None]


def _basicsr_style_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Per-channel SSIM by cv2.filter2D with an 11×11 σ=1.5 Gaussian, valid region, mean."""
    cv2 = pytest.importorskip("cv2")
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = kernel @ kernel.T

    def local_mean(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        mx, my = local_mean(x), local_mean(y)
        vx, vy = local_mean(x * x) - mx**2, local_mean(y * y) - my**2
        cxy = local_mean(x * y) - mx * my
        ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        values.append(ssim_map.mean())
    return float(np.mean(values))


@pytest.mark.parametrize("photo", ["coffee", "chelsea"])
@pytest.mark.parametrize("crop", [0, 4])
def test_scores_equal_an_independent_basicsr_style_reference(photo: str, crop: int) -> None:
    """The acceptance check: psnr, ssim, psnr_y, ssim_y equal BasicSR's recipe to 1e-4.

    The reference is written the way BasicSR's ``calculate_psnr``/``calculate_ssim`` compute
    (OpenCV filtering rather than scikit-image, Y in float32), on full-size real photographs.
    """
    from skimage import data

    clean = getattr(data, photo)()
    for op, severity in [("jpeg_compression", 2), ("gaussian_blur", 3), ("gaussian_noise", 2)]:
        degraded = degrade(clean, op, severity, seed=0)
        a, b = clean.astype(np.float64), degraded.astype(np.float64)
        if crop:
            a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
        ya, yb = _basicsr_style_y(a), _basicsr_style_y(b)
        expected = {
            "psnr": 10 * np.log10(255.0**2 / np.mean((a - b) ** 2)),
            "ssim": _basicsr_style_ssim(a, b),
            "psnr_y": 10 * np.log10(255.0**2 / np.mean((ya - yb) ** 2)),
            "ssim_y": _basicsr_style_ssim(ya, yb),
        }
        for name, value in expected.items():
            ours = create_metric(name, crop_border=crop)(clean, degraded)
            assert ours == pytest.approx(value, abs=1e-4), (photo, op, name)
