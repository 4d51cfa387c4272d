"""The SDXL restoration pipeline: diffusers SDXL img2img (or ControlNet img2img) plus restoration
guidance, linear CFG, LoRA mixing, latent tiling and colour fix, in one readable file.

:class:`SDXLRestorationPipeline` holds a diffusers pipeline and drives it the way SUPIR's
sampler drives ``sgm``, with diffusers parts only:

1. check inputs; 2. pixels → [−1, 1], scaled so the short side reaches ``min_side`` and padded
to a multiple of 64 px; 3. encode the LQ image once (tiled VAE): z, which is both the img2img
start and the guidance target; 4. prompts: caption + SUPIR's positive suffix, SUPIR's
negative prompt; 5. the :class:`~.scheduler.RestorationEulerScheduler` with τ and churn;
6. the linear CFG schedule, set per step through ``callback_on_step_end``; 7. denoise with
the diffusers pipeline (``output_type="latent"``), its UNet wrapped in a
:class:`~.tiling.TiledUNet` when the latent is larger than one tile; 8. decode (tiled VAE),
colour fix against the LQ image, crop and resize back.

Conditioning without a ControlNet is img2img: ``strength`` sets how much of the schedule runs
from z plus noise. With a ControlNet (a tile ControlNet, or ControlNet-Union in tile mode) the
LQ image is also the control image. SUPIR's weights and its ZeroSFT adapter are not used.

Local weights only: every ``from_pretrained`` runs with ``local_files_only=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
import yaml
from diffusers import (
    StableDiffusionXLControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetUnionImg2ImgPipeline,
    StableDiffusionXLImg2ImgPipeline,
)
from PIL import Image

from restorelab.benchmark.restorers.sdxl.colour import COLOUR_FIXES, colour_fix
from restorelab.benchmark.restorers.sdxl.scheduler import RestorationEulerScheduler
from restorelab.benchmark.restorers.sdxl.tiling import TiledUNet, check_tiling
from restorelab.weights import (
    SDXL_COMPONENTS,
    MissingWeightsError,
    diffusers_folder_problem,
    hf_hub_cache,
    hf_snapshot,
)

#: Prompts and presets with their sources.
PRESETS_FILE = Path(__file__).with_name("presets.yaml")
#: Image sides are padded to a multiple of this (pixels): latents then align with tiles.
PAD_MULTIPLE = 64
#: ControlNet-Union's control type index of "tile" (xinsir/controlnet-union-sdxl-1.0 ProMax,
#: 8 types: openpose, depth, hed/scribble, canny, normal, segment, tile, repaint).
UNION_TILE_MODE = 6
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_presets() -> dict[str, Any]:
    """The data file: ``{"prompts": {...}, "presets": {name: {...}}}``."""
    return yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RestorationSettings:
    """Everything one restoration run uses besides the models and the seed.

    Units: ``steps`` of the full schedule (img2img runs ``int(steps·strength)`` of them);
    ``tile``/``tile_stride`` in latent units (8 px); ``min_side`` in pixels (0: off).
    """

    steps: int = 50
    strength: float = 0.5
    s_cfg: float = 4.0
    spt_linear_cfg: float = 1.0
    restoration_scale: float = 4.0
    s_churn: float = 5.0
    s_noise: float = 1.01
    timestep_spacing: str = "leading"
    a_prompt: str = ""
    n_prompt: str = ""
    colour_fix: str = "wavelet"
    tile: int = 128
    tile_stride: int = 64
    tile_batch: int = 1
    vae_tiling: bool = True
    controlnet_scale: float = 1.0
    min_side: int = 1024
    upscale: float = 1.0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad value."""
        if int(self.steps) < 1:
            raise ValueError(f"steps {self.steps}: need at least 1")
        if not 0 < float(self.strength) <= 1:
            raise ValueError(f"strength {self.strength}: need 0 < strength <= 1")
        if int(self.steps * self.strength) < 1:
            raise ValueError(
                f"steps {self.steps} × strength {self.strength} runs no step; raise either"
            )
        if self.colour_fix not in COLOUR_FIXES:
            raise ValueError(f"colour_fix {self.colour_fix!r}: expected one of {COLOUR_FIXES}")
        if self.timestep_spacing not in ("leading", "trailing", "linspace"):
            raise ValueError(
                f"timestep_spacing {self.timestep_spacing!r}: expected leading, trailing or "
                "linspace"
            )
        if float(self.upscale) <= 0:
            raise ValueError(f"upscale {self.upscale}: need > 0")
        if self.s_noise <= 0 or self.s_churn < 0:
            raise ValueError(f"s_churn {self.s_churn} / s_noise {self.s_noise}: need >= 0 / > 0")
        check_tiling(int(self.tile), int(self.tile_stride))
        if int(self.tile_batch) < 1:
            raise ValueError(f"tile_batch {self.tile_batch}: need >= 1")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> RestorationSettings:
        """A preset of ``presets.yaml`` with SUPIR's prompts, then ``overrides`` (None skipped)."""
        data = load_presets()
        if preset not in data["presets"]:
            raise ValueError(f"preset {preset!r}: expected one of {', '.join(data['presets'])}")
        values = {**data["prompts"], **data["presets"][preset]}
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown restoration settings {unknown}")
        return cls(**values)


def guidance_scale_at(sigma: float, sigma_max: float, s_cfg: float, spt_linear_cfg: float) -> float:
    """Linear CFG (SUPIR's ``LinearCFG``): ``spt_linear_cfg`` at σ_max, ``s_cfg`` at σ = 0.

    g(σ) = s_cfg + (spt_linear_cfg − s_cfg) · σ / σ_max
    """
    return float(s_cfg + (spt_linear_cfg - s_cfg) * float(sigma) / float(sigma_max))


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA adapter: its name, its file and its weight in the mix."""

    name: str
    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """``NAME=PATH[:WEIGHT]`` (WEIGHT after the last ``:`` when it is a number)."""
        name, eq, rest = str(text).partition("=")
        if not eq or not name.strip() or not rest.strip():
            raise ValueError(f"lora {text!r}: expected NAME=PATH[:WEIGHT]")
        path, weight = rest.strip(), 1.0
        head, colon, tail = path.rpartition(":")
        if colon and head:
            try:
                weight = float(tail)
                path = head
            except ValueError:
                pass
        return cls(name.strip(), Path(path).expanduser(), weight)


def parse_loras(value: str | Sequence[str] | Sequence[LoraSpec] | None) -> list[LoraSpec]:
    """LoRA specs from a ``+``-separated string (spec syntax), a list of strings or specs."""
    if not value:
        return []
    items = value.split("+") if isinstance(value, str) else list(value)
    specs = [s if isinstance(s, LoraSpec) else LoraSpec.parse(s) for s in items if s]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"lora names must be unique, got {names}")
    return specs


# --- local weights -------------------------------------------------------------------------
_BASE_RECIPE = (
    "on a machine with network access run `huggingface-cli download "
    "stabilityai/stable-diffusion-xl-base-1.0 --exclude '*.bin' '*.onnx*' --local-dir sdxl-base`, "
    "copy the folder here and pass it as --base (or set RESTORELAB_SDXL_BASE)"
)


def _has_weights(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir())


def resolve_base(base: str | os.PathLike) -> Path:
    """The local folder of an SDXL base: a path, or a hub id found in the local HF cache.

    Raises :class:`~restorelab.weights.MissingWeightsError` (one line: the path and how to
    get it) when the folder, its ``model_index.json`` or a component's weights are missing.
    """
    text = str(base).strip()
    if not text:
        raise MissingWeightsError(f"no SDXL base given (--base PATH). To get one: {_BASE_RECIPE}")
    path = Path(text).expanduser()
    if not path.exists() and text.count("/") == 1 and not text.startswith((".", "/", "~")):
        snapshot = hf_snapshot(text, "model_index.json")
        if snapshot is None:
            raise MissingWeightsError(
                f"SDXL base {text!r} is neither a folder nor in the local HF cache "
                f"({hf_hub_cache()}); restorelab never downloads. To get it: {_BASE_RECIPE}"
            )
        path = snapshot
    if not path.is_dir():
        raise MissingWeightsError(
            f"SDXL base not found: {path} is not a folder. To get it: {_BASE_RECIPE}"
        )
    problem = diffusers_folder_problem(path, SDXL_COMPONENTS)
    if problem:
        raise MissingWeightsError(
            f"SDXL base {path} is incomplete: {problem} (a single-file checkpoint is not "
            f"supported). To get it: {_BASE_RECIPE}"
        )
    return path


def resolve_lora(spec: LoraSpec) -> Path:
    """The ``.safetensors`` file of a LoRA (a file, or a folder holding exactly one)."""
    path = spec.path
    recipe = (
        "train one with restorelab's LoRA training or copy the diffusers-format "
        "pytorch_lora_weights.safetensors here"
    )
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if len(files) != 1:
            found = f"{len(files)} .safetensors files" if files else "no .safetensors file"
            raise MissingWeightsError(f"LoRA {spec.name!r}: {path} holds {found}; {recipe}")
        path = files[0]
    if not path.is_file():
        raise MissingWeightsError(f"LoRA {spec.name!r} not found: {path} does not exist; {recipe}")
    return path


def resolve_controlnet(path: str | os.PathLike) -> Path:
    """The local folder of an SDXL ControlNet (``config.json`` and weights)."""
    text = str(path).strip()
    folder = Path(text).expanduser()
    recipe = (
        "on a machine with network access run `huggingface-cli download "
        "xinsir/controlnet-tile-sdxl-1.0 --local-dir controlnet-tile` (or "
        "xinsir/controlnet-union-sdxl-1.0), copy the folder here and pass it as --controlnet"
    )
    if not folder.exists() and text.count("/") == 1 and not text.startswith((".", "/", "~")):
        snapshot = hf_snapshot(text, "config.json")
        if snapshot is None:
            raise MissingWeightsError(
                f"ControlNet {text!r} is neither a folder nor in the local HF cache "
                f"({hf_hub_cache()}). To get it: {recipe}"
            )
        folder = snapshot
    if not folder.is_dir():
        raise MissingWeightsError(
            f"ControlNet not found: {folder} is not a folder. To get it: {recipe}"
        )
    if not (folder / "config.json").is_file() or not _has_weights(folder):
        raise MissingWeightsError(
            f"ControlNet {folder} is incomplete: need config.json and weights. To get it: {recipe}"
        )
    return folder


def _controlnet_class(folder: Path) -> str:
    return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_class_name", "")


# --- diffusers pipelines that keep CFG on when the linear schedule needs it ------------------
class _LinearCFGMixin:
    """diffusers skips the negative branch when the guidance scale is ≤ 1, decided per step but
    with embeddings prepared once; a linear CFG that starts at 1.0 (SUPIR's fidelity setting)
    must keep both branches from the first step, so ``force_cfg`` keeps them."""

    force_cfg: bool = False

    @property
    def do_classifier_free_guidance(self) -> bool:
        if self.unet.config.time_cond_proj_dim is not None:
            return False
        return self.force_cfg or self._guidance_scale > 1


class _Img2Img(_LinearCFGMixin, StableDiffusionXLImg2ImgPipeline):
    pass


class _ControlNetImg2Img(_LinearCFGMixin, StableDiffusionXLControlNetImg2ImgPipeline):
    pass


class _UnionImg2Img(_LinearCFGMixin, StableDiffusionXLControlNetUnionImg2ImgPipeline):
    pass


@dataclass
class RestorationOutput:
    """What :meth:`SDXLRestorationPipeline.__call__` returns."""

    #: Restored RGB uint8 images (H·upscale, W·upscale, 3).
    images: list[np.ndarray]
    #: Final latents before decoding (B, 4, h, w), float32.
    latents: torch.Tensor
    #: The LQ latents z (B, 4, h, w), float32: img2img start and guidance target.
    lq_latents: torch.Tensor
    #: Guidance scale used at each denoising step.
    guidance_scales: list[float] = field(default_factory=list)
    #: σ at each denoising step (before churn).
    sigmas: list[float] = field(default_factory=list)
    #: (step, σ̂, weight) of every step the restoration guidance acted on.
    guidance_log: list[tuple[int, float, float]] = field(default_factory=list)


class SDXLRestorationPipeline:
    """SDXL + LoRA restorer on a diffusers SDXL img2img / ControlNet img2img pipeline.

    Parameters
    ----------
    pipe : StableDiffusionXLImg2ImgPipeline or StableDiffusionXLControlNetImg2ImgPipeline
        With any LoRA adapters already loaded.
    loras : list of LoraSpec
        The adapters loaded into ``pipe`` (names and default weights).
    offload : bool
        Whether ``pipe`` uses model CPU offload (the VAE is then moved by hand).
    """

    def __init__(self, pipe: Any, loras: Sequence[LoraSpec] = (), *, offload: bool = False) -> None:
        self.pipe = pipe
        self.loras = list(loras)
        self.offload = offload
        self.pipe.set_progress_bar_config(disable=True)
        self.base_scheduler_config = dict(pipe.scheduler.config)
        if self.loras:
            self.set_lora_weights({s.name: s.weight for s in self.loras})

    # --- construction --------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        base: str | os.PathLike,
        *,
        loras: str | Sequence[str] | Sequence[LoraSpec] | None = None,
        controlnet: str | os.PathLike | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        compile: bool = False,
        offload: bool = False,
    ) -> SDXLRestorationPipeline:
        """Load a local SDXL folder (or cached hub id), LoRA files and an optional ControlNet.

        ``dtype`` (``auto``: bf16 on CUDA, fp32 elsewhere) is the UNet's, text encoders' and
        ControlNet's; the VAE runs in bf16 when that is bf16 and in fp32 otherwise (never fp16,
        where SDXL's VAE overflows).
        """
        specs = parse_loras(loras)
        base_path = resolve_base(base)
        lora_files = [resolve_lora(s) for s in specs]
        control_path = resolve_controlnet(controlnet) if controlnet else None
        torch_dtype = resolve_dtype(dtype, device)
        pipe = load_local(
            _Img2Img, base_path, torch_dtype, what="SDXL base", recipe=f". {_BASE_RECIPE}"
        )
        pipe.vae.to(torch.bfloat16 if torch_dtype == torch.bfloat16 else torch.float32)
        for spec, file in zip(specs, lora_files, strict=True):
            try:
                pipe.load_lora_weights(
                    str(file.parent), weight_name=file.name, adapter_name=spec.name
                )
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ValueError(
                    f"LoRA {spec.name!r} ({file}) does not fit this SDXL base: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                ) from exc
        if control_path is not None:
            pipe = _with_controlnet(pipe, control_path, torch_dtype)
        if compile:
            pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs")
        restorer = cls(pipe, specs, offload=offload)
        restorer.to(device)
        return restorer

    @classmethod
    def from_components(
        cls, *, controlnet: Any = None, requires_aesthetics_score: bool = False, **parts: Any
    ) -> SDXLRestorationPipeline:
        """Build from in-memory parts (``vae``, ``text_encoder``, ``text_encoder_2``,
        ``tokenizer``, ``tokenizer_2``, ``unet``, ``scheduler``; optional ``controlnet``), as
        the GPU benchmark does with randomly initialised SDXL-sized models."""
        pipe = _Img2Img(**parts, requires_aesthetics_score=requires_aesthetics_score)
        if controlnet is not None:
            pipe = _ControlNetImg2Img(
                **{k: v for k, v in pipe.components.items() if k != "image_encoder"},
                controlnet=controlnet,
                requires_aesthetics_score=requires_aesthetics_score,
            )
        restorer = cls(pipe)
        restorer._device = pipe.unet.device
        return restorer

    def to(self, device: str) -> SDXLRestorationPipeline:
        """Move the models to ``device`` (with offload: hooks that move each model on use)."""
        if self.offload and str(device).startswith("cuda"):
            self.pipe.enable_model_cpu_offload(device=device)
            self._device = torch.device(device)
        else:
            self.pipe.to(device)
            self._device = torch.device(device)
        return self

    @property
    def device(self) -> torch.device:
        return getattr(self, "_device", torch.device("cpu"))

    @property
    def has_controlnet(self) -> bool:
        return getattr(self.pipe, "controlnet", None) is not None

    def set_lora_weights(self, weights: dict[str, float]) -> None:
        """Mix the loaded adapters with ``weights`` (name → weight; 0 turns one off)."""
        unknown = sorted(set(weights) - {s.name for s in self.loras})
        if unknown:
            raise ValueError(f"unknown LoRA adapter(s) {unknown}; loaded: {self.lora_names}")
        names = self.lora_names
        self.pipe.set_adapters(names, adapter_weights=[float(weights.get(n, 0.0)) for n in names])

    @property
    def lora_names(self) -> list[str]:
        return [s.name for s in self.loras]

    # --- VAE -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _vae_on_device(self):
        vae = self.pipe.vae
        if self.offload:
            vae.to(self.device)
        try:
            yield vae
        finally:
            if self.offload:
                vae.to("cpu")

    def encode(self, pixels: torch.Tensor, *, tiled: bool = True) -> torch.Tensor:
        """Latents (scaled like the pipeline's, float32) of images in [−1, 1] (B, 3, H, W).

        The posterior mean is used (deterministic: the same input gives the same z).
        """
        with self._vae_on_device() as vae, torch.no_grad():
            _set_vae_tiling(vae, tiled)
            dist = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist
            latents = dist.mean.float()
        return self._normalise(latents)

    def decode(self, latents: torch.Tensor, *, tiled: bool = True) -> torch.Tensor:
        """Images in about [−1, 1] (B, 3, H, W), float32, from scaled latents."""
        with self._vae_on_device() as vae, torch.no_grad():
            _set_vae_tiling(vae, tiled)
            latents = self._denormalise(latents).to(self.device, vae.dtype)
            return vae.decode(latents).sample.float()

    def _latent_stats(self) -> tuple[torch.Tensor | None, torch.Tensor | None, float]:
        config = self.pipe.vae.config
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, -1, 1, 1)
            std = torch.tensor(std).view(1, -1, 1, 1)
        else:
            mean = std = None
        return mean, std, float(config.scaling_factor)

    def _normalise(self, latents: torch.Tensor) -> torch.Tensor:
        mean, std, scale = self._latent_stats()
        if mean is not None:
            return (latents - mean.to(latents)) * scale / std.to(latents)
        return latents * scale

    def _denormalise(self, latents: torch.Tensor) -> torch.Tensor:
        mean, std, scale = self._latent_stats()
        if mean is not None:
            return latents * std.to(latents) / scale + mean.to(latents)
        return latents / scale

    # --- the call ------------------------------------------------------------------------
    def processing_size(self, height: int, width: int, settings: RestorationSettings):
        """(output H, W) and (processing H, W) in pixels for an input of ``height`` × ``width``.

        Output = input × ``upscale``; processing scales that up so the short side reaches
        ``min_side`` (SUPIR's ``min_size``), rounded to whole pixels.
        """
        out_h = max(1, round(height * float(settings.upscale)))
        out_w = max(1, round(width * float(settings.upscale)))
        factor = max(1.0, float(settings.min_side) / min(out_h, out_w))
        return (out_h, out_w), (round(out_h * factor), round(out_w * factor))

    def __call__(
        self,
        images: Sequence[np.ndarray],
        prompts: Sequence[str] | str = "",
        *,
        settings: RestorationSettings | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        seed: int | Sequence[int] | None = None,
    ) -> RestorationOutput:
        """Restore same-size RGB ``uint8`` images (one batch).

        Parameters
        ----------
        images : list of ndarray of uint8, shape (H, W, 3)
            Degraded images, all the same size.
        prompts : str or list of str
            Caption of each image (or one for all); SUPIR's positive suffix is appended.
        settings : RestorationSettings, optional
            Sampling settings (default: the ``fidelity`` preset).
        generator, seed
            Randomness: one CPU generator per image, or seeds to make them (default 0).

        Returns
        -------
        RestorationOutput
        """
        # 1. check inputs
        settings = settings or RestorationSettings.from_preset("fidelity")
        settings.check()
        images = [np.asarray(im) for im in images]
        if not images:
            raise ValueError("no images to restore")
        for im in images:
            if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ValueError(f"expected RGB uint8 (H, W, 3) images, got {im.dtype} {im.shape}")
        if len({im.shape for im in images}) != 1:
            raise ValueError(f"one batch needs one size, got {sorted({im.shape for im in images})}")
        batch = len(images)
        prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
        if len(prompts) != batch:
            raise ValueError(f"{len(prompts)} prompts for {batch} images")
        generators = _generators(generator, seed, batch)

        # 2. pixels: scale to the processing size, pad to a multiple of 64 px
        height, width = images[0].shape[:2]
        (out_h, out_w), (proc_h, proc_w) = self.processing_size(height, width, settings)
        lq = torch.stack([_to_tensor(_resize(im, proc_h, proc_w)) for im in images])
        pad_h, pad_w = (-proc_h) % PAD_MULTIPLE, (-proc_w) % PAD_MULTIPLE
        lq_padded = _pad(lq, pad_h, pad_w)

        # 3. encode the LQ image once: img2img start and restoration-guidance target
        z = self.encode(lq_padded, tiled=settings.vae_tiling)

        # 4. prompts
        positive = [_join_prompt(p, settings.a_prompt) for p in prompts]
        negative = [settings.n_prompt] * batch

        # 5. scheduler with restoration guidance and churn
        scheduler = RestorationEulerScheduler.from_config(
            self.base_scheduler_config,
            timestep_spacing=settings.timestep_spacing,
            restoration_scale=float(settings.restoration_scale),
            s_churn=float(settings.s_churn),
            s_noise=float(settings.s_noise),
        )
        scheduler.set_restoration_target(z)
        self.pipe.scheduler = scheduler

        # 6. linear CFG, per step through callback_on_step_end
        sigma_max = scheduler.sigma_max_for_guidance
        scales: list[float] = []
        sigmas: list[float] = []

        def scale_for_next_step(pipe, step: int, timestep, tensors: dict) -> dict:
            index = scheduler.step_index  # already advanced: the next step's σ
            if index is not None and index < len(scheduler.sigmas) - 1:
                sigma = float(scheduler.sigmas[index])
                pipe._guidance_scale = guidance_scale_at(
                    sigma, sigma_max, settings.s_cfg, settings.spt_linear_cfg
                )
                scales.append(pipe._guidance_scale)
                sigmas.append(sigma)
            return tensors

        first_sigma = _first_sigma(scheduler, settings)
        first_scale = guidance_scale_at(
            first_sigma, sigma_max, settings.s_cfg, settings.spt_linear_cfg
        )
        scales.append(first_scale)
        sigmas.append(first_sigma)
        self.pipe.force_cfg = max(settings.s_cfg, settings.spt_linear_cfg) > 1

        # 7. denoise (the UNet tiled when the latent is larger than one tile)
        kwargs: dict[str, Any] = {}
        if self.has_controlnet:
            control_image = (lq_padded + 1) / 2  # the LQ image itself, in [0, 1]
            kwargs["controlnet_conditioning_scale"] = float(settings.controlnet_scale)
            if isinstance(self.pipe, _UnionImg2Img):
                kwargs.update(control_image=[control_image], control_mode=[UNION_TILE_MODE])
            else:
                kwargs["control_image"] = control_image
        size = (proc_h + pad_h, proc_w + pad_w)
        with self._tiled_unet(settings, z.shape[-2:]):
            latents = self.pipe(
                prompt=positive,
                negative_prompt=negative,
                image=z.to(self.pipe.unet.dtype),
                strength=float(settings.strength),
                num_inference_steps=int(settings.steps),
                guidance_scale=first_scale,
                generator=generators,
                output_type="latent",
                original_size=size,
                target_size=size,
                callback_on_step_end=scale_for_next_step,
                callback_on_step_end_tensor_inputs=["latents"],
                **kwargs,
            ).images
        self.pipe.force_cfg = False
        latents = latents.float()
        guidance_log = list(scheduler.guidance_log)
        scheduler.set_restoration_target(None)

        # 8. decode, colour fix against the LQ image, crop and resize to the output size
        decoded = self.decode(latents, tiled=settings.vae_tiling)
        fixed = colour_fix(decoded, lq_padded.to(decoded), settings.colour_fix)
        fixed = fixed[..., :proc_h, :proc_w]
        out = [_resize(_to_uint8(fixed[i]), out_h, out_w) for i in range(batch)]
        return RestorationOutput(
            images=out,
            latents=latents.cpu(),
            lq_latents=z.cpu(),
            guidance_scales=scales[: len(sigmas)],
            sigmas=sigmas,
            guidance_log=guidance_log,
        )

    @contextlib.contextmanager
    def _tiled_unet(self, settings: RestorationSettings, latent_size):
        """Swap in a :class:`TiledUNet` while the latent is larger than one tile."""
        if max(latent_size) <= int(settings.tile):
            yield
            return
        unet = self.pipe.unet
        # object.__setattr__: a temporary swap, not a change of the pipeline's saved config
        object.__setattr__(
            self.pipe,
            "unet",
            TiledUNet(unet, settings.tile, settings.tile_stride, settings.tile_batch),
        )
        try:
            yield
        finally:
            object.__setattr__(self.pipe, "unet", unet)


def load_local(
    cls: Any, folder: Path, torch_dtype: torch.dtype, *, what: str, recipe: str = ""
) -> Any:
    """``cls.from_pretrained(folder)`` from local files only; a folder that does not load
    raises :class:`MissingWeightsError` naming ``what``, the folder and the first line of why,
    followed by ``recipe``."""
    try:
        return cls.from_pretrained(folder, dtype=torch_dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise MissingWeightsError(
            f"{what} {folder} could not be loaded ({type(exc).__name__}: {first_line}){recipe}"
        ) from exc


def _with_controlnet(pipe: Any, folder: Path, torch_dtype: torch.dtype) -> Any:
    """The ControlNet img2img pipeline sharing ``pipe``'s parts, for a tile or Union ControlNet."""
    from diffusers import ControlNetModel, ControlNetUnionModel

    union = _controlnet_class(folder) == "ControlNetUnionModel"
    model_cls = ControlNetUnionModel if union else ControlNetModel
    controlnet = load_local(model_cls, folder, torch_dtype, what="ControlNet")
    if union and controlnet.config.num_control_type <= UNION_TILE_MODE:
        raise ValueError(
            f"ControlNet-Union {folder} has {controlnet.config.num_control_type} control types "
            f"and no tile mode (index {UNION_TILE_MODE}); use the ProMax variant "
            "(xinsir/controlnet-union-sdxl-1.0, diffusion_pytorch_model_promax.safetensors) "
            "or a tile ControlNet"
        )
    pipe_cls = _UnionImg2Img if union else _ControlNetImg2Img
    parts = {k: v for k, v in pipe.components.items() if k not in ("image_encoder",)}
    return pipe_cls(
        **parts,
        controlnet=controlnet,
        requires_aesthetics_score=pipe.config.requires_aesthetics_score,
        force_zeros_for_empty_prompt=pipe.config.force_zeros_for_empty_prompt,
    )


def _set_vae_tiling(vae: Any, tiled: bool) -> None:
    """diffusers' tiled VAE (it only tiles images larger than its ``sample_size``)."""
    if tiled:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` → bf16 on CUDA, fp32 elsewhere; else ``fp32``/``bf16``/``fp16``."""
    key = str(dtype).lower().replace("float", "fp").replace("bfloat16", "bf16")
    key = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "bfp16": "bf16"}.get(key, key)
    if key == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if key not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected auto, fp32, bf16 or fp16")
    return DTYPES[key]


def _first_sigma(scheduler: RestorationEulerScheduler, settings: RestorationSettings) -> float:
    """σ of the first img2img step (the pipeline truncates the schedule by ``strength``)."""
    probe = RestorationEulerScheduler.from_config(scheduler.config)
    probe.set_timesteps(int(settings.steps))
    skipped = int(settings.steps) - min(
        int(int(settings.steps) * float(settings.strength)), int(settings.steps)
    )
    return float(probe.sigmas[skipped])


def _generators(generator, seed, batch: int) -> list[torch.Generator]:
    if generator is not None:
        gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
    else:
        seeds = [0] * batch if seed is None else seed
        seeds = [seeds] * batch if isinstance(seeds, int) else list(seeds)
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    if len(gens) != batch:
        raise ValueError(f"{len(gens)} generators/seeds for {batch} images")
    return gens


def _join_prompt(caption: str, suffix: str) -> str:
    caption, suffix = str(caption or "").strip(), str(suffix or "").strip()
    if caption and suffix:
        return f"{caption.rstrip('.,; ')}, {suffix}"
    return caption or suffix


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) → float32 (3, H, W) in [−1, 1]."""
    return torch.tensor(image).permute(2, 0, 1).float() / 127.5 - 1.0  # copies: PIL is read-only


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [−1, 1] → uint8 (H, W, 3), rounded and clipped."""
    array = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return array.to(torch.uint8).permute(1, 2, 0).numpy()


def _pad(batch: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect-pad (B, C, H, W) at the bottom and right (replicate when too small to reflect)."""
    if not pad_h and not pad_w:
        return batch
    mode = "reflect" if pad_h < batch.shape[-2] and pad_w < batch.shape[-1] else "replicate"
    return nnf.pad(batch, (0, pad_w, 0, pad_h), mode=mode)


__all__ = [
    "LoraSpec",
    "RestorationOutput",
    "RestorationSettings",
    "SDXLRestorationPipeline",
    "guidance_scale_at",
    "load_presets",
    "parse_loras",
    "resolve_base",
    "resolve_controlnet",
    "resolve_lora",
]
