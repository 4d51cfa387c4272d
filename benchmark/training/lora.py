"""LoRA fine-tuning of SDXL on a curated corpus (diffusers + peft, run by accelerate).

:func:`train_lora` is the entry point behind ``restorelab train-lora``; one process on the CPU
for tests, one per GPU under ``accelerate launch -m restorelab train-lora ...``.

What trains
-----------
A peft ``LoraConfig`` adapter on the UNet's attention projections (``to_q``, ``to_k``,
``to_v``, ``to_out.0`` by default; ``lora_alpha`` = rank, so the adapter's scale is 1), and
optionally on both CLIP text encoders (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``) and
as DoRA. Everything else is frozen and held in the mixed-precision dtype (bf16/fp16); the
trainable LoRA weights stay fp32 and the optimizer (AdamW, 8-bit from bitsandbytes on CUDA)
updates them in fp32. The VAE is never run in fp16 (SDXL's VAE overflows there): fp32 unless
the run is bf16.

Objectives
----------
``prior`` (the default, the method's recipe): the standard text-to-image loss on clean images
and their captions, noise (or v) prediction per the base's scheduler config:
``loss = || f(x_t, t, caption, time_ids) - target ||²``, ``x_t = a_t x_0 + s_t ε``.

``restore``: the same loss on the clean target, with the UNet additionally conditioned on a
low-quality version of the image through a ControlNet (``controlnet``, the one the ``sdxl``
restorer is run with). The LQ image is made on the fly by the degradation zoo (see
:mod:`.lq`). **The ControlNet is frozen** (weights in the mixed-precision dtype); only the LoRA
trains, so the output stays one LoRA file that the restorer loads beside that same
ControlNet, and a LoRA trained this way learns to use that ControlNet's residuals.

Checkpoints and resume
----------------------
Every ``checkpoint_every`` optimizer steps, ``accelerator.save_state`` writes
``checkpoints/step-NNNNNN`` (LoRA weights only, optimizer, LR scheduler, RNG states and the
trainer's own state: step, loss history, time). ``resume`` loads the newest complete one; data
order, crops, noise, timesteps and LQ seeds are functions of ``(seed, step)``, so a resumed run
continues the same loss curve.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restorelab.results import write_json_atomic

from .data import BucketBatchSampler, Selection, TrainingDataset, collate, select_examples
from .models import encode_prompts, folder_identity, load_sdxl_parts, resolve_base

__all__ = ["TrainConfig", "TrainResult", "latest_checkpoint", "train_lora"]

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
LORA_FILE = "pytorch_lora_weights.safetensors"
CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
#: Options that may change when a run is resumed (everything else must match).
RESUMABLE_CHANGES = {
    "steps",
    "resume",
    "checkpoint_every",
    "keep_checkpoints",
    "sample_every",
    "sample_prompts",
    "sample_steps",
    "num_workers",
    "cache_dir",
}


@dataclass
class TrainConfig:
    """Options of one LoRA training run (the CLI's options, one for one).

    Units: ``resolution`` in pixels (area of the buckets ≈ resolution²), ``steps`` in
    optimizer steps (each ``batch_size × grad_accum × processes`` images), ``lr`` per step.
    """

    corpus: str
    out: str
    base: str | None = None
    subset: str | None = None
    objective: str = "prior"
    rank: int = 16
    alpha: float | None = None
    targets: list[str] = field(default_factory=lambda: list(UNET_TARGETS))
    text_encoder_lora: bool = False
    dora: bool = False
    steps: int = 1000
    batch_size: int = 1
    grad_accum: int = 1
    lr: float = 1e-4
    text_encoder_lr: float | None = None
    lr_warmup: int = 0
    max_grad_norm: float = 1.0
    resolution: int = 1024
    buckets: bool = True
    center_crop: bool = False
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False
    use_8bit_adam: bool | None = None
    seed: int = 0
    resume: bool = False
    allow_empty_captions: bool = False
    cache_latents: bool = False
    cache_dir: str | None = None
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    sample_every: int = 0
    sample_prompts: list[str] = field(default_factory=list)
    sample_steps: int = 20
    controlnet: str | None = None
    controlnet_scale: float = 1.0
    lq_grid: str = "realesrgan"
    noise_offset: float = 0.0
    snr_gamma: float | None = None
    caption_dropout: float = 0.0
    num_workers: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        if self.objective not in ("prior", "restore"):
            raise ValueError(f"objective must be prior or restore, got {self.objective!r}")
        if self.objective == "restore" and not self.controlnet:
            raise ValueError(
                "the restore objective conditions on the LQ image through a ControlNet: "
                "pass --controlnet PATH (the one the sdxl restorer runs with)"
            )
        if self.mixed_precision not in ("auto", "bf16", "fp16", "no"):
            raise ValueError(
                f"mixed precision must be auto, bf16, fp16 or no, got {self.mixed_precision!r}"
            )
        for name in ("rank", "steps", "batch_size", "grad_accum", "resolution"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8 px, got {self.resolution}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.checkpoint_every < 0 or self.sample_every < 0:
            raise ValueError("checkpoint_every and sample_every must be >= 0 (0: off)")
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        if not self.targets:
            raise ValueError("give at least one LoRA target module")
        if self.cache_latents and self.text_encoder_lora:
            raise ValueError(
                "--cache-latents caches the text embeddings too, which a text-encoder LoRA "
                "changes: use one or the other"
            )


@dataclass
class TrainResult:
    """What a run wrote."""

    out: Path
    lora: Path
    step: int
    loss_history: list[tuple[int, float]]
    seconds: float
    resumed_from: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _State:
    """The trainer's own part of a checkpoint (saved by accelerate as a custom object)."""

    step: int = 0
    loss_history: list = field(default_factory=list)
    seconds: float = 0.0

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.loss_history = [tuple(x) for x in state["loss_history"]]
        self.seconds = float(state["seconds"])


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run (one with its trainer state)."""
    folder = Path(out) / CHECKPOINTS
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("step-*") if (p / TRAINER_STATE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def _mixed_precision(requested: str) -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def _seed_int(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _options_hash(config: TrainConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE_CHANGES}


class _Cache:
    """Latents (VAE posterior mean and std) and text embeddings on disk, keyed by content."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "latents").mkdir(parents=True, exist_ok=True)
        (folder / "text").mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]

    def latent_path(self, key: str) -> Path:
        return self.folder / "latents" / f"{key}.pt"

    def text_path(self, key: str) -> Path:
        return self.folder / "text" / f"{key}.pt"

    @staticmethod
    def save(path: Path, tensors: dict) -> None:
        import torch

        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(tensors, tmp)
        os.replace(tmp, path)


def _plot_loss(history: list[tuple[int, float]], path: Path, title: str) -> Path | None:
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([s for s, _ in history], dtype=float)
    losses = np.array([v for _, v in history], dtype=float)
    smooth = np.empty_like(losses)
    beta, acc = 0.9, losses[0]
    for i, value in enumerate(losses):
        acc = beta * acc + (1 - beta) * value if i else value
        smooth[i] = acc
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.plot(steps, losses, lw=0.8, alpha=0.45, label="loss per step")
    ax.plot(steps, smooth, lw=1.6, label="EMA (0.9)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("diffusion loss (MSE)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _versions() -> dict:
    import accelerate
    import diffusers
    import peft
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "python": sys.version.split()[0],
    }


def train_lora(
    config: TrainConfig,
    *,
    progress: bool = True,
    on_batch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train a LoRA for SDXL on a corpus; see the module docstring.

    Parameters
    ----------
    config : TrainConfig
        The run's options.
    progress : bool
        Show a tqdm bar (loss, learning rate, ETA) on stderr on the main process.
    on_batch : callable, optional
        Called with a dict (``step``, ``pixels``, ``lq``, ``lq_cells``, ``captions``,
        ``time_ids``) for every micro-batch, before the forward pass: for tests and
        inspection.

    Returns
    -------
    TrainResult

    Raises
    ------
    MissingWeightsError
        Base or ControlNet missing (one line naming the path and how to get it).
    ValueError
        Bad options, a subset that selects nothing, images without captions, or a resume
        whose options differ from the checkpoint's.
    """

    config.check()
    base = resolve_base(config.base)
    controlnet_path = None
    if config.objective == "restore":
        from .models import resolve_controlnet

        controlnet_path = resolve_controlnet(config.controlnet)
    selection = select_examples(
        config.corpus, config.subset, allow_empty_captions=config.allow_empty_captions
    )
    out = Path(config.out)
    existing = latest_checkpoint(out)
    if existing is not None and not config.resume:
        raise ValueError(
            f"{out} already holds checkpoints of a run (newest {existing.name}); pass --resume "
            "to continue it, or choose another --out"
        )
    if config.resume and existing is not None:
        saved = json.loads((existing / TRAINER_STATE).read_text(encoding="utf-8"))
        _check_resume(saved, config, selection)

    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import ProjectConfiguration

    # accelerate keeps its settings in process-wide singletons; one process may train several
    # adapters (the recipe, tests) with other precision or accumulation: start from a clean
    # state (the distributed set-up, PartialState, is kept)
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    # several processes without a GPU (torchrun on a CPU machine, tests): gloo on the CPU
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=multi_cpu,
        mixed_precision=_mixed_precision(config.mixed_precision),
        gradient_accumulation_steps=config.grad_accum,
        project_config=ProjectConfiguration(project_dir=str(out)),
    )
    trainer = _Trainer(config, accelerator, base, controlnet_path, selection, on_batch)
    return trainer.run(existing if config.resume else None, progress=progress)


def _check_resume(saved: dict, config: TrainConfig, selection: Selection) -> None:
    if saved.get("corpus_fingerprint") != selection.fingerprint:
        raise ValueError(
            "cannot resume: the selected images or captions changed since the checkpoint "
            f"(fingerprint {saved.get('corpus_fingerprint')} then, {selection.fingerprint} now)"
        )
    before = saved.get("options", {})
    now = _options_hash(config)
    changed = sorted(
        k
        for k in set(before) | set(now)
        if k not in ("corpus", "out", "base", "controlnet") and before.get(k) != now.get(k)
    )
    if changed:
        detail = ", ".join(f"{k}: {before.get(k)!r} → {now.get(k)!r}" for k in changed)
        raise ValueError(f"cannot resume with other options ({detail}); use a new --out")


class _Trainer:
    def __init__(
        self,
        config: TrainConfig,
        accelerator: Any,
        base: Path,
        controlnet_path: Path | None,
        selection: Selection,
        on_batch: Callable[[dict], None] | None,
    ) -> None:
        import torch

        self.config = config
        self.accelerator = accelerator
        self.selection = selection
        self.on_batch = on_batch
        self.out = Path(config.out)
        self.notes: list[str] = []
        self.main = accelerator.is_main_process
        self.device = accelerator.device
        self.weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            accelerator.mixed_precision, torch.float32
        )
        parts = load_sdxl_parts(base)
        self.parts = parts
        self.base = base
        self.unet = parts.unet
        self.vae_dtype = torch.bfloat16 if self.weight_dtype == torch.bfloat16 else torch.float32
        for model, dtype in (
            (parts.vae, self.vae_dtype),
            (parts.text_encoder, self.weight_dtype),
            (parts.text_encoder_2, self.weight_dtype),
            (self.unet, self.weight_dtype),
        ):
            model.to(self.device) if model.dtype == dtype else model.to(self.device, dtype=dtype)
        from accelerate.utils import set_seed

        set_seed(config.seed)  # the LoRA's initial weights come from the global generators
        self.controlnet = None
        self.grid = None
        if controlnet_path is not None:
            from diffusers import ControlNetModel

            from restorelab.degradations.grid import load_grid

            self.controlnet = ControlNetModel.from_pretrained(
                controlnet_path, local_files_only=True
            )
            self.controlnet.requires_grad_(False).to(self.device, dtype=self.weight_dtype)
            self.controlnet.eval()
            self.grid = load_grid(config.lq_grid)
        self.trained = self._add_adapters()
        self.dataset = TrainingDataset(
            selection.examples,
            resolution=config.resolution,
            buckets=config.buckets,
            center_crop=config.center_crop,
            seed=config.seed,
            fixed_crops=config.cache_latents,
            # with cached latents only the restore objective needs the pixels (for its LQ)
            load_pixels=not config.cache_latents or config.objective == "restore",
        )
        if self.dataset.skipped:
            shown = "; ".join(f"{k} ({r})" for k, r in self.dataset.skipped[:5])
            self.notes.append(f"{len(self.dataset.skipped)} images do not open, left out: {shown}")
        if self.controlnet is not None:
            from restorelab.degradations.base import MIN_SIDE

            small = min(min(t) for t in self.dataset.targets)
            if small < MIN_SIDE:
                raise ValueError(
                    f"the restore objective degrades crops, which need at least {MIN_SIDE} px a "
                    f"side; resolution {config.resolution} makes {small} px crops: raise "
                    "--resolution (or pass --no-buckets)"
                )
        self.sampler = BucketBatchSampler(self.dataset.targets, config.batch_size, config.seed)
        self.per_epoch = len(self.sampler) // accelerator.num_processes
        if self.per_epoch < 1:
            raise ValueError(
                f"{len(self.dataset)} images make {len(self.sampler)} batches, fewer than the "
                f"{accelerator.num_processes} processes"
            )
        self.cache = None
        if config.cache_latents:
            self.cache = _Cache(Path(config.cache_dir) if config.cache_dir else self.out / "cache")
        self.state = _State()
        self.text_encoders: tuple[Any, Any] | None = None
        self._keys: dict[int, str] = {}
        self._vae_id: str | None = None
        self._text_id: str | None = None

    # -- model set-up ------------------------------------------------------------------------

    def _lora_config(self, targets: list[str] | tuple[str, ...], **extra: Any) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.config.rank,
            lora_alpha=self.config.alpha or self.config.rank,
            init_lora_weights="gaussian",
            target_modules=list(targets),
            use_dora=self.config.dora,
            **extra,
        )

    def _add_adapters(self) -> list[Any]:
        import torch

        config = self.config
        try:
            self.unet.add_adapter(self._lora_config(config.targets))
        except ValueError as exc:
            raise ValueError(f"LoRA targets {config.targets} do not fit the UNet: {exc}") from None
        trained = [self.unet]
        if config.text_encoder_lora:
            from peft import inject_adapter_in_model

            for encoder in (self.parts.text_encoder, self.parts.text_encoder_2):
                # SDXL reads the first encoder's penultimate layer: its last layer gets no
                # gradient, so no LoRA there (DDP also refuses parameters without gradients)
                extra = {}
                if encoder is self.parts.text_encoder:
                    layers = encoder.config.num_hidden_layers
                    extra = {
                        "layers_to_transform": list(range(layers - 1)),
                        "layers_pattern": "layers",
                    }
                # peft directly: transformers' own add_adapter wants a newer peft than 0.21
                lora_config = self._lora_config(TEXT_ENCODER_TARGETS, **extra)
                inject_adapter_in_model(lora_config, encoder, adapter_name="default")
                encoder.peft_config = {"default": lora_config}
                trained.append(encoder)
        for model in trained:
            for param in model.parameters():
                if param.requires_grad:
                    param.data = param.data.to(torch.float32)
            if config.gradient_checkpointing:
                if model is self.unet:
                    model.enable_gradient_checkpointing()
                elif hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
                    model.activation_checkpointing_enable()
                else:
                    model.gradient_checkpointing_enable()
            model.train()
        return trained

    def _optimizer(self) -> Any:
        import torch

        config = self.config
        groups = [{"params": [p for p in self.unet.parameters() if p.requires_grad]}]
        if config.text_encoder_lora:
            params = [
                p for encoder in self.trained[1:] for p in encoder.parameters() if p.requires_grad
            ]
            groups.append({"params": params, "lr": config.text_encoder_lr or config.lr})
        want_8bit = config.use_8bit_adam
        if want_8bit is not False and self.device.type == "cuda":
            try:
                import bitsandbytes as bnb

                self.optimizer_name = "bitsandbytes.optim.AdamW8bit"
                return bnb.optim.AdamW8bit(groups, lr=config.lr, weight_decay=1e-2)
            except Exception as exc:  # bitsandbytes missing or broken: plain AdamW
                self.notes.append(f"8-bit Adam unavailable ({type(exc).__name__}: {exc}); AdamW")
        elif want_8bit:
            self.notes.append(
                f"8-bit Adam needs bitsandbytes on a CUDA device (device here: "
                f"{self.device.type}); using torch.optim.AdamW"
            )
        self.optimizer_name = "torch.optim.AdamW"
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=1e-2)

    # -- checkpoint hooks ----------------------------------------------------------------------

    def _register_hooks(self) -> None:
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
        from safetensors.torch import load_file, save_file

        accelerator = self.accelerator

        def save_hook(models: list, weights: list, output_dir: str) -> None:
            if accelerator.is_main_process:
                for i, model in enumerate(models):
                    state = get_peft_model_state_dict(accelerator.unwrap_model(model))
                    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
                    save_file(state, os.path.join(output_dir, f"lora_{i}.safetensors"))
            weights.clear()

        def load_hook(models: list, input_dir: str) -> None:
            for i, model in enumerate(models):
                state = load_file(os.path.join(input_dir, f"lora_{i}.safetensors"))
                result = set_peft_model_state_dict(accelerator.unwrap_model(model), state)
                if getattr(result, "unexpected_keys", None):
                    raise ValueError(
                        f"{input_dir}: LoRA checkpoint does not fit: {result.unexpected_keys[:3]}"
                    )
            models.clear()

        accelerator.register_save_state_pre_hook(save_hook)
        accelerator.register_load_state_pre_hook(load_hook)

    # -- caches ------------------------------------------------------------------------------

    def _latent_key(self, index: int) -> str:
        """Cache key of image ``index``'s latent: the file, its crop and the VAE (memoised)."""
        if index not in self._keys:
            if self._vae_id is None:
                self._vae_id = folder_identity(self.base, "vae")
            example = self.dataset.examples[index]
            size, crop = self.dataset.crop_of(0, index)
            stat = example.path.stat()
            self._keys[index] = _Cache.key(
                example.key,
                example.row.get("sha256", ""),
                stat.st_size,
                stat.st_mtime_ns,
                size,
                crop,
                self.dataset.targets[index],
                self._vae_id,
                self.vae_dtype,
            )
        return self._keys[index]

    def _text_key(self, caption: str) -> str:
        if self._text_id is None:
            self._text_id = folder_identity(self.base, "text_encoder", "text_encoder_2")
        return _Cache.key(caption, self._text_id, self.weight_dtype)

    def _fill_cache(self, progress: bool) -> None:
        import torch

        from restorelab.progress import tqdm

        accelerator, cache = self.accelerator, self.cache
        rank, world = accelerator.process_index, accelerator.num_processes
        indices = [i for i in range(len(self.dataset)) if i % world == rank]
        todo = [i for i in indices if not cache.latent_path(self._latent_key(i)).is_file()]
        captions = sorted({e.caption for e in self.dataset.examples} | {""})
        texts = [c for i, c in enumerate(captions) if i % world == rank]
        texts = [c for c in texts if not cache.text_path(self._text_key(c)).is_file()]
        bar = tqdm(
            total=len(todo) + len(texts),
            desc="cache latents+text",
            unit="item",
            disable=not (progress and self.main),
            file=sys.stderr,
        )
        with torch.no_grad():
            for index in todo:
                item = self.dataset.item(0, index, load_pixels=True)
                pixels = item["pixels"][None].to(self.device, dtype=self.vae_dtype) * 2 - 1
                dist = self.parts.vae.encode(pixels).latent_dist
                cache.save(
                    cache.latent_path(self._latent_key(index)),
                    {"mean": dist.mean[0].cpu(), "std": dist.std[0].cpu()},
                )
                bar.update()
            for caption in texts:
                embeds, pooled = self._encode_text([caption])
                cache.save(
                    cache.text_path(self._text_key(caption)),
                    {"embeds": embeds[0].cpu(), "pooled": pooled[0].cpu()},
                )
                bar.update()
        bar.close()
        accelerator.wait_for_everyone()

    # -- one step ------------------------------------------------------------------------------

    def _encode_text(self, captions: list[str]) -> tuple[Any, Any]:
        parts = self.parts
        encoders = self.text_encoders or (parts.text_encoder, parts.text_encoder_2)
        return encode_prompts(
            captions, (parts.tokenizer, parts.tokenizer_2), encoders, device=self.device
        )

    def _latents(self, batch: dict, generator: Any) -> Any:
        import torch

        vae = self.parts.vae
        if self.cache is not None:
            stats = [
                torch.load(self.cache.latent_path(self._latent_key(i))) for i in batch["indices"]
            ]
            mean = torch.stack([s["mean"] for s in stats]).to(self.device, torch.float32)
            std = torch.stack([s["std"] for s in stats]).to(self.device, torch.float32)
            noise = torch.randn(mean.shape, generator=generator, device=self.device)
            latents = mean + std * noise
        else:
            with torch.no_grad():
                pixels = batch["pixels"].to(self.device, dtype=self.vae_dtype) * 2 - 1
                dist = vae.encode(pixels).latent_dist
                noise = torch.randn(dist.mean.shape, generator=generator, device=self.device)
                latents = dist.mean.float() + dist.std.float() * noise
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * vae.config.scaling_factor

    def _text(self, captions: list[str]) -> tuple[Any, Any]:
        import torch

        if self.cache is not None:
            stats = [torch.load(self.cache.text_path(self._text_key(c))) for c in captions]
            embeds = torch.stack([s["embeds"] for s in stats]).to(self.device)
            pooled = torch.stack([s["pooled"] for s in stats]).to(self.device)
            return embeds, pooled
        if self.config.text_encoder_lora:
            return self._encode_text(captions)
        with torch.no_grad():
            return self._encode_text(captions)

    def _loss(self, batch: dict, step: int, micro: int) -> Any:
        import torch
        import torch.nn.functional as F  # noqa: N812

        config = self.config
        generator = torch.Generator(device=self.device)
        generator.manual_seed(_seed_int(config.seed, step, micro, self.accelerator.process_index))
        captions = list(batch["captions"])
        if config.caption_dropout > 0:
            drop = torch.rand(len(captions), generator=generator, device=self.device)
            captions = [
                "" if float(d) < config.caption_dropout else c
                for d, c in zip(drop, captions, strict=True)
            ]
        lq, cells = None, None
        if self.controlnet is not None:
            from .lq import make_lq, sample_cells

            pixels = batch["pixels"].to(self.device)
            cells = sample_cells(
                self.grid,
                pixels.shape[0],
                (config.seed, step, micro, self.accelerator.process_index, 11),
            )
            lq = make_lq(pixels, cells, self.grid)
        if self.on_batch is not None:
            self.on_batch(
                {
                    "step": step,
                    "micro": micro,
                    "pixels": batch.get("pixels"),
                    "lq": lq,
                    "lq_cells": cells,
                    "captions": captions,
                    "time_ids": batch["time_ids"],
                    "keys": batch["keys"],
                }
            )
        latents = self._latents(batch, generator)
        scheduler = self.parts.noise_scheduler
        noise = torch.randn(latents.shape, generator=generator, device=self.device)
        if config.noise_offset:
            noise = noise + config.noise_offset * torch.randn(
                (*latents.shape[:2], 1, 1), generator=generator, device=self.device
            )
        timesteps = torch.randint(
            0,
            scheduler.config.num_train_timesteps,
            (latents.shape[0],),
            generator=generator,
            device=self.device,
        ).long()
        noisy = scheduler.add_noise(latents, noise, timesteps)
        embeds, pooled = self._text(captions)
        embeds = embeds.to(self.weight_dtype)
        added = {
            "text_embeds": pooled.to(self.weight_dtype),
            "time_ids": batch["time_ids"].to(self.device, dtype=self.weight_dtype),
        }
        residuals: dict[str, Any] = {}
        if self.controlnet is not None:
            with torch.no_grad(), self.accelerator.autocast():
                down, mid = self.controlnet(
                    noisy.to(self.weight_dtype),
                    timesteps,
                    encoder_hidden_states=embeds,
                    controlnet_cond=lq.to(self.weight_dtype),
                    conditioning_scale=config.controlnet_scale,
                    added_cond_kwargs=added,
                    return_dict=False,
                )
            residuals = {
                "down_block_additional_residuals": [r.to(self.weight_dtype) for r in down],
                "mid_block_additional_residual": mid.to(self.weight_dtype),
            }
        pred = self.unet(
            noisy.to(self.weight_dtype),
            timesteps,
            encoder_hidden_states=embeds,
            added_cond_kwargs=added,
            return_dict=False,
            **residuals,
        )[0]
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        if config.snr_gamma:
            from diffusers.training_utils import compute_snr

            snr = compute_snr(scheduler, timesteps)
            weight = torch.clamp(snr, max=config.snr_gamma) / snr
            if scheduler.config.prediction_type == "v_prediction":
                weight = torch.clamp(snr, max=config.snr_gamma) / (snr + 1)
            per = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
            return (per * weight).mean()
        return F.mse_loss(pred.float(), target.float())

    # -- outputs ---------------------------------------------------------------------------------

    def _record(self, started: float, resumed_from: int | None, finished: bool) -> dict:
        import torch

        config = self.config
        info = {
            "corpus": str(Path(config.corpus).resolve()),
            "corpus_fingerprint": self.selection.fingerprint,
            "corpus_images": self.selection.total,
            "subset": config.subset,
            "images": len(self.dataset.examples),
            "empty_captions": self.selection.empty_captions,
            "skipped_images": [list(item) for item in self.dataset.skipped],
            "base": str(self.base.resolve()),
            "controlnet": str(Path(config.controlnet).resolve()) if config.controlnet else None,
            "options": _options_hash(config),
            "all_options": dataclasses.asdict(config),
            "step": self.state.step,
            "steps": config.steps,
            "finished": finished,
            "loss_history": [[int(s), float(v)] for s, v in self.state.loss_history],
            "seconds": round(self.state.seconds + (time.time() - started), 3),
            "resumed_from": resumed_from,
            "mixed_precision": self.accelerator.mixed_precision,
            "processes": self.accelerator.num_processes,
            "device": str(self.device),
            "optimizer": self.optimizer_name,
            "images_per_step": config.batch_size
            * config.grad_accum
            * self.accelerator.num_processes,
            "weight_dtypes": self._dtypes(),
            "trainable_parameters": sum(
                p.numel() for m in self.trained for p in m.parameters() if p.requires_grad
            ),
            "lora_file": LORA_FILE,
            "notes": self.notes,
            "versions": _versions(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            info["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3)
        return info

    def _dtypes(self) -> dict[str, list[str]]:
        """The dtypes of the frozen and of the trainable weights of the trained models."""
        frozen, trainable = set(), set()
        for model in self.trained:
            for param in model.parameters():
                (trainable if param.requires_grad else frozen).add(str(param.dtype))
        return {"frozen": sorted(frozen), "trainable": sorted(trainable)}

    def _save_lora(self, folder: Path) -> Path:
        from diffusers import StableDiffusionXLPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        unwrap = self.accelerator.unwrap_model
        layers: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        names = ["unet", "text_encoder", "text_encoder_2"]
        for name, model in zip(names, self.trained, strict=False):
            model = unwrap(model)
            state = convert_state_dict_to_diffusers(get_peft_model_state_dict(model))
            if name != "unet":  # DoRA: the text-encoder loader wants the magnitude as ".weight"
                state = {
                    k + ".weight" if k.endswith("lora_magnitude_vector") else k: v
                    for k, v in state.items()
                }
            layers[f"{name}_lora_layers"] = state
            metadata[f"{name}_lora_adapter_metadata"] = model.peft_config["default"].to_dict()
        folder.mkdir(parents=True, exist_ok=True)
        StableDiffusionXLPipeline.save_lora_weights(folder, **layers, **metadata)
        return folder / LORA_FILE

    def _checkpoint(self, started: float, resumed_from: int | None) -> None:
        accelerator = self.accelerator
        final = self.out / CHECKPOINTS / f"step-{self.state.step:06d}"
        tmp = self.out / CHECKPOINTS / f".tmp-step-{self.state.step:06d}"
        if self.main and tmp.exists():
            shutil.rmtree(tmp)
        accelerator.wait_for_everyone()
        elapsed = time.time() - started
        self.state.seconds += elapsed  # the checkpoint holds the time up to now
        accelerator.save_state(str(tmp))
        self.state.seconds -= elapsed
        accelerator.wait_for_everyone()
        if self.main:
            write_json_atomic(tmp / TRAINER_STATE, self._record(started, resumed_from, False))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            done = sorted(
                (p for p in final.parent.glob("step-*") if (p / TRAINER_STATE).is_file()),
                key=lambda p: int(p.name.split("-")[1]),
            )
            for old in done[: max(0, len(done) - max(1, self.config.keep_checkpoints))]:
                shutil.rmtree(old, ignore_errors=True)
            write_json_atomic(
                self.out / "training.json", self._record(started, resumed_from, False)
            )
            _plot_loss(self.state.loss_history, self.out / "loss.png", self._title())
        accelerator.wait_for_everyone()

    def _title(self) -> str:
        config = self.config
        subset = f", subset {config.subset}" if config.subset else ""
        return (
            f"LoRA r{config.rank} {config.objective} on {len(self.dataset.examples)} images"
            f"{subset} ({self.selection.fingerprint})"
        )

    def _samples(self, step: int) -> None:
        """Images at fixed prompts and seeds (and, for ``restore``, fixed LQ inputs)."""
        import torch
        from diffusers import EulerDiscreteScheduler

        from restorelab.imageio import write_image

        config = self.config
        parts = self.parts
        prompts = config.sample_prompts or [e.caption for e in self.dataset.examples[:2]]
        folder = self.out / "samples" / f"step-{step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        scheduler = EulerDiscreteScheduler.from_pretrained(
            self.base, subfolder="scheduler", local_files_only=True
        )
        components = {
            "vae": parts.vae,
            "text_encoder": parts.text_encoder,
            "text_encoder_2": parts.text_encoder_2,
            "tokenizer": parts.tokenizer,
            "tokenizer_2": parts.tokenizer_2,
            "unet": self.accelerator.unwrap_model(self.unet),
            "scheduler": scheduler,
        }
        side = config.resolution
        unet = components["unet"]
        was_training = unet.training
        unet.eval()
        try:
            if self.controlnet is None:
                from diffusers import StableDiffusionXLPipeline

                pipe = StableDiffusionXLPipeline(**components)
                inputs = [{} for _ in prompts]
            else:
                from diffusers import StableDiffusionXLControlNetPipeline

                from .lq import make_lq, sample_cells

                pipe = StableDiffusionXLControlNetPipeline(**components, controlnet=self.controlnet)
                inputs = []
                for i, example in enumerate(self.dataset.examples[: len(prompts)]):
                    item = TrainingDataset(
                        [example], resolution=side, buckets=False, center_crop=True
                    )[(0, 0)]
                    cell = sample_cells(self.grid, 1, (config.seed, 99, i))
                    lq = make_lq(item["pixels"][None], cell, self.grid)
                    image = (lq[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
                    write_image(folder / f"{i:02d}_lq.png", image)
                    inputs.append(
                        {"image": lq, "controlnet_conditioning_scale": config.controlnet_scale}
                    )
            pipe.set_progress_bar_config(disable=True)
            for i, (prompt, extra) in enumerate(zip(prompts, inputs, strict=False)):
                generator = torch.Generator(device="cpu").manual_seed(config.seed + i)
                with torch.no_grad(), self.accelerator.autocast():
                    result = pipe(
                        prompt=prompt,
                        height=side,
                        width=side,
                        num_inference_steps=config.sample_steps,
                        generator=generator,
                        output_type="np",
                        **extra,
                    ).images[0]
                image = (np.clip(np.nan_to_num(result), 0, 1) * 255 + 0.5).astype(np.uint8)
                write_image(folder / f"{i:02d}.png", image)
            (folder / "prompts.json").write_text(json.dumps(prompts, indent=1), encoding="utf-8")
        finally:
            unet.train(was_training)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, checkpoint: Path | None, *, progress: bool) -> TrainResult:
        import torch
        from diffusers.optimization import get_scheduler

        from restorelab.progress import tqdm

        config, accelerator = self.config, self.accelerator
        optimizer = self._optimizer()
        lr_scheduler = get_scheduler(
            "constant_with_warmup" if config.lr_warmup else "constant",
            optimizer=optimizer,
            num_warmup_steps=config.lr_warmup,
        )
        self._register_hooks()
        prepared = accelerator.prepare(*self.trained, optimizer)
        self.trained, optimizer = list(prepared[:-1]), prepared[-1]
        self.unet = self.trained[0]
        if config.text_encoder_lora:  # the wrapped ones, so DDP reduces their gradients
            self.text_encoders = (self.trained[1], self.trained[2])
        accelerator.register_for_checkpointing(lr_scheduler)
        accelerator.register_for_checkpointing(self.state)
        resumed_from = None
        if checkpoint is not None:
            accelerator.load_state(str(checkpoint))
            resumed_from = self.state.step
            adam_steps = [
                int(float(s["step"])) for s in optimizer.optimizer.state.values() if "step" in s
            ]
            self.notes.append(
                f"resumed from {checkpoint.name}: step {self.state.step}, optimizer state of "
                f"{len(adam_steps)} tensors at Adam step {max(adam_steps) if adam_steps else 0}"
            )
        elif config.resume and self.main:
            self.notes.append("--resume: no checkpoint in the output folder, started afresh")
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        if self.cache is not None:
            self._fill_cache(progress)
        started = time.time()
        step = self.state.step
        micro = step * config.grad_accum
        params = [p for m in self.trained for p in m.parameters() if p.requires_grad]
        bar = tqdm(
            total=config.steps,
            initial=step,
            desc="train-lora",
            unit="step",
            disable=not (progress and self.main),
            file=sys.stderr,
            dynamic_ncols=True,
        )
        window: list[float] = []
        ema = None
        try:
            while step < config.steps:
                epoch, offset = divmod(micro, self.per_epoch)
                rank, world = accelerator.process_index, accelerator.num_processes
                mine = self.sampler.batches(epoch)[rank::world][: self.per_epoch][offset:]
                loader = torch.utils.data.DataLoader(
                    self.dataset,
                    batch_sampler=mine,
                    collate_fn=collate,
                    num_workers=config.num_workers,
                )
                for batch in loader:
                    with accelerator.accumulate(*self.trained):
                        loss = self._loss(batch, step, micro)
                        accelerator.backward(loss)
                        if accelerator.sync_gradients and config.max_grad_norm:
                            accelerator.clip_grad_norm_(params, config.max_grad_norm)
                        optimizer.step()  # skipped by accelerate until the accumulation syncs
                        if accelerator.sync_gradients:
                            lr_scheduler.step()
                        optimizer.zero_grad(set_to_none=True)
                    micro += 1
                    window.append(float(accelerator.gather(loss.detach()[None]).mean()))
                    if not accelerator.sync_gradients:
                        continue
                    step += 1
                    value = float(np.mean(window))
                    window = []
                    if not math.isfinite(value):
                        self.notes.append(f"non-finite loss at step {step}")
                    self.state.step = step
                    self.state.loss_history.append((step, value))
                    ema = value if ema is None else 0.9 * ema + 0.1 * value
                    bar.set_postfix(loss=f"{ema:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
                    bar.update()
                    if config.checkpoint_every and step % config.checkpoint_every == 0:
                        self._checkpoint(started, resumed_from)
                    if config.sample_every and step % config.sample_every == 0:
                        if self.main:
                            self._samples(step)
                        accelerator.wait_for_everyone()
                    if step >= config.steps:
                        break
        except KeyboardInterrupt:
            # Ctrl+C: keep the last finished step (one process; with several, the launcher
            # stops them all and the last interval's checkpoint is the one to resume from)
            bar.close()
            last = latest_checkpoint(self.out)
            done = int(last.name.split("-")[1]) if last is not None else 0
            if accelerator.num_processes == 1 and self.state.step > done:
                self.notes.append(f"interrupted at step {self.state.step}")
                self._checkpoint(started, resumed_from)
                message = f"checkpoint of step {self.state.step} saved; --resume continues"
                print(f"\ninterrupted: {message}", file=sys.stderr)
            raise
        bar.close()
        if config.checkpoint_every and step % config.checkpoint_every:
            self._checkpoint(started, resumed_from)
        accelerator.wait_for_everyone()
        lora = self.out / LORA_FILE
        seconds = self.state.seconds + (time.time() - started)
        if self.main:
            lora = self._save_lora(self.out)
            record = self._record(started, resumed_from, True)
            write_json_atomic(self.out / "training.json", record)
            _plot_loss(self.state.loss_history, self.out / "loss.png", self._title())
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainResult(
            out=self.out,
            lora=lora,
            step=step,
            loss_history=list(self.state.loss_history),
            seconds=seconds,
            resumed_from=resumed_from,
            notes=list(self.notes),
        )
