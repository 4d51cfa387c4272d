"""Which torch device a process uses: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.

Under ``torchrun`` or ``accelerate launch`` every rank of a node sees every GPU; the launcher
tells each rank its GPU through ``LOCAL_RANK``. A bare ``cuda`` therefore means *this rank's*
GPU, ``cuda:LOCAL_RANK`` (modulo the GPUs this process sees, so one GPU per process via
``CUDA_VISIBLE_DEVICES`` works too); without a launcher it stays ``cuda``, torch's current
GPU, and external commands see every GPU this process sees.
"""

from __future__ import annotations

import os
import re

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def local_rank() -> int | None:
    """``LOCAL_RANK`` from the environment (set by torchrun and accelerate), else None."""
    value = os.environ.get("LOCAL_RANK", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"LOCAL_RANK={value!r} is not a non-negative integer")
    return int(value)


def resolve_device(device: str = "auto") -> str:
    """A concrete torch device string for ``device``.

    ``"auto"`` is CUDA when torch sees a GPU, else ``"cpu"``; bare ``"cuda"`` becomes
    ``"cuda:I"`` with I this rank's GPU under a launcher (see the module docstring) and stays
    ``"cuda"`` without one; ``"cpu"`` is returned
    without importing torch. Raises ``ValueError`` naming the problem for a malformed name,
    for CUDA on a machine where torch sees no GPU, and for a GPU index out of range.
    """
    match = _DEVICE.match(str(device).strip().lower())
    if match is None:
        raise ValueError(f"device {device!r}: expected auto, cpu, cuda or cuda:N")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return "cpu"
    import torch

    if kind == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        kind = "cuda"
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("device 'mps' requested but torch sees no Apple GPU")
        return "mps"
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but torch sees no CUDA GPU (torch "
            f"{torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
            "use --device cpu or check the driver and CUDA_VISIBLE_DEVICES"
        )
    count = torch.cuda.device_count()
    if index is None:
        rank = local_rank()
        return "cuda" if rank is None else f"cuda:{rank % count}"
    if int(index) >= count:
        raise ValueError(f"device {device!r}: this process sees {count} CUDA GPU(s)")
    return f"cuda:{int(index)}"


def cuda_visible_devices(device: str) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value that gives a child process exactly ``device``.

    For ``"cuda:I"``: the I-th entry of this process's ``CUDA_VISIBLE_DEVICES`` when set,
    else ``"I"``. None for other devices, bare ``"cuda"`` included (the child's environment
    is left alone).
    """
    match = re.match(r"^cuda:(\d+)$", str(device))
    if match is None:
        return None
    index = int(match.group(1))
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    visible = [v for v in visible if v]
    if visible:
        if index >= len(visible):
            raise ValueError(
                f"{device}: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r} "
                f"lists {len(visible)} GPU(s)"
            )
        return visible[index]
    return str(index)
