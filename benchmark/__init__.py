"""Benchmarking: metrics, restorers and the runner that sweeps restorers over a grid."""

from restorelab.benchmark.metrics import create_metric, list_metrics
from restorelab.benchmark.restorers import Restorer, create_restorer, list_restorers
from restorelab.benchmark.runner import BenchmarkSummary, run_benchmark, run_benchmark_pairs

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
