"""Benchmarking: metrics, restorers and the runner that sweeps restorers over a grid.

The names below are loaded on first use (PEP 562): importing a light submodule such as
``restorelab.benchmark.stats`` (the dashboard, ``restorelab report``) does not import the
restorers, the runner and, through them, torch and the degradation zoo.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: public name -> submodule that defines it
_LAZY = {
    "create_metric": "metrics",
    "list_metrics": "metrics",
    "Restorer": "restorers",
    "create_restorer": "restorers",
    "list_restorers": "restorers",
    "BenchmarkSummary": "runner",
    "run_benchmark": "runner",
    "run_benchmark_pairs": "runner",
}

__all__ = [
    "BenchmarkSummary",
    "Restorer",
    "create_metric",
    "create_restorer",
    "list_metrics",
    "list_restorers",
    "run_benchmark",
    "run_benchmark_pairs",
]

if TYPE_CHECKING:
    from restorelab.benchmark.metrics import create_metric, list_metrics
    from restorelab.benchmark.restorers import Restorer, create_restorer, list_restorers
    from restorelab.benchmark.runner import BenchmarkSummary, run_benchmark, run_benchmark_pairs


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
