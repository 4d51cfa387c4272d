"""Where model weights live on this machine, and what to say when one is missing.

restorelab never downloads weights. Each :class:`WeightSpec` lists the places it looks (an
environment variable, the Hugging Face cache, ``$TORCH_HOME``) and how to get the files onto a
machine without network access. :func:`require_weights` raises :class:`MissingWeightsError`
naming the exact file and that recipe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """A model's weights are not on this machine; the message says which file and how to get it."""


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def torch_home() -> Path:
    """Torch's cache folder (``TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "torch"


def hf_snapshot(repo_id: str, required_file: str) -> Path | None:
    """The newest cached snapshot folder of ``repo_id`` that contains ``required_file``."""
    snapshots = hf_hub_cache() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    found = [s for s in snapshots.iterdir() if (s / required_file).is_file()]
    return max(found, key=lambda s: s.stat().st_mtime) if found else None


@dataclass(frozen=True)
class WeightSpec:
    """A model checkpoint restorelab can use, where it is looked for and how to get it."""

    key: str
    description: str
    expected: str
    locate: Callable[[], Path | None]
    how_to_get: str
    needed_for: str
    #: For torchvision checkpoints: the file name in ``$TORCH_HOME/hub/checkpoints``.
    filename: str | None = None
    #: Optional deeper check of a found path: the problem in words, or None when usable.
    verify: Callable[[Path], str | None] | None = None


#: Folders a diffusers SDXL pipeline folder needs beside ``model_index.json``.
SDXL_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def diffusers_folder_problem(
    folder: Path, components: tuple[str, ...] = SDXL_COMPONENTS, weighted=("unet", "vae")
) -> str | None:
    """What is missing from a diffusers pipeline folder (None: complete).

    Checks ``model_index.json``, each of ``components`` as a folder, and a ``.safetensors`` or
    ``.bin`` file in each of ``weighted``.
    """
    if not (folder / "model_index.json").is_file():
        return "no model_index.json (not a diffusers folder)"
    missing = [c for c in components if not (folder / c).is_dir()]
    for name in weighted:
        sub = folder / name
        if name not in missing and not any(
            p.suffix in (".safetensors", ".bin") for p in sub.iterdir()
        ):
            missing.append(name)
    return f"missing {', '.join(missing)}" if missing else None


def _env_or(var: str, fallback: Callable[[], Path | None], required: str) -> Callable:
    def locate() -> Path | None:
        value = os.environ.get(var)
        if value:
            path = Path(value)
            return path if (path / required).exists() or path.is_file() else None
        return fallback()

    return locate


def _torch_checkpoint(filename: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        path = torch_home() / "hub" / "checkpoints" / filename
        return path if path.is_file() else None

    return locate


def _torch_hub_file(*parts: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        path = torch_home().joinpath("hub", *parts)
        return path if path.is_file() else None

    return locate


def _package_file(package: str, *parts: str) -> Callable[[], Path | None]:
    """A data file shipped inside an installed (not necessarily imported) package."""

    def locate() -> Path | None:
        import importlib.util

        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
        return path if path.is_file() else None

    return locate


def _first_found(*locators: Callable[[], Path | None]) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        for locator in locators:
            path = locator()
            if path is not None:
                return path
        return None

    return locate


def _lora_file(var: str) -> Callable[[], Path | None]:
    """A LoRA ``.safetensors`` named by ``var``: the file, or the only one in that folder."""

    def locate() -> Path | None:
        value = os.environ.get(var)
        if not value:
            return None
        path = Path(value).expanduser()
        if path.is_file():
            return path
        files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
        return files[0] if len(files) == 1 else None

    return locate


_PYIQA_RECIPE = (
    'on a machine with network access run `python -c "import pyiqa; '
    "pyiqa.create_metric('{metric}')\"`, then copy ~/.cache/torch/hub/{folder}/{file} "
    "to $TORCH_HOME/hub/{folder}/ here"
)

_TORCHVISION_RECIPE = (
    'on a machine with network access run `python -c "import torchvision; '
    "torchvision.models.{fn}(weights='IMAGENET1K_V1')\"`, then copy "
    "~/.cache/torch/hub/checkpoints/{file} to $TORCH_HOME/hub/checkpoints/ here"
)


def _torchvision_spec(
    key: str, description: str, fn: str, file: str, needed_for: str
) -> WeightSpec:
    """A torchvision ImageNet checkpoint, looked for in ``$TORCH_HOME/hub/checkpoints``."""
    return WeightSpec(
        key=key,
        description=description,
        expected=f"$TORCH_HOME/hub/checkpoints/{file}",
        locate=_torch_checkpoint(file),
        how_to_get=_TORCHVISION_RECIPE.format(fn=fn, file=file),
        needed_for=needed_for,
        filename=file,
    )


def _torch_hub_spec(
    key: str, description: str, metric: str, folder: str, file: str, needed_for: str
) -> WeightSpec:
    """A file pyiqa downloads into ``$TORCH_HOME/hub/<folder>`` when ``metric`` is created."""
    return WeightSpec(
        key=key,
        description=description,
        expected=f"$TORCH_HOME/hub/{folder}/{file}",
        locate=_torch_hub_file(folder, file),
        how_to_get=_PYIQA_RECIPE.format(metric=metric, folder=folder, file=file),
        needed_for=needed_for,
    )


WEIGHTS: dict[str, WeightSpec] = {
    spec.key: spec
    for spec in (
        WeightSpec(
            key="sdxl-base",
            description="Stable Diffusion XL base 1.0 (diffusers layout)",
            expected="$RESTORELAB_SDXL_BASE/model_index.json, or the HF cache of "
            "stabilityai/stable-diffusion-xl-base-1.0",
            locate=_env_or(
                "RESTORELAB_SDXL_BASE",
                lambda: hf_snapshot("stabilityai/stable-diffusion-xl-base-1.0", "model_index.json"),
                "model_index.json",
            ),
            how_to_get="on a machine with network access run `huggingface-cli download "
            "stabilityai/stable-diffusion-xl-base-1.0 --exclude '*.bin' '*.onnx*' "
            "--local-dir sdxl-base`, copy the folder here and set RESTORELAB_SDXL_BASE to it",
            needed_for="the SDXL+LoRA restorer and LoRA training",
            verify=diffusers_folder_problem,
        ),
        WeightSpec(
            key="sdxl-lora",
            description="SDXL LoRA adapter for restoration (diffusers format)",
            expected="$RESTORELAB_SDXL_LORA (a .safetensors file, or a folder holding one)",
            locate=_lora_file("RESTORELAB_SDXL_LORA"),
            how_to_get="train one with restorelab's LoRA training, or copy a diffusers-format "
            "pytorch_lora_weights.safetensors here and set RESTORELAB_SDXL_LORA to it; pass "
            "each adapter as --lora NAME=PATH[:WEIGHT]",
            needed_for="the SDXL+LoRA restorer (optional: without one it runs the base model)",
        ),
        WeightSpec(
            key="sdxl-controlnet-tile",
            description="SDXL tile ControlNet or ControlNet-Union (diffusers layout)",
            expected="$RESTORELAB_SDXL_CONTROLNET/config.json, or the HF cache of "
            "xinsir/controlnet-tile-sdxl-1.0 or xinsir/controlnet-union-sdxl-1.0",
            locate=_env_or(
                "RESTORELAB_SDXL_CONTROLNET",
                _first_found(
                    lambda: hf_snapshot("xinsir/controlnet-tile-sdxl-1.0", "config.json"),
                    lambda: hf_snapshot("xinsir/controlnet-union-sdxl-1.0", "config.json"),
                ),
                "config.json",
            ),
            how_to_get="on a machine with network access run `huggingface-cli download "
            "xinsir/controlnet-tile-sdxl-1.0 --local-dir controlnet-tile`, copy the folder "
            "here and pass it as --controlnet (or set RESTORELAB_SDXL_CONTROLNET)",
            needed_for="the SDXL restorer's ControlNet conditioning (optional)",
        ),
        _torchvision_spec(
            "lpips-alex-backbone",
            "AlexNet ImageNet weights (LPIPS 'alex' backbone)",
            "alexnet",
            "alexnet-owt-7be5be79.pth",
            "the lpips metric (net=alex)",
        ),
        _torchvision_spec(
            "lpips-vgg-backbone",
            "VGG-16 ImageNet weights (LPIPS 'vgg' backbone)",
            "vgg16",
            "vgg16-397923af.pth",
            "the lpips metric (net=vgg)",
        ),
        WeightSpec(
            key="lpips-alex-linear",
            description="LPIPS v0.1 linear calibration layers for alex (ship with lpips)",
            expected="<site-packages>/lpips/weights/v0.1/alex.pth",
            locate=_package_file("lpips", "weights", "v0.1", "alex.pth"),
            how_to_get="pip install lpips (the file ships inside the package)",
            needed_for="the lpips metric",
        ),
        WeightSpec(
            key="lpips-vgg-linear",
            description="LPIPS v0.1 linear calibration layers for vgg (ship with lpips)",
            expected="<site-packages>/lpips/weights/v0.1/vgg.pth",
            locate=_package_file("lpips", "weights", "v0.1", "vgg.pth"),
            how_to_get="pip install lpips (the file ships inside the package)",
            needed_for="the lpips metric (net=vgg)",
        ),
        _torchvision_spec(
            "dists-vgg-backbone",
            "VGG-16 ImageNet weights (DISTS backbone)",
            "vgg16",
            "vgg16-397923af.pth",
            "the dists metric",
        ),
        WeightSpec(
            key="dists-alpha-beta",
            description="DISTS structure/texture weights alpha and beta (Ding et al. 2020)",
            expected="$TORCH_HOME/hub/pyiqa/DISTS_weights-f5e65c96.pth (pyiqa's copy), or "
            "DISTS_pytorch/weights.pt inside the DISTS-pytorch package",
            locate=_first_found(
                _torch_hub_file("pyiqa", "DISTS_weights-f5e65c96.pth"),
                _package_file("DISTS_pytorch", "weights.pt"),
            ),
            how_to_get="`pip install DISTS-pytorch` (the file ships inside the package), or "
            + _PYIQA_RECIPE.format(
                metric="dists", folder="pyiqa", file="DISTS_weights-f5e65c96.pth"
            ),
            needed_for="the dists metric",
        ),
        _torch_hub_spec(
            "pyiqa-niqe",
            "NIQE natural-scene statistics model (pyiqa)",
            "niqe",
            "pyiqa",
            "niqe_modelparameters.mat",
            "the niqe metric",
        ),
        _torch_hub_spec(
            "pyiqa-musiq-koniq",
            "MUSIQ trained on KonIQ-10k (pyiqa)",
            "musiq",
            "pyiqa",
            "musiq_koniq_ckpt-e95806b9.pth",
            "the musiq metric",
        ),
        _torch_hub_spec(
            "clip-rn50",
            "OpenAI CLIP RN50 (CLIP-IQA backbone, loaded by pyiqa)",
            "clipiqa",
            "clip",
            "RN50.pt",
            "the clipiqa metric",
        ),
        _torch_hub_spec(
            "pyiqa-maniqa-koniq",
            "MANIQA trained on KonIQ-10k (pyiqa)",
            "maniqa",
            "pyiqa",
            "ckpt_koniq10k.pt",
            "the maniqa metric",
        ),
        WeightSpec(
            key="timm-vit-b8",
            description="timm ViT-B/8 ImageNet weights (MANIQA backbone)",
            expected="the HF cache of timm/vit_base_patch8_224.augreg2_in21k_ft_in1k",
            locate=lambda: hf_snapshot(
                "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", "model.safetensors"
            ),
            how_to_get="on a machine with network access run `huggingface-cli download "
            "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k`, then copy "
            "~/.cache/huggingface/hub/models--timm--vit_base_patch8_224.augreg2_in21k_ft_in1k "
            "to the HF cache here",
            needed_for="the maniqa metric",
        ),
    )
}


def find_weights(key: str) -> Path | None:
    """Path of the weights ``key`` (see :data:`WEIGHTS`), or None when absent."""
    if key not in WEIGHTS:
        raise KeyError(f"unknown weights {key!r}; known: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[key].locate()


def checkpoint_path(key: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """The torchvision checkpoint of spec ``key`` in ``weights_dir`` (default
    ``$TORCH_HOME/hub/checkpoints``); raise :class:`MissingWeightsError` naming the file and
    how to get it into that folder."""
    spec = WEIGHTS[key]
    if spec.filename is None:
        raise ValueError(f"weights {key!r} are not a torchvision checkpoint")
    default = torch_home() / "hub" / "checkpoints"
    folder = default if weights_dir is None else Path(weights_dir).expanduser()
    path = folder / spec.filename
    if not path.is_file():
        recipe = spec.how_to_get.replace("$TORCH_HOME/hub/checkpoints/", f"{folder}/")
        raise MissingWeightsError(
            f"{spec.description} not found: {path} does not exist. To get it: {recipe}."
        )
    return path


def require_weights(key: str) -> Path:
    """Path of the weights ``key``; raise :class:`MissingWeightsError` saying how to get them."""
    path = find_weights(key)
    if path is None:
        spec = WEIGHTS[key]
        raise MissingWeightsError(
            f"{spec.description} not found (looked for {spec.expected}). "
            f"To get it: {spec.how_to_get}."
        )
    return path
