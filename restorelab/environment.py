"""What this machine is: Python, packages, CPU and GPU. Used by ``doctor`` and run provenance."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

#: Packages whose versions are recorded with every run.
TRACKED_PACKAGES = (
    "restorelab",
    "numpy",
    "scipy",
    "scikit-image",
    "pillow",
    "pandas",
    "pyarrow",
    "torch",
    "torchvision",
    "lpips",
    "diffusers",
    "peft",
    "transformers",
    "accelerate",
    "datasets",
    "streamlit",
    "pyiqa",
)


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (None for the ones not installed)."""
    return {name: package_version(name) for name in names}


def gpu_info() -> dict:
    """Torch's view of the accelerators: CUDA availability, device names and memory."""
    try:
        import torch
    except ImportError:
        return {"torch": None, "cuda_available": False, "devices": []}
    info: dict = {
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
        "devices": [],
    }
    if info["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            memory_gib = round(props.total_memory / 2**30, 1)
            info["devices"].append({"index": index, "name": props.name, "memory_gib": memory_gib})
    return info


def hardware_info() -> dict:
    """Platform, Python, CPU count and GPUs."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
        "gpu": gpu_info(),
    }
