"""Digital degradations: JPEG compression and pixelation (ImageNet-C, extended to 10 levels)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from restorelab.degradations.base import register_degradation

_REFERENCE = "Hendrycks & Dietterich 2019, arXiv:1903.12261 (imagecorruptions 1.1.2)"


def jpeg_roundtrip(image: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """Encode RGB ``uint8`` as baseline JPEG with Pillow (4:2:0) and decode; also the byte size."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    size = buffer.tell()
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        decoded.load()
        if decoded.mode != "RGB":  # baseline RGB JPEG decodes to RGB: skip convert's copy
            decoded = decoded.convert("RGB")
        return np.asarray(decoded), size


@register_degradation(
    "jpeg_compression",
    # libjpeg quality factor. 1-5: [25, 18, 15, 10, 7] (ImageNet-C); 6-10: [6, 5, 4, 3, 2]
    # (below 2 the quantisation tables saturate at 255 and quality 1 equals 2 on photos).
    levels=(25, 18, 15, 10, 7, 6, 5, 4, 3, 2),
    unit="jpeg_quality",
    stochastic=False,
    reference=_REFERENCE,
    takes_uint8=True,
)
def jpeg_compression(image: np.ndarray, quality: int, rng: np.random.Generator) -> tuple:
    """Baseline JPEG at ``quality`` with Pillow's libjpeg defaults (4:2:0 chroma subsampling)."""
    out, size = jpeg_roundtrip(image, quality)
    return out, {"quality": int(quality), "bytes": size}


@register_degradation(
    "pixelate",
    # scale of the low-resolution copy. 1-5: [.6, .5, .4, .3, .25] (ImageNet-C);
    # 6-10: [.2, .15, .12, .1, .08].
    levels=(0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.12, 0.1, 0.08),
    unit="scale",
    stochastic=False,
    reference=_REFERENCE,
    takes_uint8=True,
)
def pixelate(image: np.ndarray, scale: float, rng: np.random.Generator) -> tuple:
    """Box-filter down to ``scale`` × the size, then nearest-neighbour back up.

    imagecorruptions' version (Pillow BOX then NEAREST); the original ImageNet-C code used BOX
    for both resizes.
    """
    height, width = image.shape[:2]
    small = (max(1, int(width * scale)), max(1, int(height * scale)))
    pil = Image.fromarray(image).resize(small, Image.Resampling.BOX)
    out = np.asarray(pil.resize((width, height), Image.Resampling.NEAREST))
    return out, {"scale": float(scale), "low_res": [small[1], small[0]]}
