"""Curation filters: one registry of named thresholds on the quality signals.

A filter compares one signal of :func:`restorelab.curation.signals.compute_signals` with a
threshold: the image passes when ``signal op threshold`` holds. The threshold comes from the
config (``filters: {name: value}``); ``null`` switches a filter off; an image without the
signal (e.g. ``jpeg_quality`` of a PNG) passes. Each rejection reason starts with the
filter's label ("blurry: ...") so reports can count reasons.

A filter's ``kind`` says what its config value is: ``"int"`` or ``"float"`` (a finite number
in ``[minimum, maximum]``) or ``"flag"`` (``true`` switches the filter on: the image must
have ``signal == default``; ``false`` or ``null`` switches it off).

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
    kind: str = "float"
    minimum: float | None = None
    maximum: float | None = None

    @property
    def config_default(self) -> Any:
        """The default value as a config file writes it (``true`` for an on flag)."""
        return True if self.kind == "flag" else self.default

    def allowed(self) -> str:
        """The values the config accepts, in words (for errors and ``--help-config``)."""
        if self.kind == "flag":
            return "true (on) or false / null (off)"
        what = "an integer" if self.kind == "int" else "a number"
        bounds = []
        if self.minimum is not None:
            bounds.append(f">= {_fmt(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"<= {_fmt(self.maximum)}")
        return f"{what} {' and '.join(bounds)} or null (off)".replace("  ", " ")

    def threshold(self, config_value: Any) -> Any:
        """The threshold :meth:`check` compares with for a config value (None: filter off)."""
        if self.kind == "flag":
            return self.default if config_value is True else None
        return config_value

    def check(self, signals: Mapping[str, Any], threshold: Any) -> str | None:
        """The rejection reason, or None when the image passes (or lacks the signal).

        ``threshold`` is the compared value (see :meth:`threshold`), not the config value.
        """
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
    name: str,
    *,
    signal: str,
    op: str,
    default: Any,
    label: str,
    doc: str,
    kind: str = "float",
    minimum: float | None = None,
    maximum: float | None = None,
) -> CurationFilter:
    """Register a filter ``signal op threshold`` under ``name`` (see the module docstring for
    ``kind``, ``minimum`` and ``maximum``)."""
    if op not in _PASSES:
        raise ValueError(f"filter {name!r}: op must be one of {sorted(_PASSES)}, got {op!r}")
    if kind not in ("int", "float", "flag"):
        raise ValueError(f"filter {name!r}: kind must be int, float or flag, got {kind!r}")
    entry = CurationFilter(name, signal, op, default, label, doc, kind, minimum, maximum)
    return FILTERS.add(name, entry)


def default_thresholds() -> dict[str, Any]:
    """Every registered filter's default config value (``true`` for flags that are on)."""
    return {name: FILTERS.get(name).config_default for name in FILTERS}


register_filter(
    "min_side",
    signal="short_side",
    op=">=",
    default=1024,
    label="too small",
    doc="shortest side in pixels (SDXL trains at 1024 px)",
    kind="int",
    minimum=1,
)
register_filter(
    "max_aspect",
    signal="aspect",
    op="<=",
    default=4.0,
    label="extreme aspect ratio",
    doc="long side / short side",
    minimum=1,
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
#: Config value kind and range of each signal filter: (kind, minimum, maximum).
_RANGES: dict[str, tuple[str, float | None, float | None]] = {
    "min_sharpness": ("float", 0, None),
    "max_noise_sigma": ("float", 0, None),
    "min_jpeg_quality": ("int", 1, 100),
    "max_clipped_dark": ("float", 0, 1),
    "max_clipped_bright": ("float", 0, 1),
    "min_entropy": ("float", 0, 8),
    "reject_grayscale": ("flag", None, None),
}
for _name, _threshold in SIGNAL_DEFAULT_THRESHOLDS.items():
    _kind, _low, _high = _RANGES.get(_name, ("float", None, None))
    register_filter(
        _name,
        signal=_threshold.signal,
        op=_threshold.op,
        default=_threshold.value,
        label=_LABELS.get(_name, _name),
        doc=_threshold.rationale,
        kind=_kind,
        minimum=_low,
        maximum=_high,
    )
