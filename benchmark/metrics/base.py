"""The metric registry: `create_metric(name, **options)` returns a scorer that knows its direction.

A metric entry is a pure function ``fn(reference, distorted, **options) -> float`` on RGB
``uint8`` (H, W, 3) arrays plus metadata: ``higher_is_better``, a value range and a one-line
``convention`` that is stored beside every score so that numbers stay comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from restorelab.imageio import check_image
from restorelab.registry import Registry

MetricFn = Callable[..., float]


@dataclass(frozen=True)
class MetricSpec:
    """Metadata of a registered metric."""

    name: str
    fn: MetricFn
    higher_is_better: bool
    convention: str
    value_range: tuple[float, float]
    default_options: dict = field(default_factory=dict)

    @property
    def lower_better(self) -> bool:
        """pyiqa's spelling of ``not higher_is_better``."""
        return not self.higher_is_better


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    convention: str,
    value_range: tuple[float, float],
    aliases: tuple[str, ...] = (),
    **default_options: Any,
) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn(reference, distorted, **options) -> float`` as metric ``name``."""

    def decorator(fn: MetricFn) -> MetricFn:
        METRICS.add(
            name,
            MetricSpec(name, fn, higher_is_better, convention, value_range, dict(default_options)),
            aliases=aliases,
        )
        return fn

    return decorator


class Metric:
    """A metric bound to its options; call it as ``metric(reference, distorted) -> float``."""

    def __init__(self, spec: MetricSpec, options: dict) -> None:
        unknown = sorted(set(options) - set(spec.default_options))
        if unknown:
            valid = ", ".join(sorted(spec.default_options)) or "none"
            raise ValueError(f"metric {spec.name!r}: unknown option(s) {unknown}; valid: {valid}")
        self.spec = spec
        self.options = {**spec.default_options, **options}

    name = property(lambda self: self.spec.name)
    higher_is_better = property(lambda self: self.spec.higher_is_better)
    lower_better = property(lambda self: self.spec.lower_better)

    @property
    def convention(self) -> str:
        """The convention string, with the bound options appended."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.spec.convention}" + (f"; {opts}" if opts else "")

    def __call__(self, reference: np.ndarray, distorted: np.ndarray) -> float:
        check_image(reference, name="reference")
        check_image(distorted, name="distorted")
        if reference.shape != distorted.shape:
            raise ValueError(
                f"{self.name}: reference {reference.shape} and distorted {distorted.shape} "
                "must have the same shape"
            )
        return float(self.spec.fn(reference, distorted, **self.options))

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.options})"


def create_metric(name: str, **options: Any) -> Metric:
    """The metric registered as ``name``, bound to ``options`` (e.g. ``crop_border=4``)."""
    return Metric(METRICS.get(name), options)


def list_metrics() -> list[str]:
    """Names of all registered metrics."""
    return METRICS.names()
