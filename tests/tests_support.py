"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resized(image: np.ndarray, long_side: int) -> np.ndarray:
    """``image`` scaled (Lanczos) so its long side is ``long_side`` pixels."""
    pil = Image.fromarray(image)
    scale = long_side / max(pil.size)
    size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
    return np.asarray(pil.resize(size, Image.Resampling.LANCZOS))
