"""Tiny random-weight SDXL parts for tests, built offline from configs and saved like real ones.

Everything here follows the layout of a real diffusers SDXL folder (``model_index.json``,
``unet/``, ``vae/``, two text encoders and tokenizers, ``scheduler/``), so the restorer's and the
trainer's real loading code runs on it. The models are about 1 M parameters: a 64×64 image
goes through 4 denoising steps in about 0.1 s on CPU.

Pitfalls (seen with diffusers 0.42 / peft 0.21):
- the base pipeline is saved before any adapter is added to its UNet: saving after writes
  ``base_layer`` keys that a reload silently re-initialises;
- a LoRA is saved with ``save_lora_weights(get_peft_model_state_dict(unet))``; ``lora_B``
  starts at zero (a no-op adapter), so the builders perturb it to make an adapter matter;
- a ControlNet's zero convolutions start at zero likewise and are perturbed.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXT_HIDDEN = 32  # each text encoder; the UNet's cross-attention width is their sum
TIME_EMBED = 8  # per SDXL time id (6 ids without aesthetics score)


def _tokenizers():
    """Two CLIP tokenizers over a byte-level vocabulary (one token per byte, no merges)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols + [s + "</w>" for s in symbols]:
        vocab[symbol] = len(vocab)
    first = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    second = CLIPTokenizer(vocab=dict(vocab), merges=[], model_max_length=77, pad_token="!")
    return first, second


def build_tiny_sdxl_pipeline(seed: int = 0):
    """A :class:`~diffusers.StableDiffusionXLImg2ImgPipeline` with random ~1 M-parameter parts."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = _tokenizers()
    text_config = CLIPTextConfig(
        vocab_size=1000,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        projection_dim=TEXT_HIDDEN,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        max_position_embeddings=77,
        hidden_act="gelu",
    )
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 1),
        cross_attention_dim=2 * TEXT_HIDDEN,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=6 * TIME_EMBED + TEXT_HIDDEN,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        sample_size=64,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(text_config),
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        requires_aesthetics_score=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_sdxl(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Build the tiny pipeline and save it as a diffusers folder; returns the folder."""
    folder = Path(folder)
    build_tiny_sdxl_pipeline(seed).save_pretrained(folder)
    return folder


def save_tiny_lora(
    base: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    seed: int = 1,
    rank: int = 4,
    scale: float = 0.05,
) -> Path:
    """A random LoRA for the tiny base's UNet attention, saved in the diffusers format.

    ``lora_B`` is drawn from N(0, ``scale``²) so the adapter changes the output.
    """
    from diffusers import StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(Path(base) / "unet", local_files_only=True)
    unet.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=rank,
            init_lora_weights="gaussian",
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    folder = Path(folder)
    StableDiffusionXLImg2ImgPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet)
    )
    return folder / "pytorch_lora_weights.safetensors"


def save_tiny_controlnet(
    base: str | os.PathLike, folder: str | os.PathLike, *, seed: int = 2, scale: float = 0.02
) -> Path:
    """A ControlNet with the tiny UNet's shapes, its zero convolutions perturbed, saved."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(Path(base) / "unet", local_files_only=True)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in controlnet.named_parameters():
            if any(k in name for k in ("zero", "controlnet_down_blocks", "controlnet_mid_block")):
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    folder = Path(folder)
    controlnet.save_pretrained(folder)
    return folder
