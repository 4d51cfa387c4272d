"""Loading the SDXL parts for training from local folders, and SDXL prompt encoding.

Weights are never downloaded: ``base`` is a diffusers SDXL folder (or a hub id found in the
local Hugging Face cache); a missing or incomplete folder raises
:class:`~restorelab.weights.MissingWeightsError` with one line naming the path and how to get
the files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restorelab.weights import WEIGHTS, MissingWeightsError, find_weights, hf_snapshot

__all__ = [
    "SDXLParts",
    "encode_prompts",
    "load_sdxl_parts",
    "resolve_base",
    "resolve_controlnet",
]

#: What a diffusers SDXL folder must hold for training (``tokenizer*`` are folders).
BASE_PARTS = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "tokenizer",
    "tokenizer_2",
    "scheduler/scheduler_config.json",
)


def resolve_base(base: str | os.PathLike | None) -> Path:
    """The local SDXL folder for ``base`` (a folder, a hub id in the HF cache, or None).

    None uses ``$RESTORELAB_SDXL_BASE`` or the cached ``stabilityai/stable-diffusion-xl-base-1.0``.

    Raises
    ------
    MissingWeightsError
        One line: the path looked at, what is missing, and how to get it.
    """
    how = WEIGHTS["sdxl-base"].how_to_get
    if base is None:
        found = find_weights("sdxl-base")
        if found is None:
            raise MissingWeightsError(
                f"no SDXL base given and none found (looked for {WEIGHTS['sdxl-base'].expected})"
                f"; pass --base PATH. To get it: {how}"
            )
        base = found
    path = Path(base).expanduser()
    if not path.exists() and "/" in str(base) and not str(base).startswith((".", "/", "~")):
        cached = hf_snapshot(str(base), "model_index.json")
        if cached is not None:
            path = cached
    if not path.is_dir():
        raise MissingWeightsError(f"SDXL base not found: {path} does not exist. To get it: {how}")
    missing = [part for part in BASE_PARTS if not (path / part).exists()]
    if missing:
        raise MissingWeightsError(
            f"SDXL base incomplete: {path} lacks {', '.join(missing)}. To get it: {how}"
        )
    return path


def resolve_controlnet(path: str | os.PathLike) -> Path:
    """A local diffusers ControlNet folder (``config.json`` + weights) or a one-line error."""
    folder = Path(path).expanduser()
    how = (
        "save one with ControlNetModel.save_pretrained, or on a machine with network access "
        "`huggingface-cli download REPO --local-dir DIR` (e.g. a tile ControlNet for SDXL) and "
        "copy DIR here"
    )
    if not (folder / "config.json").is_file():
        raise MissingWeightsError(f"ControlNet not found: {folder}/config.json missing. {how}")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise MissingWeightsError(f"ControlNet incomplete: {folder} has no weights file. {how}")
    return folder


def folder_identity(folder: Path, *subfolders: str) -> str:
    """A short hash of the configs and weight files' sizes and mtimes under ``folder``."""
    digest = hashlib.sha256()
    for sub in subfolders or ("",):
        root = folder / sub
        for path in sorted(root.glob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{sub}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class SDXLParts:
    """The SDXL components a training run uses (all frozen when loaded)."""

    unet: Any
    vae: Any
    text_encoder: Any
    text_encoder_2: Any
    tokenizer: Any
    tokenizer_2: Any
    noise_scheduler: Any
    base: Path


def load_sdxl_parts(base: Path) -> SDXLParts:
    """Load the UNet, VAE, both text encoders and tokenizers (fp32, frozen) and a DDPM
    noise schedule built from the base's scheduler config."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

    kwargs = {"local_files_only": True}
    scheduler_config = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    keep = set(DDPMScheduler.__init__.__code__.co_varnames)
    noise_scheduler = DDPMScheduler.from_config(
        {k: v for k, v in scheduler_config.items() if k in keep}
    )
    parts = SDXLParts(
        unet=UNet2DConditionModel.from_pretrained(base, subfolder="unet", **kwargs),
        vae=AutoencoderKL.from_pretrained(base, subfolder="vae", **kwargs),
        text_encoder=CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **kwargs),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(
            base, subfolder="text_encoder_2", **kwargs
        ),
        tokenizer=AutoTokenizer.from_pretrained(base, subfolder="tokenizer", **kwargs),
        tokenizer_2=AutoTokenizer.from_pretrained(base, subfolder="tokenizer_2", **kwargs),
        noise_scheduler=noise_scheduler,
        base=base,
    )
    for model in (parts.unet, parts.vae, parts.text_encoder, parts.text_encoder_2):
        model.requires_grad_(False)
    return parts


def encode_prompts(
    captions: list[str],
    tokenizers: tuple[Any, Any],
    text_encoders: tuple[Any, Any],
    device: Any = None,
) -> tuple[Any, Any]:
    """SDXL prompt embeddings: (B, 77, C1 + C2) penultimate hidden states of both CLIP text
    encoders, and (B, C2) pooled projection of the second (as diffusers' SDXL pipelines).

    ``text_encoders`` may be wrapped (DDP); ``device`` then says where the tokens go."""
    import torch

    hidden, pooled = [], None
    for tokenizer, encoder in zip(tokenizers, text_encoders, strict=True):
        ids = tokenizer(
            captions,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device if device is not None else encoder.device)
        out = encoder(ids, output_hidden_states=True)
        pooled = out[0]
        hidden.append(out.hidden_states[-2])
    return torch.cat(hidden, dim=-1), pooled
