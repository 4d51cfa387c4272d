"""Batched torch metrics (``Metric.batch``) against the per-image numpy path, and DISTS.

Fidelity metrics must equal the numpy path (itself checked against scikit-image to 1e-6 in
test_metrics.py) to 1e-10 in float64. LPIPS and DISTS run on random backbones that the tests
save under the real file names; DISTS is compared with pyiqa's implementation of the
published model (same random weights) where pyiqa is installed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from restorelab.benchmark.metrics import create_metric
from restorelab.benchmark.metrics.dists import DISTS_CHANNELS, build_dists, load_dists
from restorelab.degradations import degrade
from restorelab.weights import MissingWeightsError

FIDELITY = ("psnr", "ssim", "psnr_y", "ssim_y")


def as_batch(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def pairs(photos: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """Photo crops of one odd size (37×53) and their blurred / noisy / JPEG versions."""
    out = []
    for k, image in enumerate(photos.values()):
        crop = np.ascontiguousarray(image[:37, :53])
        op = ("gaussian_blur", "gaussian_noise", "jpeg_compression")[k % 3]
        out.append((crop, degrade(crop, op, 3, seed=k)))
    return out


@pytest.mark.parametrize("crop_border", [0, 4])
@pytest.mark.parametrize("name", FIDELITY)
def test_batched_fidelity_equals_the_numpy_path(pairs: list, name: str, crop_border: int) -> None:
    metric = create_metric(name, crop_border=crop_border)
    references, distorted = zip(*pairs, strict=True)
    ours = metric.batch(as_batch(*references), as_batch(*distorted))
    assert ours.shape == (len(pairs),) and ours.dtype == torch.float64
    for value, ref, dist in zip(ours.tolist(), references, distorted, strict=True):
        assert value == pytest.approx(metric(ref, dist), abs=1e-10)
    # float input in [0, 1] is the same as uint8 / 255
    as_float = metric.batch(
        as_batch(*references).double() / 255.0, as_batch(*distorted).double() / 255.0
    )
    torch.testing.assert_close(as_float, ours, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", FIDELITY)
def test_batched_fidelity_in_float32_is_close(pairs: list, name: str) -> None:
    from restorelab.benchmark.metrics import batched

    references, distorted = (as_batch(*images) / 255.0 for images in zip(*pairs, strict=True))
    fn = getattr(batched, f"{name}_batch")
    single = fn(references, distorted, dtype=torch.float32)
    double = fn(references, distorted)
    tolerance = 1e-3 if name.startswith("psnr") else 1e-5
    torch.testing.assert_close(single.double(), double, atol=tolerance, rtol=0)


def test_identical_batches_and_bad_input(astronaut: np.ndarray) -> None:
    batch = as_batch(astronaut, astronaut[::-1].copy())
    assert create_metric("psnr").batch(batch, batch).isinf().all()
    assert create_metric("ssim_y").batch(batch, batch).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        create_metric("psnr").batch(batch, batch[:1])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        create_metric("ssim").batch(batch[:, :1], batch[:, :1])
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        create_metric("ssim").batch(astronaut, astronaut)
    with pytest.raises(ValueError, match="at least 11x11"):
        create_metric("ssim").batch(batch[..., :10, :10], batch[..., :10, :10])
    consistency = create_metric("consistency", degradation="gaussian_blur")
    assert not consistency.has_batch
    with pytest.raises(NotImplementedError, match="no batched"):
        consistency.batch(batch, batch)


def test_lpips_batch_equals_per_image(fake_alexnet_home: Path, pairs: list) -> None:
    metric = create_metric("lpips", device="cpu")
    references, distorted = zip(*pairs, strict=True)
    ours = metric.batch(as_batch(*references), as_batch(*distorted))
    expected = [metric(ref, dist) for ref, dist in pairs]
    assert ours.tolist() == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# DISTS


@pytest.fixture
def dists_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$TORCH_HOME`` with a random VGG-16 (torchvision's file name) and random α, β saved
    as pyiqa's DISTS file."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(
        torchvision.models.vgg16(weights=None).state_dict(), checkpoints / "vgg16-397923af.pth"
    )
    total = sum(DISTS_CHANNELS)
    (tmp_path / "hub" / "pyiqa").mkdir()
    torch.save(
        {"alpha": torch.rand(1, total, 1, 1) + 0.01, "beta": torch.rand(1, total, 1, 1) + 0.01},
        tmp_path / "hub" / "pyiqa" / "DISTS_weights-f5e65c96.pth",
    )
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def test_dists_plumbing(dists_home: Path, astronaut: np.ndarray) -> None:
    metric = create_metric("dists", device="cpu")
    assert metric.lower_better
    assert metric(astronaut, astronaut) == pytest.approx(0.0, abs=1e-6)
    mild = degrade(astronaut, "gaussian_blur", 1)
    heavy = degrade(astronaut, "gaussian_blur", 8)
    assert 0.0 < metric(astronaut, mild) < metric(astronaut, heavy) <= 1.0
    batch = metric.batch(as_batch(astronaut, astronaut), as_batch(mild, heavy))
    expected = [metric(astronaut, mild), metric(astronaut, heavy)]
    assert batch.tolist() == pytest.approx(expected, abs=1e-6)


def test_dists_matches_pyiqa(dists_home: Path, astronaut: np.ndarray, monkeypatch) -> None:
    """pyiqa's DISTS (the published architecture) with the same random weights."""
    pytest.importorskip("pyiqa")
    import torchvision
    from pyiqa.archs import dists_arch

    vgg = torchvision.models.vgg16(weights=None)
    vgg.load_state_dict(torch.load(dists_home / "hub/checkpoints/vgg16-397923af.pth"))
    monkeypatch.setattr(dists_arch.models, "vgg16", lambda **_: vgg)
    theirs = dists_arch.DISTS(pretrained=False)
    weights = torch.load(dists_home / "hub/pyiqa/DISTS_weights-f5e65c96.pth")
    theirs.alpha.data.copy_(weights["alpha"])
    theirs.beta.data.copy_(weights["beta"])
    theirs.eval()
    ours = load_dists(
        dists_home / "hub/checkpoints/vgg16-397923af.pth",
        dists_home / "hub/pyiqa/DISTS_weights-f5e65c96.pth",
    )
    x = as_batch(astronaut, astronaut).float() / 255
    y = as_batch(degrade(astronaut, "gaussian_noise", 3), degrade(astronaut, "jpeg_compression", 5))
    y = y.float() / 255
    with torch.no_grad():
        torch.testing.assert_close(ours(x, y), theirs(y, x).reshape(-1), atol=1e-6, rtol=0)


def test_dists_missing_weights_name_the_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"vgg16-397923af\.pth"):
        create_metric("dists")
    with pytest.raises(MissingWeightsError, match=r"DISTS_weights-f5e65c96.pth or weights.pt"):
        torch.save({}, tmp_path / "vgg16-397923af.pth")
        create_metric("dists", weights_dir=str(tmp_path))


def test_dists_rejects_wrong_files(tmp_path: Path) -> None:
    model = build_dists()
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "vgg.pth")
    torch.save({"alpha": torch.zeros(3)}, tmp_path / "ab.pth")
    with pytest.raises(ValueError, match="VGG-16 tensors"):
        load_dists(tmp_path / "vgg.pth", tmp_path / "ab.pth")
    assert math.isclose(float(model.alpha.sum()), 0.1 * sum(DISTS_CHANNELS), rel_tol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", FIDELITY)
def test_batched_fidelity_on_cuda_equals_cpu(pairs: list, name: str) -> None:
    metric = create_metric(name, crop_border=2)
    references, distorted = (as_batch(*images) for images in zip(*pairs, strict=True))
    on_gpu = metric.batch(references.cuda(), distorted.cuda())
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), metric.batch(references, distorted), atol=1e-9, rtol=0)


@pytest.mark.parametrize("shape", [(2, 5, 11, 11), (1, 3, 37, 53), (2, 1, 130, 75)])
def test_banded_and_shifted_filters_agree(shape: tuple) -> None:
    """The GPU default (tiles times a banded matrix) equals the CPU default (shifted adds)."""
    from restorelab.benchmark.metrics import batched

    planes = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    planes *= 255
    shifted = batched._gaussian_valid(planes.clone(), "shift")
    banded = batched._gaussian_valid(planes.clone(), "banded")
    assert banded.shape == shifted.shape == (*shape[:2], shape[2] - 10, shape[3] - 10)
    torch.testing.assert_close(banded, shifted, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="'shift' or 'banded'"):
        batched._gaussian_valid(planes, "fft")
