"""Scoring files: one image pair, or two folders paired by file name (``restorelab score``).

Folders are paired by :func:`restorelab.benchmark.pairing.match_folders`.
"""

from __future__ import annotations

import math
import os

from restorelab.benchmark.metrics import Metric, create_metric
from restorelab.imageio import read_image


def bind_metrics(names: list[str], *, crop_border: int = 0) -> dict[str, Metric]:
    """Create the named metrics; ``crop_border`` goes to the metrics that take it."""
    from restorelab.benchmark.metrics import METRICS

    metrics = {}
    for name in names:
        options = (
            {"crop_border": crop_border}
            if (crop_border and "crop_border" in METRICS.get(name).default_options)
            else {}
        )
        metrics[name] = create_metric(name, **options)
    return metrics


def score_pair(
    ref: str | os.PathLike, dist: str | os.PathLike, metrics: dict[str, Metric]
) -> dict[str, float]:
    """Every metric of ``dist`` against ``ref`` (files)."""
    reference, distorted = read_image(ref), read_image(dist)
    return {name: metric(reference, distorted) for name, metric in metrics.items()}


def json_number(value: float) -> float | None:
    """``value`` for JSON: infinities and NaN become None."""
    return None if (math.isinf(value) or math.isnan(value)) else value
