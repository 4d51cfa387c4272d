"""Scoring files: one image pair, or two folders paired by file name (``restorelab score``).

Folders are paired by :func:`restorelab.benchmark.pairing.match_folders`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from restorelab.benchmark.metrics import Metric, create_metric
from restorelab.imageio import read_image


def bind_metrics(
    names: Sequence[str], *, crop_border: int = 0, device: str | None = None
) -> dict[str, Metric]:
    """Create the named metrics; ``crop_border`` and ``device`` go to the metrics that take
    them (``device`` to the learned and no-reference ones; None keeps their default)."""
    from restorelab.benchmark.metrics import METRICS

    metrics = {}
    for name in names:
        accepted = METRICS.get(name).default_options
        options: dict = {}
        if crop_border and "crop_border" in accepted:
            options["crop_border"] = crop_border
        if device is not None and "device" in accepted:
            options["device"] = device
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
