"""GPU figures of the ``sdxl`` restorer: SDXL-base-sized models with random bf16 weights.

Builds the real SDXL base 1.0 architecture from its published configs (UNet 2.6 B parameters,
VAE, CLIP ViT-L and OpenCLIP ViT-bigG text encoders; dimensions below, from
stabilityai/stable-diffusion-xl-base-1.0's ``*/config.json``) with random weights, no download,
and reports in one run:

1. plain diffusers SDXL img2img vs our restorer at equal steps (goal: ours ≤ 1.15× its time);
2. seconds per denoising step (UNet call, both CFG branches) and the UNet's FLOPs per step
   (``torch.utils.flop_counter``);
3. the fraction of this GPU's bf16 matmul peak, measured in the same script (goal ≥ 40 %);
4. peak GPU memory of a 1024² restore;
5. a 2048² restore with latent tiling (tile 128, stride 64) and tiled VAE;
6. batch-size scaling (1, 2, 4 images of 1024² per call).

Random weights make the pictures meaningless; the timings are those of the real shapes.

Usage (one device call; prints a Markdown table and writes JSON to $OUT or --out)::

    python benchmarks/gpu_sdxl.py                  # on a CUDA GPU, about 3–5 minutes
    python benchmarks/gpu_sdxl.py --tiny           # tiny config on the CPU: checks the script
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sdxl_arch import (
    SDXL_SCHEDULER,
    SDXL_TEXT,
    SDXL_TEXT_2,
    SDXL_UNET,
    SDXL_VAE,
    TINY_TEXT,
    TINY_UNET,
    TINY_VAE,
)


def tokenizers():
    """Two CLIP tokenizers over a byte-level vocabulary (no hub files; one token per byte)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols + [s + "</w>" for s in symbols]:
        vocab[symbol] = len(vocab)
    first = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    second = CLIPTokenizer(vocab=dict(vocab), merges=[], model_max_length=77, pad_token="!")
    return first, second


def build_parts(tiny: bool, device: str, dtype: torch.dtype) -> dict:
    """Random-weight SDXL parts on ``device``: UNet and text encoders in ``dtype``, VAE in
    bf16 on CUDA (never fp16), fp32 on the CPU."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    common = {
        "vocab_size": 49408,
        "max_position_embeddings": 77,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
    text_1 = CLIPTextConfig(**common, **(TINY_TEXT if tiny else SDXL_TEXT))
    text_2 = CLIPTextConfig(**common, **(TINY_TEXT if tiny else SDXL_TEXT_2))
    vae_dtype = torch.bfloat16 if dtype == torch.bfloat16 else torch.float32
    with torch.device(device):  # initialise on the GPU: seconds instead of minutes
        unet = UNet2DConditionModel(**(TINY_UNET if tiny else SDXL_UNET)).to(dtype)
        vae = AutoencoderKL(**(TINY_VAE if tiny else SDXL_VAE)).to(vae_dtype)
        encoder_1 = CLIPTextModel(text_1).to(dtype)
        encoder_2 = CLIPTextModelWithProjection(text_2).to(dtype)
    tokenizer_1, tokenizer_2 = tokenizers()
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": encoder_1.eval(),
        "text_encoder_2": encoder_2.eval(),
        "tokenizer": tokenizer_1,
        "tokenizer_2": tokenizer_2,
        "scheduler": EulerDiscreteScheduler(**SDXL_SCHEDULER),
    }


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int) -> tuple[float, object]:
    """Median seconds of ``repeat`` calls after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


class UNetTimer:
    """Forward hooks timing every UNet call (synchronised), i.e. every denoising step."""

    def __init__(self, unet, device: str) -> None:
        self.device, self.times, self._start = device, [], 0.0
        self.handles = [
            unet.register_forward_pre_hook(self._before),
            unet.register_forward_hook(self._after),
        ]

    def _before(self, *_):
        sync(self.device)
        self._start = time.perf_counter()

    def _after(self, *_):
        sync(self.device)
        self.times.append(time.perf_counter() - self._start)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def matmul_peak_tflops(device: str, dtype: torch.dtype, size: int) -> float:
    """Best TFLOP/s of a square bf16 matmul (2·n³ FLOPs) over 10 runs: the GPU's usable peak."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def unet_flops(pipeline, latent: int, device: str) -> int:
    """FLOPs of one UNet call with both CFG branches (batch 2) at a ``latent``² latent."""
    from torch.utils.flop_counter import FlopCounterMode

    unet = pipeline.pipe.unet
    config = unet.config
    text_dim = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    dtype = unet.dtype
    sample = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
    context = torch.randn(2, 77, config.cross_attention_dim, device=device, dtype=dtype)
    extra = {
        "text_embeds": torch.randn(2, text_dim, device=device, dtype=dtype),
        "time_ids": torch.zeros(2, 6, device=device, dtype=dtype),
    }
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        unet(sample, torch.tensor(500, device=device), context, added_cond_kwargs=extra)
    return int(counter.get_total_flops())


def peak_mb(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU (a check)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 20)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs after a warm-up")
    parser.add_argument("--out", default=None, help="JSON file (default: $OUT/gpu_sdxl.json)")
    parser.add_argument("--skip-2048", action="store_true", help="skip the tiled 2048² run")
    args = parser.parse_args(argv)

    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from restorelab.benchmark.restorers.sdxl.pipeline import (
        RestorationSettings,
        SDXLRestorationPipeline,
    )

    diffusers_logging.set_verbosity_error()  # dtype-cast and prompt-truncation notices
    transformers_logging.set_verbosity_error()
    tiny = args.tiny
    device = "cpu" if tiny or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not tiny:
        sys.exit("no CUDA GPU: run with --tiny to check the script on the CPU")
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    steps = args.steps or (2 if tiny else 20)
    repeat = args.repeat or (1 if tiny else 3)
    # the tiny VAE halves the size (SDXL's divides by 8): in both, the small image is one
    # latent tile and the big one 3 × 3 tiles
    size, big, latent_tile, stride = (64, 128, 32, 16) if tiny else (1024, 2048, 128, 64)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    info = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (tiny check)",
        "torch": torch.__version__,
        "dtype": str(dtype),
        "steps": steps,
        "size": size,
        "tiny": tiny,
    }
    print(f"building {'tiny' if tiny else 'SDXL-base-sized'} random models on {device} ...")
    started = time.perf_counter()
    parts = build_parts(tiny, device, dtype)
    info["build_s"] = round(time.perf_counter() - started, 1)
    info["unet_params_m"] = round(sum(p.numel() for p in parts["unet"].parameters()) / 1e6, 1)

    ours = SDXLRestorationPipeline.from_components(**parts)
    plain = StableDiffusionXLImg2ImgPipeline(**parts, requires_aesthetics_score=False)
    plain.scheduler = EulerDiscreteScheduler(**SDXL_SCHEDULER)
    plain.set_progress_bar_config(disable=True)
    image = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    settings = RestorationSettings.from_preset(
        "fidelity", steps=steps, strength=1.0, min_side=0, tile=latent_tile, tile_stride=stride
    )
    from PIL import Image

    pil = Image.fromarray(image)

    def run_plain():
        return plain(
            prompt="a photo",
            negative_prompt="blurry",
            image=pil,
            strength=1.0,
            num_inference_steps=steps,
            guidance_scale=settings.s_cfg,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ).images

    def run_ours(images=(image,), run_settings=settings):
        return ours(list(images), "a photo", settings=run_settings, seed=0).images

    # 1. plain diffusers vs ours, equal steps (both: VAE encode, CFG at every step, decode)
    reset_peak(device)
    info["plain_s"], _ = timed(run_plain, device, repeat)
    reset_peak(device)
    info["ours_s"], _ = timed(run_ours, device, repeat)
    info["ours_peak_mb"] = round(peak_mb(device), 1)
    info["ours_over_plain"] = round(info["ours_s"] / info["plain_s"], 3)

    # 2–3. seconds per step, UNet FLOPs, fraction of the measured bf16 matmul peak
    timer = UNetTimer(ours.pipe.unet, device)
    run_ours()
    timer.remove()
    step_s = statistics.median(timer.times)
    info["s_per_step"] = round(step_s, 4)
    flops = unet_flops(ours, size // 8, device)
    info["unet_tflop_per_step"] = round(flops / 1e12, 3)
    achieved = flops / step_s / 1e12
    peak = matmul_peak_tflops(device, dtype, 1024 if tiny else 8192)
    info["achieved_tflops"] = round(achieved, 3)
    info["matmul_peak_tflops"] = round(peak, 3)
    info["fraction_of_peak"] = round(achieved / peak, 3)

    # 5. a 2048² restore with latent tiles and tiled VAE
    if not args.skip_2048:
        big_image = (np.random.default_rng(1).random((big, big, 3)) * 255).astype(np.uint8)
        reset_peak(device)
        sync(device)
        start = time.perf_counter()
        out = run_ours((big_image,))
        sync(device)
        info["tiled_2048_s"] = round(time.perf_counter() - start, 2)
        info["tiled_2048_peak_mb"] = round(peak_mb(device), 1)
        info["tiled_2048_shape"] = list(out[0].shape)
        # the same with 3 tiles per UNet call
        stacked = dataclasses.replace(settings, tile_batch=3)
        sync(device)
        start = time.perf_counter()
        run_ours((big_image,), stacked)
        sync(device)
        info["tiled_2048_tile_batch3_s"] = round(time.perf_counter() - start, 2)

    # 6. batch-size scaling: seconds per image
    scaling = {}
    for batch in (1, 2, 4):
        seconds, _ = timed(lambda b=batch: run_ours((image,) * b), device, max(1, repeat - 1))
        scaling[batch] = round(seconds / batch, 3)
    info["s_per_image_by_batch"] = scaling

    print(json.dumps(info, indent=2))
    print(markdown(info))
    out_path = args.out or (
        os.path.join(os.environ["OUT"], "gpu_sdxl.json") if "OUT" in os.environ else None
    )
    if out_path:
        Path(out_path).write_text(json.dumps(info, indent=2) + "\n")
    return info


def markdown(info: dict) -> str:
    """The table for docs/PERFORMANCE.md."""
    rows = [
        ("device", info["device"]),
        (
            f"plain diffusers SDXL img2img, {info['steps']} steps, {info['size']}²",
            f"{info['plain_s']:.2f} s",
        ),
        (
            "ours (restoration guidance, linear CFG, colour fix), same steps",
            f"{info['ours_s']:.2f} s",
        ),
        ("ours / plain (goal ≤ 1.15)", f"{info['ours_over_plain']:.3f}"),
        ("seconds per step (UNet, both CFG branches)", f"{info['s_per_step']:.4f}"),
        ("UNet TFLOP per step", f"{info['unet_tflop_per_step']}"),
        (
            "achieved / measured bf16 matmul peak (goal ≥ 0.40)",
            f"{info['achieved_tflops']} / {info['matmul_peak_tflops']} TFLOP/s"
            f" = {info['fraction_of_peak']:.2f}",
        ),
        ("peak GPU memory, one image", f"{info['ours_peak_mb']} MiB"),
    ]
    if "tiled_2048_s" in info:
        rows.append(
            (
                "2048² tiled restore (tile 128, stride 64)",
                f"{info['tiled_2048_s']} s, {info['tiled_2048_peak_mb']} MiB peak; "
                f"{info['tiled_2048_tile_batch3_s']} s with 3 tiles per UNet call",
            )
        )
    rows.append(
        (
            "seconds per image at batch 1 / 2 / 4",
            " / ".join(str(v) for v in info["s_per_image_by_batch"].values()),
        )
    )
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


if __name__ == "__main__":
    main()
