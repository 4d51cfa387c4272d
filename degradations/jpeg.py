"""Compression degradations."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from restorelab.degradations.base import register_degradation, to_uint8


@register_degradation(
    "jpeg_compression",
    # libjpeg quality factor, ImageNet-C severities 1-5
    # (imagecorruptions `jpeg_compression`: c = [25, 18, 15, 10, 7]).
    levels=(25, 18, 15, 10, 7),
    unit="jpeg_quality",
    stochastic=False,
    reference="Hendrycks & Dietterich 2019, arXiv:1903.12261",
)
def jpeg_compression(image: np.ndarray, quality: int, rng: np.random.Generator) -> tuple:
    """Encode as baseline JPEG at ``quality`` with Pillow (4:2:0 chroma subsampling) and decode."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.float64) / 255.0
    return out, {"quality": int(quality), "bytes": buffer.getbuffer().nbytes}
