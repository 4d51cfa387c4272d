"""Curation filters: one registry of named thresholds on the quality signals.

A filter compares one signal of :func:`restorelab.curation.signals.compute_signals` with a
threshold: the image passes when ``signal op threshold`` holds. The threshold comes from the
config (``filters: {name: value}``); ``null`` switches a filter off; an image without the
signal (e.g. ``jpeg_quality`` of a PNG) passes. Each rejection reason starts with the
filter's label ("blurry: ...") so reports can count reasons.

Defaults suit SDXL training data (short side ≥ 1024 px); the signal thresholds and their
rationale live in :data:`restorelab.curation.signals.SIGNAL_DEFAULT_THRESHOLDS`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from restorelab.curation.signals import SIGNAL_DEFAULT_THRESHOLDS
from restorelab.registry import Registry

_PASSES = {">=": operator.ge, "<=": operator.le, "==": operator.eq}
_FAILS = {">=": "<", "<=": ">", "==": "!="}


@dataclass(frozen=True)
class CurationFilter:
    """A named threshold on one signal; ``label`` starts every rejection reason it gives."""

    name: str
    signal: str
    op: str
    default: Any
    label: str
    doc: str

    def check(self, signals: Mapping[str, Any], threshold: Any) -> str | None:
        """The rejection reason, or None when the image passes (or lacks the signal)."""
        value = signals.get(self.signal)
        if threshold is None or value is None or _PASSES[self.op](value, threshold):
            return None
        if self.op == "==":
            return f"{self.label}: {self.signal} is {value}"
        return f"{self.label}: {self.signal} {_fmt(value)} {_FAILS[self.op]} {_fmt(threshold)}"


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


FILTERS: Registry[CurationFilter] = Registry("curation filter")


def register_filter(
    name: str, *, signal: str, op: str, default: Any, label: str, doc: str
) -> CurationFilter:
    """Register a filter ``signal op threshold`` under ``name``."""
    if op not in _PASSES:
        raise ValueError(f"filter {name!r}: op must be one of {sorted(_PASSES)}, got {op!r}")
    return FILTERS.add(name, CurationFilter(name, signal, op, default, label, doc))


def default_thresholds() -> dict[str, Any]:
    """Every registered filter's default threshold."""
    return {name: FILTERS.get(name).default for name in FILTERS}


register_filter(
    "min_side",
    signal="short_side",
    op=">=",
    default=1024,
    label="too small",
    doc="shortest side in pixels (SDXL trains at 1024 px)",
)
register_filter(
    "max_aspect",
    signal="aspect",
    op="<=",
    default=4.0,
    label="extreme aspect ratio",
    doc="long side / short side",
)

_LABELS = {
    "min_sharpness": "blurry",
    "max_noise_sigma": "noisy",
    "min_jpeg_quality": "compressed",
    "max_clipped_dark": "clipped shadows",
    "max_clipped_bright": "clipped highlights",
    "min_entropy": "low information",
    "reject_grayscale": "grayscale",
}
for _name, _threshold in SIGNAL_DEFAULT_THRESHOLDS.items():
    register_filter(
        _name,
        signal=_threshold.signal,
        op=_threshold.op,
        default=_threshold.value,
        label=_LABELS.get(_name, _name),
        doc=_threshold.rationale,
    )
