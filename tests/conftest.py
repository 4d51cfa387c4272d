"""Shared fixtures: small real photographs from scikit-image, and corpora made from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from tests_support import resized


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, 128×128 RGB uint8."""
    return resized(data.astronaut(), 128)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Three real photos (astronaut, coffee, chelsea), long side 96 px."""
    return {name: resized(getattr(data, name)(), 96) for name in ("astronaut", "coffee", "chelsea")}


@pytest.fixture
def photo_folder(tmp_path: Path, photos: dict[str, np.ndarray]) -> Path:
    """A plain folder with the three photos as PNG."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


@pytest.fixture
def tiny_grid_file(tmp_path: Path) -> Path:
    """A 2 degradations × 2 severities × 1 seed grid file."""
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\ndegradations: [gaussian_blur, gaussian_noise]\nseverities: [1, 3]\n"
        "seeds: [0]\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def fake_alexnet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``$TORCH_HOME`` with a random AlexNet saved as torchvision's checkpoint file."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(
        torchvision.models.alexnet(weights=None).state_dict(),
        checkpoints / "alexnet-owt-7be5be79.pth",
    )
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SDXL folder in the diffusers layout (see ``tests/tiny_sdxl.py``)."""
    from tiny_sdxl import save_tiny_sdxl

    return save_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl") / "base")


@pytest.fixture(scope="session")
def tiny_loras(tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different random LoRA files (``scene``, ``face``) for the tiny base."""
    from tiny_sdxl import save_tiny_lora

    root = tmp_path_factory.mktemp("tiny_loras")
    return {
        name: save_tiny_lora(tiny_sdxl, root / name, seed=seed)
        for name, seed in (("scene", 1), ("face", 2))
    }


@pytest.fixture(scope="session")
def tiny_controlnet(tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ControlNet folder matching the tiny base's UNet."""
    from tiny_sdxl import save_tiny_controlnet

    return save_tiny_controlnet(tiny_sdxl, tmp_path_factory.mktemp("tiny_cn") / "controlnet")
