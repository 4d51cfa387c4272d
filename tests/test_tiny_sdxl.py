"""The tiny SDXL test models load back offline through the ordinary diffusers loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _run(pipe, image: Image.Image) -> np.ndarray:
    out = pipe(
        prompt="a photo",
        image=image,
        num_inference_steps=4,
        strength=0.5,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    return out.images[0]


def test_tiny_base_and_lora_load_offline(tiny_sdxl: Path, tiny_loras: dict[str, Path]) -> None:
    from diffusers import StableDiffusionXLImg2ImgPipeline

    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny_sdxl, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8"))
    base = _run(pipe, image)
    assert base.shape == (64, 64, 3) and np.isfinite(base).all()
    pipe.load_lora_weights(str(tiny_loras["scene"].parent), adapter_name="scene")
    with_lora = _run(pipe, image)
    assert np.abs(with_lora - base).mean() > 1e-3


def test_tiny_controlnet_loads(tiny_controlnet: Path) -> None:
    from diffusers import ControlNetModel

    model = ControlNetModel.from_pretrained(tiny_controlnet, local_files_only=True)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
