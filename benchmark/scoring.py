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
    names: Sequence[str],
    *,
    crop_border: int = 0,
    device: str | None = None,
    by_label: bool = True,
) -> dict[str, Metric]:
    """Create the metrics ``names`` (names or specs such as ``"lpips:net=vgg"``), keyed by
    their labels (their columns in result tables), or as written with ``by_label=False``.

    ``crop_border`` and ``device`` go to the metrics that take them (``device`` to the learned
    and no-reference ones; None keeps their default); options in a spec win. Raises
    ``ValueError`` when two entries make the same metric.
    """
    from restorelab.benchmark.metrics import METRICS
    from restorelab.config import parse_spec

    metrics: dict[str, Metric] = {}
    for name in names:
        base, given = parse_spec(name) if ":" in name else (name, {})
        accepted = METRICS.get(base).default_options
        options: dict = {}
        if crop_border and "crop_border" in accepted and "crop_border" not in given:
            options["crop_border"] = crop_border
        if device is not None and "device" in accepted and "device" not in given:
            options["device"] = device
        metric = create_metric(name, **options)
        key = metric.label if by_label else name.strip()
        if key in metrics:
            raise ValueError(f"metric {key!r} is listed twice")
        metrics[key] = metric
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
