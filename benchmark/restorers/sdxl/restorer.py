"""The ``sdxl`` restorer: :class:`~.pipeline.SDXLRestorationPipeline` behind the Restorer interface.

Options are data (a spec ``sdxl:base=/models/sdxl,lora=scene=/l/scene.safetensors:0.8+face=/l/
face.safetensors:0.5,preset=fidelity`` or keyword arguments). ``None`` for a sampling option
means "the preset's value". The configuration hash covers every option, the resolved settings
and the identity (path, size, modification time) of every file loaded, so a changed LoRA never
resumes into an old run. Models load on first use, on the device given by :meth:`to`.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from restorelab.benchmark.restorers.base import RestoreContext, Restorer, register_restorer
from restorelab.weights import find_weights, require_weights

#: Options that pick sampling settings; None = the preset's value (see ``presets.yaml``).
SETTING_OPTIONS = (
    "steps",
    "strength",
    "s_cfg",
    "spt_linear_cfg",
    "restoration_scale",
    "s_churn",
    "s_noise",
    "timestep_spacing",
    "a_prompt",
    "n_prompt",
)


#: Loaded pipelines shared by restorers that load the same files the same way (a sweep over
#: sampling options loads SDXL once); the least recently used beyond this many is dropped.
MAX_LOADED_PIPELINES = 2
_LOADED: OrderedDict[str, Any] = OrderedDict()


def file_identity(path: Path) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns"}`` of one file (symlinks followed, as in the HF cache)."""
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def folder_identities(folder: Path) -> list[dict[str, Any]]:
    """:func:`file_identity` of every file below ``folder`` (sorted; hidden files skipped)."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return [file_identity(p) for p in files]


@register_restorer
class SDXLRestorer(Restorer):
    """SDXL + LoRA diffusion restorer (img2img or tile ControlNet, SUPIR-style guided sampling)."""

    name = "sdxl"
    wants_context: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        "base": "",
        "lora": "",
        "controlnet": "",
        "controlnet_scale": 1.0,
        "preset": "fidelity",
        **{key: None for key in SETTING_OPTIONS},
        "prompt": "",
        "colour_fix": "wavelet",
        "tile": 128,
        "tile_stride": 64,
        "tile_batch": 1,
        "vae_tiling": True,
        "min_side": 1024,
        "upscale": 1,
        "dtype": "auto",
        "compile": False,
        "offload": False,
        "batch_size": 1,
        "seed": 0,
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        from restorelab.benchmark.restorers.sdxl.pipeline import (
            RestorationSettings,
            parse_loras,
            resolve_base,
            resolve_controlnet,
            resolve_lora,
        )

        opts = self.options
        if int(opts["upscale"]) != float(opts["upscale"]) or int(opts["upscale"]) < 1:
            raise ValueError(f"sdxl: upscale {opts['upscale']!r} must be a whole number >= 1")
        if int(opts["batch_size"]) < 1:
            raise ValueError(f"sdxl: batch_size {opts['batch_size']!r} must be >= 1")
        self.scale = int(opts["upscale"])
        self.settings = RestorationSettings.from_preset(
            str(opts["preset"]),
            **{key: opts[key] for key in SETTING_OPTIONS},
            colour_fix=str(opts["colour_fix"]).lower(),
            tile=int(opts["tile"]),
            tile_stride=int(opts["tile_stride"]),
            tile_batch=int(opts["tile_batch"]),
            vae_tiling=bool(opts["vae_tiling"]),
            controlnet_scale=float(opts["controlnet_scale"]),
            min_side=int(opts["min_side"]),
            upscale=float(opts["upscale"]),
        )
        self.settings.check()
        # every file is checked now: a missing one stops before any work, in one line
        base = opts["base"] or os.environ.get("RESTORELAB_SDXL_BASE", "")
        if not base:
            found = find_weights("sdxl-base")
            base = str(found) if found else str(require_weights("sdxl-base"))
        self.base_path = resolve_base(base)
        self.loras = parse_loras(opts["lora"])
        self.lora_files = [resolve_lora(spec) for spec in self.loras]
        control = opts["controlnet"]
        self.controlnet_path = resolve_controlnet(control) if control else None
        self._pipeline = None
        # taken now, when the files are checked: the hash names the files as they were found
        self._file_identities = self.file_identities()

    @classmethod
    def from_pretrained(
        cls, base: str | os.PathLike, *, lora: str | list[str] = "", **options: Any
    ) -> SDXLRestorer:
        """``SDXLRestorer.from_pretrained("/models/sdxl", lora=["scene=/l/s.safetensors:0.8"])``."""
        return cls(base=str(base), lora=lora, **options)

    # --- identity ------------------------------------------------------------------------
    def file_identities(self) -> list[dict[str, Any]]:
        """Path, size and mtime of every file this restorer loads (base, LoRAs, ControlNet)."""
        files = folder_identities(self.base_path)
        files += [file_identity(f) for f in self.lora_files]
        if self.controlnet_path is not None:
            files += folder_identities(self.controlnet_path)
        return files

    @property
    def config(self) -> dict[str, Any]:
        """Options, the resolved settings (preset values filled in) and the files' identities."""
        return {
            **super().config,
            "settings": asdict(self.settings),
            "files": self._file_identities,
        }

    @property
    def batch_size(self) -> int:
        return int(self.options["batch_size"])

    # --- placement and loading -----------------------------------------------------------
    def to(self, device: str) -> SDXLRestorer:
        if str(device) != self.device:
            self.device = str(device)
            self._pipeline = None  # loaded (or found loaded) on the new device when used
        return self

    @property
    def pipeline(self):
        """The loaded :class:`~.pipeline.SDXLRestorationPipeline` (loads on first access).

        Restorers that load the same files with the same dtype, device, compile and offload
        share one pipeline (see :data:`MAX_LOADED_PIPELINES`); each sets its own LoRA weights
        before every call.
        """
        if self._pipeline is None:
            from restorelab.benchmark.restorers.sdxl.pipeline import SDXLRestorationPipeline

            key = json.dumps(
                [
                    self._file_identities,
                    [s.name for s in self.loras],
                    str(self.options["dtype"]),
                    self.device,
                    bool(self.options["compile"]),
                    bool(self.options["offload"]),
                ],
                default=str,
            )
            if key not in _LOADED:
                _LOADED[key] = SDXLRestorationPipeline.from_pretrained(
                    self.base_path,
                    loras=self.loras,
                    controlnet=self.controlnet_path,
                    dtype=str(self.options["dtype"]),
                    device=self.device,
                    compile=bool(self.options["compile"]),
                    offload=bool(self.options["offload"]),
                )
                while len(_LOADED) > MAX_LOADED_PIPELINES:
                    _LOADED.popitem(last=False)
            _LOADED.move_to_end(key)
            self._pipeline = _LOADED[key]
        return self._pipeline

    # --- restoring -----------------------------------------------------------------------
    def _prompt(self, context: RestoreContext | None) -> str:
        return str(self.options["prompt"] or (context.caption if context else "") or "")

    def _seed(self, context: RestoreContext | None) -> int:
        if context is not None and context.seed is not None:
            return int(context.seed)
        return int(self.options["seed"])

    def restore_array(
        self, image: np.ndarray, *, context: RestoreContext | None = None
    ) -> np.ndarray:
        return self._restore_same_size([image], [context])[0]

    def restore_batch(
        self,
        images: list[np.ndarray],
        *,
        degradations: list[dict | None] | None = None,
        contexts: list[RestoreContext | None] | None = None,
    ) -> list[np.ndarray]:
        """Restore ``images``; same-size images go through the UNet together, ``batch_size``
        at a time. Each image keeps its own prompt and seed, so results do not depend on the
        batching beyond floating-point rounding."""
        contexts = contexts or [None] * len(images)
        outs: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(tuple(image.shape), []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                restored = self._restore_same_size(
                    [images[i] for i in chunk], [contexts[i] for i in chunk]
                )
                for i, out in zip(chunk, restored, strict=True):
                    outs[i] = self.check_output(images[i], out)
        return outs  # type: ignore[return-value]

    def _restore_same_size(
        self, images: list[np.ndarray], contexts: list[RestoreContext | None]
    ) -> list[np.ndarray]:
        pipeline = self.pipeline
        if self.loras:
            pipeline.set_lora_weights({spec.name: spec.weight for spec in self.loras})
        result = pipeline(
            images,
            [self._prompt(c) for c in contexts],
            settings=self.settings,
            seed=[self._seed(c) for c in contexts],
        )
        return result.images
