"""No-reference quality metrics through pyiqa: ``niqe``, ``musiq``, ``clipiqa``, ``maniqa``.

pyiqa is an optional extra (``pip install 'restorelab[iqa]'``; PolyForm-Noncommercial licence),
so this module never imports it at import time: the metrics are registered from a table, and
pyiqa is imported when a metric is first called. :func:`create_metric` checks up front that
pyiqa is installed and that every weight file is on this machine (pyiqa's cache is
``$TORCH_HOME/hub/pyiqa``, CLIP's ``$TORCH_HOME/hub/clip``, timm's the Hugging Face cache), and
raises naming what is missing, so pyiqa never reaches for the network.

The metrics score the distorted (restored) image alone; the reference argument is ignored.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from restorelab.benchmark.metrics.base import register_metric
from restorelab.benchmark.metrics.fidelity import _crop
from restorelab.weights import MissingWeightsError, hf_hub_cache, require_weights, torch_home


class MissingExtraError(ImportError):
    """An optional package a metric needs is not installed; the message says how to get it."""


@dataclass(frozen=True)
class _PyiqaMetric:
    name: str
    pyiqa_name: str
    weights: tuple[str, ...]
    higher_is_better: bool
    value_range: tuple[float, float]
    description: str


_TABLE = (
    _PyiqaMetric(
        "niqe",
        "niqe",
        ("pyiqa-niqe",),
        False,
        (0.0, float("inf")),
        "NIQE (Mittal et al. 2013), pyiqa, on Y, MATLAB-compatible; typical 2-10",
    ),
    _PyiqaMetric(
        "musiq",
        "musiq",
        ("pyiqa-musiq-koniq",),
        True,
        (0.0, 100.0),
        "MUSIQ (Ke et al. 2021) trained on KonIQ-10k, pyiqa; MOS scale ~0-100",
    ),
    _PyiqaMetric(
        "clipiqa",
        "clipiqa",
        ("clip-rn50",),
        True,
        (0.0, 1.0),
        "CLIP-IQA (Wang et al. 2023), CLIP RN50 with antonym prompt pairs, pyiqa; 0-1",
    ),
    _PyiqaMetric(
        "maniqa",
        "maniqa",
        ("pyiqa-maniqa-koniq", "timm-vit-b8"),
        True,
        (0.0, 1.0),
        "MANIQA (Yang et al. 2022) trained on KonIQ-10k, pyiqa; ~0-1",
    ),
)

_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def pyiqa_available() -> bool:
    """Whether pyiqa is installed (checked without importing it)."""
    return importlib.util.find_spec("pyiqa") is not None


def _checker(entry: _PyiqaMetric) -> Any:
    def check(options: dict) -> None:
        if not pyiqa_available():
            raise MissingExtraError(
                f"metric {entry.name!r} needs the optional package pyiqa, which is not "
                "installed: pip install 'restorelab[iqa]' (pyiqa is PolyForm-Noncommercial)"
            )
        for key in entry.weights:
            try:
                require_weights(key)
            except MissingWeightsError as error:
                raise MissingWeightsError(
                    f"metric {entry.name!r}: {error} (here $TORCH_HOME is {torch_home()}, "
                    f"the Hugging Face cache {hf_hub_cache()})"
                ) from None

    return check


def _model(entry: _PyiqaMetric, device: str) -> Any:
    with _LOCK:
        key = (entry.name, device)
        if key not in _MODELS:
            import torch

            # pyiqa prints "Loading pretrained model ..." on stdout, which would corrupt
            # machine-readable output such as ``restorelab score --json``: send it to stderr.
            with contextlib.redirect_stdout(sys.stderr):
                import pyiqa

                _MODELS[key] = pyiqa.create_metric(
                    entry.pyiqa_name, device=torch.device(device), as_loss=False
                )
        return _MODELS[key]


def _scorer(entry: _PyiqaMetric) -> Any:
    def score(
        reference: np.ndarray | None,
        distorted: np.ndarray,
        *,
        device: str = "auto",
        crop_border: int = 0,
    ) -> float:
        import torch

        from restorelab.devices import resolve_device

        distorted = _crop(distorted, crop_border)
        device = resolve_device(device)
        model = _model(entry, device)
        tensor = torch.from_numpy(np.ascontiguousarray(distorted)).permute(2, 0, 1)[None]
        with torch.inference_mode():
            value = model(tensor.to(device=device, dtype=torch.float32) / 255.0)
        return float(value.reshape(-1)[0].item())

    score.__name__ = entry.name
    score.__doc__ = (
        f"{entry.description}.\n\nNo-reference: scores ``distorted`` (RGB ``uint8``) alone; "
        f"{'higher' if entry.higher_is_better else 'lower'} is better. Needs pyiqa."
    )
    return score


for _entry in _TABLE:
    register_metric(
        _entry.name,
        higher_is_better=_entry.higher_is_better,
        convention=f"{_entry.description}; no reference (needs the iqa extra)",
        value_range=_entry.value_range,
        no_reference=True,
        check=_checker(_entry),
        device="auto",
        crop_border=0,
    )(_scorer(_entry))
