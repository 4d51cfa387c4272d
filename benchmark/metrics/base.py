"""The metric registry: `create_metric(name, **options)` returns a scorer that knows its direction.

A metric entry is a pure function ``fn(reference, distorted, **options) -> float`` on RGB
``uint8`` (H, W, 3) arrays plus metadata: ``higher_is_better``, a value range and a one-line
``convention`` that is stored beside every score so that numbers stay comparable.

A metric may also name a batched torch implementation (``batch="module:function"``, imported
on first use): :meth:`Metric.batch` scores whole (B, 3, H, W) tensors on any device, with the
same convention and values equal to the per-image path up to float rounding.

No-reference metrics (``no_reference=True``) ignore the reference argument (it may be None).
Metrics whose model or optional package may be absent register a ``check`` hook; it runs when
the metric is created, so a missing package or weight file is reported before any work starts.

Metrics that score a restoration against the *degraded input* rather than the clean image
(``consistency``) register ``for_cell``: in a benchmark run :meth:`Metric.score_cell` gives
them the cell's own degradation (:class:`CellContext`).

Specs: ``create_metric("lpips:net=vgg")`` equals ``create_metric("lpips", net="vgg")``; a
metric's :attr:`Metric.label` (``"lpips:net=vgg"``) names its column in result tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from restorelab.config import parse_spec, spec_label
from restorelab.imageio import check_image
from restorelab.registry import Registry

MetricFn = Callable[..., float]

#: Options that say where or from which folder a metric runs, not what it measures: they are
#: left out of :attr:`Metric.label`.
PLACEMENT_OPTIONS = frozenset({"device", "weights_dir"})


@dataclass(frozen=True)
class CellContext:
    """How the input of one benchmark cell was made, for metrics that re-degrade (consistency).

    ``degradation`` is a registered op or chain with its ``severity``, ``seed`` and optional
    replacement ``levels`` (None when unknown, as for real paired test sets); ``scale`` is
    the ground truth's size over the input's (1 for same-size cells).
    """

    degradation: str | None = None
    severity: int = 0
    seed: int = 0
    levels: tuple | None = None
    scale: int = 1


@dataclass(frozen=True)
class MetricSpec:
    """Metadata of a registered metric."""

    name: str
    fn: MetricFn
    higher_is_better: bool
    convention: str
    value_range: tuple[float, float]
    default_options: dict = field(default_factory=dict)
    no_reference: bool = False
    same_shape: bool = True
    check: Callable[[dict], None] | None = None
    batch: str | None = None
    for_cell: Callable[[dict, CellContext], dict | None] | None = None

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
    no_reference: bool = False,
    same_shape: bool = True,
    check: Callable[[dict], None] | None = None,
    batch: str | None = None,
    for_cell: Callable[[dict, CellContext], dict | None] | None = None,
    **default_options: Any,
) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn(reference, distorted, **options) -> float`` as metric ``name``.

    Parameters
    ----------
    no_reference : bool
        The metric scores ``distorted`` alone; the reference argument is ignored.
    same_shape : bool
        Require reference and distorted of the same shape (False: ``fn`` checks shapes itself).
    check : callable, optional
        ``check(options)`` raises when the metric cannot run here (missing package or weights);
        called by :func:`create_metric`, so it must be cheap and must not load models.
    batch : str, optional
        ``"module:function"`` of a batched torch version, ``function(reference, distorted,
        **options) -> Tensor (B,)`` on float (B, 3, H, W) batches in [0, 1].
    for_cell : callable, optional
        For metrics whose reference is the degraded input: ``for_cell(options, context)``
        returns the options for one benchmark cell (:class:`CellContext`), or None where the
        metric is undefined there (the cell scores NaN). See :meth:`Metric.score_cell`.
    """

    def decorator(fn: MetricFn) -> MetricFn:
        spec = MetricSpec(
            name,
            fn,
            higher_is_better,
            convention,
            value_range,
            dict(default_options),
            no_reference=no_reference,
            same_shape=same_shape,
            check=check,
            batch=batch,
            for_cell=for_cell,
        )
        METRICS.add(name, spec, aliases=aliases)
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
        if spec.check is not None:
            spec.check(self.options)

    name = property(lambda self: self.spec.name)
    higher_is_better = property(lambda self: self.spec.higher_is_better)
    lower_better = property(lambda self: self.spec.lower_better)
    no_reference = property(lambda self: self.spec.no_reference)

    @property
    def label(self) -> str:
        """The name plus the options that differ from the defaults (placement left out), e.g.
        ``"lpips:net=vgg"``: the metric's column in result tables."""
        return spec_label(
            self.name, self.options, self.spec.default_options, ignore=PLACEMENT_OPTIONS
        )

    @property
    def convention(self) -> str:
        """The convention string, with the bound options appended."""
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.spec.convention}" + (f"; {opts}" if opts else "")

    def __call__(self, reference: np.ndarray | None, distorted: np.ndarray) -> float:
        check_image(distorted, name="distorted")
        if self.spec.no_reference:
            return float(self.spec.fn(None, distorted, **self.options))
        if reference is None:
            raise ValueError(f"{self.name} is a full-reference metric; reference is None")
        check_image(reference, name="reference")
        if self.spec.same_shape and reference.shape != distorted.shape:
            raise ValueError(
                f"{self.name}: reference {reference.shape} and distorted {distorted.shape} "
                "must have the same shape"
            )
        return float(self.spec.fn(reference, distorted, **self.options))

    def score_cell(
        self,
        clean: np.ndarray,
        degraded_input: np.ndarray,
        output: np.ndarray,
        context: CellContext,
    ) -> float:
        """Score ``output`` (a restoration, or the input itself) in one benchmark cell.

        Most metrics compare it with ``clean``. Metrics registered with ``for_cell``
        (consistency) compare it with ``degraded_input`` (the input at its own size), using
        the cell's degradation from ``context``; NaN where that is undefined.
        """
        if self.spec.for_cell is None:
            return self(clean, output)
        options = self.spec.for_cell(self.options, context)
        if options is None:
            return math.nan
        return Metric(self.spec, options)(degraded_input, output)

    @property
    def has_batch(self) -> bool:
        """Whether :meth:`batch` is available (a torch implementation is registered)."""
        return self.spec.batch is not None

    def batch(self, reference: Any, distorted: Any) -> Any:
        """Score whole batches: (B, 3, H, W) torch tensors → (B,) float64 tensor.

        Tensors are ``uint8`` (0-255, as the per-image path) or floating point in [0, 1], on
        any device (the computation runs there). Raises ``NotImplementedError`` for metrics
        without a torch implementation (see :attr:`has_batch`).
        """
        import importlib

        import torch

        if self.spec.batch is None:
            raise NotImplementedError(f"metric {self.name!r} has no batched implementation")
        distorted = _unit_batch(distorted, "distorted")
        if self.spec.no_reference:
            reference = None
        else:
            reference = _unit_batch(reference, "reference")
            if reference.shape != distorted.shape:
                raise ValueError(
                    f"{self.name}: reference {tuple(reference.shape)} and distorted "
                    f"{tuple(distorted.shape)} must have the same shape"
                )
        module, _, function = self.spec.batch.partition(":")
        fn = getattr(importlib.import_module(module), function)
        with torch.inference_mode():
            return fn(reference, distorted, **self.options).double()

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.options})"


def _unit_batch(batch: Any, name: str) -> Any:
    """A (B, 3, H, W) tensor as float in [0, 1] (``uint8`` divided by 255, floats as given)."""
    import torch

    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, 3, H, W), got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(batch.shape)}")
    if batch.dtype == torch.uint8:
        return batch.double() / 255.0
    if not batch.is_floating_point():
        raise ValueError(f"{name} must be uint8 or floating point, got {batch.dtype}")
    return batch


def create_metric(name: str, **options: Any) -> Metric:
    """The metric registered as ``name``, bound to ``options`` (e.g. ``crop_border=4``).

    ``name`` may carry options as a spec, ``"name:key=value,..."`` (values parsed as YAML
    scalars); keyword ``options`` override those.
    """
    base, spec_options = parse_spec(name) if ":" in name else (name, {})
    return Metric(METRICS.get(base), {**spec_options, **options})


def list_metrics() -> list[str]:
    """Names of all registered metrics."""
    return METRICS.names()
