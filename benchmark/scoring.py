"""Scoring files: one image pair, or two folders paired by file name (``restorelab score``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from restorelab.benchmark.metrics import Metric, create_metric
from restorelab.imageio import iter_image_files, read_image


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


def pair_folders(
    ref_dir: str | os.PathLike, dist_dir: str | os.PathLike
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Images of two folders matched by relative path without the ending.

    Returns the pairs ``(key, ref_path, dist_path)`` sorted by key, and the unmatched keys
    (each prefixed with ``ref:`` or ``dist:``).
    """

    def index(folder: Path) -> dict[str, Path]:
        return {
            p.relative_to(folder).with_suffix("").as_posix(): p for p in iter_image_files(folder)
        }

    refs, dists = index(Path(ref_dir)), index(Path(dist_dir))
    pairs = [(key, refs[key], dists[key]) for key in sorted(set(refs) & set(dists))]
    unmatched = [f"ref:{k}" for k in sorted(set(refs) - set(dists))]
    unmatched += [f"dist:{k}" for k in sorted(set(dists) - set(refs))]
    return pairs, unmatched


def score_pair(
    ref: str | os.PathLike, dist: str | os.PathLike, metrics: dict[str, Metric]
) -> dict[str, float]:
    """Every metric of ``dist`` against ``ref`` (files)."""
    reference, distorted = read_image(ref), read_image(dist)
    return {name: metric(reference, distorted) for name, metric in metrics.items()}


def json_number(value: float) -> float | None:
    """``value`` for JSON: infinities and NaN become None."""
    return None if (math.isinf(value) or math.isnan(value)) else value
