"""Learned and no-reference metrics: LPIPS plumbing, degradation consistency, pyiqa wrappers.

No weights are downloaded: LPIPS runs on a randomly initialised AlexNet that the test saves
under torchvision's file name in a temporary ``$TORCH_HOME``, so the checks are about the
plumbing (loading, input range, direction), not about LPIPS' calibrated values.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

from restorelab.benchmark.metrics import METRICS, create_metric
from restorelab.degradations import degrade, degrade_with_params
from restorelab.weights import MissingWeightsError


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


def test_lpips_loads_the_local_backbone(fake_alexnet_home: Path, astronaut: np.ndarray) -> None:
    import torch

    from restorelab.benchmark.metrics.learned import _lpips_model

    metric = create_metric("lpips", device="cpu")
    assert not metric.higher_is_better and metric.lower_better
    assert "[-1, 1]" in metric.convention and "net=alex" in metric.convention
    image = astronaut[:64, :64]
    same = metric(image, image)
    mild, strong = metric(image, _noisy(image, 8)), metric(image, _noisy(image, 40))
    assert same == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(mild) and 0.0 <= mild < strong
    # The backbone tensors are those of the saved file, not torchvision's random init.
    saved = torch.load(fake_alexnet_home / "hub/checkpoints/alexnet-owt-7be5be79.pth")
    model = _lpips_model("alex", "cpu", None)
    assert torch.equal(model.net.slice1.get_submodule("0").weight, saved["features.0.weight"])
    assert torch.equal(model.net.slice5.get_submodule("10").bias, saved["features.10.bias"])
    assert _lpips_model("alex", "cpu", None) is model  # cached per process


def test_lpips_missing_backbone_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    with pytest.raises(MissingWeightsError, match=re.escape("vgg16-397923af.pth")) as info:
        create_metric("lpips", net="vgg")
    assert str(expected) in str(info.value) and "IMAGENET1K_V1" in str(info.value)
    with pytest.raises(MissingWeightsError, match=re.escape(str(tmp_path / "elsewhere"))):
        create_metric("lpips", weights_dir=str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="net must be one of"):
        create_metric("lpips", net="squeeze")


def test_consistency_rewards_explained_detail(astronaut: np.ndarray) -> None:
    blurred = degrade(astronaut, "gaussian_blur", 2)
    metric = create_metric("consistency", degradation="gaussian_blur", severity=2)
    assert metric.higher_is_better
    perfect = metric(blurred, astronaut)
    hallucinated = metric(blurred, _noisy(astronaut, 40))
    # Gaussian blur is deterministic: the clean image re-blurred is the input exactly.
    assert math.isinf(perfect) or perfect > 60.0
    assert hallucinated < perfect
    assert metric(blurred, blurred) < perfect  # an unrestored output is not consistent either


def test_consistency_for_super_resolution(astronaut: np.ndarray) -> None:
    import cv2

    low = cv2.resize(astronaut, (32, 32), interpolation=cv2.INTER_AREA)
    metric = create_metric("consistency", resize=4)
    bicubic = cv2.resize(low, (128, 128), interpolation=cv2.INTER_CUBIC)
    assert metric(low, astronaut) > metric(low, _noisy(astronaut, 60))
    assert metric(low, astronaut) > 60.0 or math.isinf(metric(low, astronaut))
    assert math.isfinite(metric(low, bicubic))
    with pytest.raises(ValueError, match="not a multiple"):
        metric(low, astronaut[:126])


def test_consistency_option_errors(astronaut: np.ndarray) -> None:
    unbound = create_metric("consistency")  # fine in a benchmark run: cells bind it
    with pytest.raises(ValueError, match="give a degradation"):
        unbound(astronaut, astronaut)
    with pytest.raises(ValueError, match="is random"):
        create_metric("consistency", degradation="gaussian_blur:2+gaussian_noise")
    with pytest.raises(ValueError, match="not both"):
        create_metric("consistency", degradation="gaussian_blur", resize=2)
    with pytest.raises(ValueError, match="integer >= 2"):
        create_metric("consistency", resize=1)
    with pytest.raises(KeyError, match="gaussian_blur"):
        create_metric("consistency", degradation="gaussian_blurr")
    metric = create_metric("consistency", degradation="gaussian_blur")
    with pytest.raises(ValueError, match="resize=<factor>"):
        metric(astronaut[:32, :32], astronaut)


def test_consistency_binds_to_each_benchmark_cell(astronaut: np.ndarray) -> None:
    from restorelab.benchmark.metrics.base import CellContext

    metric = create_metric("consistency")
    blurred = degrade(astronaut, "gaussian_blur", 3, seed=0)
    cell = CellContext("gaussian_blur", severity=3, seed=0)
    # the clean image explains its blurred input exactly; the input itself does not
    assert math.isinf(metric.score_cell(astronaut, blurred, astronaut, cell))
    assert metric.score_cell(astronaut, blurred, blurred, cell) < 60.0
    # a calibrated grid's own levels are used (σ = 0.5 at severity 1, not the table's σ = 1)
    soft = degrade_with_params(astronaut, "gaussian_blur", 1, levels=(0.5,)).image
    matched = CellContext("gaussian_blur", severity=1, seed=0, levels=(0.5,))
    assert math.isinf(metric.score_cell(astronaut, soft, astronaut, matched))
    table = CellContext("gaussian_blur", severity=1, seed=0)
    assert metric.score_cell(astronaut, soft, astronaut, table) < 60.0
    # random degradations and same-size real pairs have no consistency; SR pairs downscale
    noisy = degrade(astronaut, "gaussian_noise", 2, seed=0)
    assert math.isnan(metric.score_cell(astronaut, noisy, astronaut, CellContext("gaussian_noise")))
    assert math.isnan(metric.score_cell(astronaut, noisy, astronaut, CellContext(None)))
    import cv2

    low = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA)
    sr = CellContext(None, scale=2)
    assert math.isinf(metric.score_cell(astronaut, low, astronaut, sr))
    # options given explicitly win over the cell's
    fixed = create_metric("consistency", degradation="gaussian_blur", severity=3)
    assert fixed.score_cell(astronaut, blurred, astronaut, CellContext("gaussian_noise")) == (
        fixed(blurred, astronaut)
    )


def test_metric_specs_and_labels() -> None:
    psnr4 = create_metric("psnr:crop_border=4")
    assert psnr4.options == {"crop_border": 4} and psnr4.label == "psnr:crop_border=4"
    assert create_metric("psnr:crop_border=0").label == "psnr"  # defaults are not spelled out
    assert create_metric("psnr:crop_border=2", crop_border=4).options["crop_border"] == 4
    blur = create_metric("consistency:degradation=gaussian_blur,severity=3")
    assert blur.label == "consistency:degradation=gaussian_blur,severity=3"
    with pytest.raises(ValueError, match="unknown option"):
        create_metric("ssim:window=7")


NR_METRICS = ("niqe", "musiq", "clipiqa", "maniqa")


def test_no_reference_metrics_are_registered_without_importing_pyiqa() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from restorelab.benchmark.metrics import create_metric, list_metrics; "
        "assert {'niqe', 'musiq', 'clipiqa', 'maniqa'} <= set(list_metrics()); "
        "assert 'pyiqa' not in sys.modules, 'pyiqa imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in NR_METRICS:
        spec = METRICS.get(name)
        assert spec.no_reference and "(needs the iqa extra)" in spec.convention


def test_no_reference_metric_without_pyiqa(monkeypatch: pytest.MonkeyPatch) -> None:
    from restorelab.benchmark.metrics import no_reference

    monkeypatch.setattr(no_reference, "pyiqa_available", lambda: False)
    with pytest.raises(ImportError, match=r"restorelab\[iqa\]"):
        create_metric("musiq")


@pytest.mark.skipif(importlib.util.find_spec("pyiqa") is None, reason="pyiqa not installed")
@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("niqe", "niqe_modelparameters.mat"),
        ("musiq", "musiq_koniq_ckpt-e95806b9.pth"),
        ("clipiqa", "RN50.pt"),
        ("maniqa", "ckpt_koniq10k.pt"),
    ],
)
def test_no_reference_metric_without_weights(
    name: str, missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match=re.escape(missing)) as info:
        create_metric(name)
    assert str(tmp_path) in str(info.value) and "To get it" in str(info.value)


_PYIQA_THROUGH_OURS = """
import json, sys
import numpy as np, torch, pyiqa
from PIL import Image
from restorelab.benchmark.metrics import create_metric
image = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
out = {}
for name in ("niqe", "musiq"):
    ours = create_metric(name, device="cpu")(None, image)
    theirs = float(pyiqa.create_metric(name, device="cpu")(tensor).reshape(-1)[0])
    out[name] = [ours, theirs]
print(json.dumps(out))
"""


@pytest.mark.skipif(importlib.util.find_spec("pyiqa") is None, reason="pyiqa not installed")
def test_no_reference_metrics_run_pyiqa_on_local_files(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    """NIQE and MUSIQ end to end with model files the test makes (random, not the real ones).

    Checks the plumbing: the files are found in ``$TORCH_HOME``, values equal pyiqa's own on
    the same image, and ``score --json`` stays machine-readable (pyiqa prints while loading).
    """
    import json
    import os
    import subprocess
    import sys

    import scipy.io
    import torch
    from PIL import Image
    from pyiqa.archs.musiq_arch import MUSIQ

    cache = tmp_path / "torch" / "hub" / "pyiqa"
    cache.mkdir(parents=True)
    rng = np.random.default_rng(0)
    factor = rng.normal(size=(36, 36))
    scipy.io.savemat(
        cache / "niqe_modelparameters.mat",
        {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": factor @ factor.T + np.eye(36)},
    )
    torch.manual_seed(0)
    torch.save(MUSIQ(pretrained=False).state_dict(), cache / "musiq_koniq_ckpt-e95806b9.pth")
    clean, blurred = tmp_path / "clean.png", tmp_path / "blurred.png"
    Image.fromarray(astronaut).save(clean)
    Image.fromarray(degrade(astronaut, "gaussian_blur", 3)).save(blurred)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HUB_OFFLINE": "1"}

    compared = subprocess.run(
        [sys.executable, "-c", _PYIQA_THROUGH_OURS, str(blurred)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    for name, (ours, theirs) in json.loads(compared.stdout.splitlines()[-1]).items():
        assert math.isfinite(ours) and ours == pytest.approx(theirs, rel=1e-6), name

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "restorelab",
            "score",
            str(clean),
            str(blurred),
            "--metrics",
            "psnr,niqe,musiq",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    scores = json.loads(cli.stdout)  # nothing but the JSON object on stdout
    assert set(scores) == {"psnr", "niqe", "musiq"} and all(map(math.isfinite, scores.values()))


@pytest.mark.parametrize("shape", [(128, 128), (75, 203), (11, 11), (12, 80)])
def test_fast_ssim_equals_scikit_image(photos: dict[str, np.ndarray], shape: tuple) -> None:
    # scikit-image's structural_similarity is the reference (it defines the convention); the
    # OpenCV strip implementation must give the same value to 1e-6 (it agrees to ~1e-12).
    from skimage.metrics import structural_similarity

    from restorelab.benchmark.metrics import rgb_to_y

    options = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    for image in photos.values():
        reference = np.resize(image, (*shape, 3)).astype(np.uint8)
        distorted = _noisy(reference // 2 + 60, 6)  # contrast, brightness and noise
        rgb = structural_similarity(
            reference.astype(float), distorted.astype(float), channel_axis=-1, **options
        )
        y = structural_similarity(rgb_to_y(reference), rgb_to_y(distorted), **options)
        assert create_metric("ssim")(reference, distorted) == pytest.approx(rgb, abs=1e-6)
        assert create_metric("ssim_y")(reference, distorted) == pytest.approx(y, abs=1e-6)


def test_fast_ssim_rejects_images_below_the_window() -> None:
    small = np.zeros((10, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11x11"):
        create_metric("ssim")(small, small)
