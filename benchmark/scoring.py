"""Scoring files: one image pair, or two folders paired by file name (``restorelab score``).

Folders are paired by :func:`restorelab.benchmark.pairing.match_folders`; a pair that cannot
be scored is recorded with its reason and left out of the means (:class:`FolderScores`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

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


#: Errors of one pair that are recorded (with their reason) instead of stopping the scoring.
PAIR_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)


@dataclass
class FolderScores:
    """Scores of two folders paired by file name (:func:`score_folders`).

    ``rows`` holds one dict per pair: ``pair`` plus a value per metric, or ``pair`` and
    ``error`` (the reason) when the pair could not be scored.
    """

    metrics: list[str]
    rows: list[dict] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[dict]:
        """Rows that were scored."""
        return [r for r in self.rows if "error" not in r]

    @property
    def failed(self) -> list[dict]:
        """Rows that failed, each with its ``error``."""
        return [r for r in self.rows if "error" in r]

    def means(self) -> dict[str, float]:
        """Mean of each metric over the scored pairs (finite values; NaN when none)."""
        means = {}
        for name in self.metrics:
            finite = [r[name] for r in self.scored if math.isfinite(r[name])]
            means[name] = sum(finite) / len(finite) if finite else math.nan
        return means

    def to_json(self) -> dict:
        """JSON-able dict: pairs, means over scored pairs, ``n`` (scored pairs), ``failed``
        (count), ``errors`` (pair → reason) and ``unmatched``."""
        rows = [
            {k: json_number(v) if isinstance(v, float) else v for k, v in r.items()}
            for r in self.rows
        ]
        return {
            "pairs": rows,
            "mean": {k: json_number(v) for k, v in self.means().items()},
            "n": len(self.scored),
            "failed": len(self.failed),
            "errors": {r["pair"]: r["error"] for r in self.failed},
            "unmatched": list(self.unmatched),
        }


def score_folders(
    ref: str | os.PathLike,
    dist: str | os.PathLike,
    metrics: dict[str, Metric],
    *,
    progress: bool = True,
) -> FolderScores:
    """Score every image of ``dist`` against its namesake in ``ref``.

    A pair that cannot be scored (unreadable file, other size, a metric error) is recorded
    with its reason (``"<ExceptionType>: message"``) and the others go on. Raises
    ``ValueError`` when no file of ``dist`` matches one in ``ref``.
    """
    from restorelab.benchmark.pairing import match_folders
    from restorelab.progress import tqdm

    pairs, unmatched = match_folders(dist, ref, labels=("dist", "ref"))
    if not pairs:
        raise ValueError(f"no image of {dist} matches a file name in {ref}")
    result = FolderScores(metrics=list(metrics), unmatched=list(unmatched))
    for key, dist_path, ref_path in tqdm(
        pairs, desc="score", unit="pair", file=sys.stderr, disable=not progress
    ):
        try:
            result.rows.append({"pair": key, **score_pair(ref_path, dist_path, metrics)})
        except PAIR_ERRORS as exc:
            result.rows.append({"pair": key, "error": f"{type(exc).__name__}: {exc}"})
    return result
