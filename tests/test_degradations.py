"""Degradations: published tables, faithfulness to the reference filters, determinism."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage.filters import gaussian

from restorelab.benchmark.metrics import create_metric
from restorelab.degradations import (
    degrade,
    degrade_with_params,
    get_degradation,
    list_degradations,
)

psnr = create_metric("psnr")


def test_imagenet_c_tables() -> None:
    # Hendrycks & Dietterich 2019, as tabulated in imagecorruptions 1.1.2 corruptions.py.
    assert get_degradation("gaussian_blur").levels[:5] == (1, 2, 3, 4, 6)
    assert get_degradation("gaussian_noise").levels[:5] == (0.08, 0.12, 0.18, 0.26, 0.38)
    assert get_degradation("jpeg_compression").levels[:5] == (25, 18, 15, 10, 7)


@pytest.mark.parametrize("name", ["gaussian_blur", "gaussian_noise", "jpeg_compression"])
def test_shape_dtype_and_params(name: str, astronaut: np.ndarray) -> None:
    result = degrade_with_params(astronaut, name, 2, seed=3)
    assert result.image.shape == astronaut.shape
    assert result.image.dtype == np.uint8
    assert result.params["name"] == name
    assert result.params["severity"] == 2
    assert result.params["seed"] == 3
    assert result.params["level"] == get_degradation(name).levels[1]


@pytest.mark.parametrize("name", ["gaussian_blur", "gaussian_noise", "jpeg_compression"])
def test_severity_is_monotone_on_a_photo(name: str, astronaut: np.ndarray) -> None:
    scores = [psnr(astronaut, degrade(astronaut, name, s, seed=0)) for s in range(1, 6)]
    assert all(a > b for a, b in itertools.pairwise(scores)), scores


def test_gaussian_blur_matches_skimage_gaussian(astronaut: np.ndarray) -> None:
    # ImageNet-C's reference: skimage.filters.gaussian(x / 255, sigma, channel_axis=-1).
    for severity, sigma in enumerate((1, 2, 3, 4, 6), start=1):
        ref = gaussian(astronaut / 255.0, sigma=sigma, channel_axis=-1)
        ref8 = np.uint8(np.clip(ref, 0, 1) * 255)  # the reference truncates
        ours = degrade(astronaut, "gaussian_blur", severity)
        assert np.abs(ours.astype(int) - ref8.astype(int)).max() <= 1
        assert (ours == ref8).mean() > 0.999


def test_jpeg_matches_pillow_at_the_table_quality(astronaut: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(astronaut).save(buffer, format="JPEG", quality=15)
    reference = np.asarray(Image.open(buffer).convert("RGB"))
    assert np.array_equal(degrade(astronaut, "jpeg_compression", 3), reference)


def test_gaussian_noise_statistics() -> None:
    gray = np.full((256, 256, 3), 128, np.uint8)
    for severity, sigma in enumerate((0.08, 0.12, 0.18), start=1):
        noise = degrade(gray, "gaussian_noise", severity, seed=1).astype(float) - 128
        assert abs(noise.mean()) < 0.5
        assert noise.std() == pytest.approx(sigma * 255, rel=0.03)


def test_same_seed_same_bytes_other_seed_other_noise(astronaut: np.ndarray) -> None:
    a = degrade(astronaut, "gaussian_noise", 3, seed=7)
    b = degrade(astronaut, "gaussian_noise", 3, seed=7)
    c = degrade(astronaut, "gaussian_noise", 3, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_determinism_across_processes(astronaut: np.ndarray) -> None:
    code = (
        "import hashlib, numpy as np; from skimage import data; "
        "from restorelab.degradations import degrade; "
        "img = data.astronaut()[:64, :64]; "
        "print(hashlib.sha256(degrade(img, 'gaussian_noise', 4, seed=11).tobytes()).hexdigest())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    from skimage import data

    here = degrade(data.astronaut()[:64, :64], "gaussian_noise", 4, seed=11)
    import hashlib

    assert runs == {hashlib.sha256(here.tobytes()).hexdigest()}


def test_global_numpy_random_state_is_untouched(astronaut: np.ndarray) -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    degrade(astronaut, "gaussian_noise", 2, seed=0)
    assert np.random.rand() == expected


def test_bad_inputs_are_refused_clearly(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"severity 11 out of range 1\.\.10"):
        degrade(astronaut, "gaussian_blur", 11)
    with pytest.raises(ValueError, match="grayscale"):
        degrade(astronaut[..., 0], "gaussian_blur", 1)
    with pytest.raises(KeyError, match="Did you mean 'gaussian_blur'"):
        degrade(astronaut, "gausian_blur", 1)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        degrade(astronaut, "gaussian_noise", 1, seed=-1)


def test_registry_lists_the_ops() -> None:
    assert {"gaussian_blur", "gaussian_noise", "jpeg_compression"} <= set(list_degradations())
