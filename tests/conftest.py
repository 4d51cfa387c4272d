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
