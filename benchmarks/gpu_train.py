"""LoRA training throughput on the real SDXL UNet architecture with random bf16 weights.

One device call measures, at 1024² (128² latents) on one GPU:

- training steps/s and images/s at batch sizes 1, 2, 4, 8, with and without gradient
  checkpointing (rank-16 LoRA on ``to_q/to_k/to_v/to_out.0``, frozen bf16 UNet, fp32 LoRA
  weights, bf16 autocast, AdamW — 8-bit from bitsandbytes when it works — exactly as
  ``restorelab train-lora`` sets them up);
- peak GPU memory of each (``torch.cuda.max_memory_allocated``);
- FLOPs of one training step counted with ``torch.utils.flop_counter.FlopCounterMode`` and
  the achieved fraction of the GPU's bf16 matmul peak, *measured in this script* (a timed
  8192³ bf16 matmul);
- the VAE encoder's time per 1024² image (what ``--cache-latents`` pays once per image);
- the projection for the issue's goal: a 2,600-image, 1,000-step rank-16 run (fits 24 GB?
  minutes on this GPU, with the VAE cache pass).

The UNet config is SDXL-base 1.0's published ``unet/config.json``
(stabilityai/stable-diffusion-xl-base-1.0); the VAE encoder's is its ``vae/config.json``.

Usage::

    python benchmarks/gpu_train.py --out results/            # on a GPU (one device call)
    python benchmarks/gpu_train.py --tiny                    # a CPU check of the script

Writes ``gpu_train.json`` and ``gpu_train.md`` (a table for docs/PERFORMANCE.md) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
from sdxl_arch import SDXL_UNET, SDXL_VAE, TINY_UNET, TINY_VAE

TEXT_DIM, POOLED_DIM = 2048, 1280


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, size: int, repeats: int) -> float:
    """Measured bf16 matmul throughput, TFLOP/s (best of ``repeats`` timed batches)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    best = 0.0
    inner = 20 if device.type == "cuda" else 2
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync(device)
        seconds = time.perf_counter() - start
        best = max(best, 2 * size**3 * inner / seconds / 1e12)
    return best


def build_unet(config: dict, device: torch.device, rank: int):
    """The UNet with random weights, frozen in bf16, plus a fp32 LoRA as train-lora adds it."""
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**config)
    unet.requires_grad_(False).to(dtype=torch.bfloat16)
    unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=rank,
            init_lora_weights="gaussian",
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    for param in unet.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    unet.train()
    return unet


def make_optimizer(params: list, device: torch.device) -> tuple[torch.optim.Optimizer, str]:
    if device.type == "cuda":
        try:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=1e-4, weight_decay=1e-2), "AdamW8bit"
        except Exception as exc:
            print(f"bitsandbytes unavailable ({exc}); torch AdamW")
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2), "AdamW"


def batch_inputs(batch: int, latent: int, text_dim: int, pooled: int, device: torch.device):
    generator = torch.Generator(device=device).manual_seed(batch)
    latents = torch.randn(batch, 4, latent, latent, device=device, generator=generator)
    embeds = torch.randn(batch, 77, text_dim, device=device, generator=generator)
    pooled_embeds = torch.randn(batch, pooled, device=device, generator=generator)
    side = latent * 8
    time_ids = torch.tensor([[side, side, 0, 0, side, side]] * batch, device=device).float()
    return latents, embeds, pooled_embeds, time_ids


def train_step(unet, optimizer, inputs, device: torch.device) -> torch.Tensor:
    """One step of the trainer's prior objective (noise prediction, MSE), bf16 autocast."""
    latents, embeds, pooled, time_ids = inputs
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, 1000, (latents.shape[0],), device=device)
    alphas = torch.linspace(0.9991, 0.0047, 1000, device=device)[timesteps].view(-1, 1, 1, 1)
    noisy = alphas.sqrt() * latents + (1 - alphas).sqrt() * noise
    with torch.autocast(device.type, dtype=torch.bfloat16):
        pred = unet(
            noisy.to(torch.bfloat16),
            timesteps,
            encoder_hidden_states=embeds.to(torch.bfloat16),
            added_cond_kwargs={
                "text_embeds": pooled.to(torch.bfloat16),
                "time_ids": time_ids.to(torch.bfloat16),
            },
            return_dict=False,
        )[0]
    loss = torch.nn.functional.mse_loss(pred.float(), noise)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in unet.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def count_flops(unet, optimizer, inputs, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        train_step(unet, optimizer, inputs, device)
    return float(counter.get_total_flops())


def measure(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    tiny = args.tiny
    unet_config = TINY_UNET if tiny else SDXL_UNET
    text_dim, pooled_dim = (64, 32) if tiny else (TEXT_DIM, POOLED_DIM)
    latent = 16 if tiny else args.resolution // 8
    peak = matmul_peak(device, 512 if tiny else 8192, 3 if tiny else 10)
    print(f"bf16 matmul peak measured: {peak:.1f} TFLOP/s")
    unet = build_unet(unet_config, device, args.rank)
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer, optimizer_name = make_optimizer(params, device)
    info = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "tiny": tiny,
        "resolution": latent * 8,
        "rank": args.rank,
        "unet_parameters": sum(p.numel() for p in unet.parameters()),
        "lora_parameters": sum(p.numel() for p in params),
        "optimizer": optimizer_name,
        "bf16_matmul_peak_tflops": round(peak, 2),
        "rows": [],
    }
    unet_b, lora_m = info["unet_parameters"] / 1e9, info["lora_parameters"] / 1e6
    print(f"UNet {unet_b:.3f} B parameters, LoRA {lora_m:.2f} M")
    for checkpointing in (False, True):
        if checkpointing:
            unet.enable_gradient_checkpointing()
        else:
            unet.disable_gradient_checkpointing()
        for batch in args.batch_sizes:
            row = {"batch": batch, "gradient_checkpointing": checkpointing}
            try:
                inputs = batch_inputs(batch, latent, text_dim, pooled_dim, device)
                for _ in range(args.warmup):
                    train_step(unet, optimizer, inputs, device)
                sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
                for _ in range(args.steps):
                    loss = train_step(unet, optimizer, inputs, device)
                sync(device)
                seconds = (time.perf_counter() - start) / args.steps
                flops = count_flops(unet, optimizer, inputs, device)
                row.update(
                    seconds_per_step=round(seconds, 4),
                    steps_per_s=round(1 / seconds, 3),
                    images_per_s=round(batch / seconds, 2),
                    tflop_per_step=round(flops / 1e12, 3),
                    achieved_tflops=round(flops / seconds / 1e12, 2),
                    fraction_of_peak=round(flops / seconds / 1e12 / peak, 3),
                    loss=round(float(loss), 4),
                )
                if device.type == "cuda":
                    row["peak_memory_gb"] = round(
                        torch.cuda.max_memory_allocated(device) / 2**30, 2
                    )
            except torch.cuda.OutOfMemoryError:
                row["error"] = "out of memory"
            finally:
                optimizer.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            print(json.dumps(row))
            info["rows"].append(row)
    del unet, optimizer, params
    if device.type == "cuda":
        torch.cuda.empty_cache()
    info["vae_encode_seconds_per_image"] = vae_encode_time(device, tiny, args.resolution)
    info["goal"] = goal(info, args)
    return info


def vae_encode_time(device: torch.device, tiny: bool, resolution: int) -> float:
    """Seconds to encode one image with the VAE (bf16), as the latent cache pass does."""
    from diffusers import AutoencoderKL

    with torch.device(device):
        vae = AutoencoderKL(**(TINY_VAE if tiny else SDXL_VAE))
    vae.requires_grad_(False).to(dtype=torch.bfloat16).eval()
    side = 64 if tiny else resolution
    image = torch.rand(1, 3, side, side, device=device, dtype=torch.bfloat16) * 2 - 1
    with torch.no_grad():
        for _ in range(2):
            vae.encode(image)
        sync(device)
        start = time.perf_counter()
        repeats = 2 if tiny else 10
        for _ in range(repeats):
            vae.encode(image).latent_dist.sample()
        sync(device)
    seconds = (time.perf_counter() - start) / repeats
    print(f"VAE encode {side}²: {seconds * 1000:.1f} ms / image")
    return round(seconds, 4)


def goal(info: dict, args: argparse.Namespace) -> dict:
    """The issue's goal: 2,600 images, 1,000 steps, rank 16 in 24 GB and 30 minutes."""
    if not any("peak_memory_gb" in r for r in info["rows"]):
        return {"note": "not evaluated: no GPU memory measured (CPU check)"}
    fits = [r for r in info["rows"] if "error" not in r and r["peak_memory_gb"] <= 24]
    if not fits:
        return {"fits_24gb": False}
    best = max(fits, key=lambda r: r["images_per_s"])
    cache_minutes = 2600 * info["vae_encode_seconds_per_image"] / 60
    train_minutes = 1000 * best["seconds_per_step"] / 60
    return {
        "fits_24gb": True,
        "config": {
            "batch": best["batch"],
            "gradient_checkpointing": best["gradient_checkpointing"],
        },
        "peak_memory_gb": best.get("peak_memory_gb"),
        "images_seen": 1000 * best["batch"],
        "epochs_of_2600": round(1000 * best["batch"] / 2600, 2),
        "cache_pass_minutes": round(cache_minutes, 2),
        "training_minutes": round(train_minutes, 2),
        "total_minutes": round(cache_minutes + train_minutes, 2),
        "under_30_minutes": cache_minutes + train_minutes < 30,
    }


def markdown(info: dict) -> str:
    unet_b, lora_m = info["unet_parameters"] / 1e9, info["lora_parameters"] / 1e6
    lines = [
        f"LoRA training, SDXL UNet architecture ({unet_b:.3f} B "
        f"parameters, random bf16 weights), rank {info['rank']} ({lora_m:.2f} M "
        f"trainable, fp32), {info['resolution']}², optimizer {info['optimizer']}, on "
        f"**{info['device']}** (torch {info['torch']}); bf16 matmul peak measured "
        f"{info['bf16_matmul_peak_tflops']} TFLOP/s.",
        "",
        "| batch | grad. ckpt | s/step | steps/s | images/s | peak GB | TFLOP/step "
        "| % of bf16 peak |",
        "|---:|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in info["rows"]:
        ckpt = "yes" if row["gradient_checkpointing"] else "no"
        if "error" in row:
            lines.append(f"| {row['batch']} | {ckpt} | {row['error']} | | | | | |")
            continue
        lines.append(
            f"| {row['batch']} | {ckpt} | {row['seconds_per_step']:.3f} | {row['steps_per_s']:.2f} "
            f"| {row['images_per_s']:.2f} | {row.get('peak_memory_gb', float('nan'))} "
            f"| {row['tflop_per_step']:.3g} | {100 * row['fraction_of_peak']:.0f} % |"
        )
    lines.append("")
    vae_ms = info["vae_encode_seconds_per_image"] * 1000
    lines.append(
        f"VAE encode (latent cache pass, bf16): {vae_ms:.0f} ms / image. Text encoders are not "
        "timed (cached with the latents; about 1 % of a step without the cache)."
    )
    g = info["goal"]
    if "note" in g:
        lines.append(f"Goal: {g['note']}.")
    elif g.get("fits_24gb"):
        lines.append(
            f"Goal (2,600 images, 1,000 steps, rank 16, ≤ 24 GB, < 30 min): best fitting set-up "
            f"batch {g['config']['batch']}, checkpointing {g['config']['gradient_checkpointing']}, "
            f"{g['peak_memory_gb']} GB, {g['training_minutes']} min training + "
            f"{g['cache_pass_minutes']} min cache pass = {g['total_minutes']} min "
            f"({'met' if g['under_30_minutes'] else 'not met'})."
        )
    else:
        lines.append("Goal: no measured set-up fits in 24 GB.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiny", action="store_true", help="Tiny model: a CPU check of the script."
    )
    parser.add_argument("--device", default=None, help="Default: cuda when present, else cpu.")
    parser.add_argument("--batch-sizes", default=None, help="Default 1,2,4,8 (tiny: 1,2).")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="Timed steps (default 6; tiny 2).")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=os.environ.get("OUT", "."), help="Output folder.")
    args = parser.parse_args()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cpu" and not args.tiny:
        parser.error("the full-size measurement needs a GPU; use --tiny for a CPU check")
    default_batches = "1,2" if args.tiny else "1,2,4,8"
    args.batch_sizes = [int(b) for b in (args.batch_sizes or default_batches).split(",")]
    args.steps = args.steps or (2 if args.tiny else 6)
    if args.tiny:
        args.warmup = 1
    info = measure(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_train.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    (out / "gpu_train.md").write_text(markdown(info), encoding="utf-8")
    print(markdown(info))
    assert all(math.isfinite(r["loss"]) for r in info["rows"] if "loss" in r)


if __name__ == "__main__":
    main()
