"""Curation filters: one registry; each filter is a pure check on decoded pixels.

A filter is ``fn(pixels, threshold) -> reason or None`` with ``pixels`` RGB ``uint8``
(H, W, 3). Its threshold comes from :class:`~restorelab.curation.pipeline.CurationConfig`
under the filter's name; a threshold of ``None`` switches the filter off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from restorelab.registry import Registry

FilterFn = Callable[[np.ndarray, Any], "str | None"]


@dataclass(frozen=True)
class CurationFilter:
    """A registered filter and what its threshold means."""

    name: str
    fn: FilterFn
    threshold_doc: str


FILTERS: Registry[CurationFilter] = Registry("curation filter")


def register_filter(name: str, *, threshold_doc: str) -> Callable[[FilterFn], FilterFn]:
    """Register ``fn(pixels, threshold) -> reason | None`` as filter ``name``."""

    def decorator(fn: FilterFn) -> FilterFn:
        FILTERS.add(name, CurationFilter(name, fn, threshold_doc))
        return fn

    return decorator


@register_filter("min_side", threshold_doc="smallest allowed short side, pixels")
def min_side(pixels: np.ndarray, threshold: int) -> str | None:
    """Reject images whose shorter side is below ``threshold`` pixels."""
    short = min(pixels.shape[:2])
    if short < threshold:
        return f"too small: short side {short} px < {threshold} px"
    return None


@register_filter("max_aspect", threshold_doc="largest allowed long/short side ratio")
def max_aspect(pixels: np.ndarray, threshold: float) -> str | None:
    """Reject strips and banners whose long/short side ratio exceeds ``threshold``."""
    h, w = pixels.shape[:2]
    ratio = max(h, w) / max(1, min(h, w))
    if ratio > threshold:
        return f"extreme aspect ratio {ratio:.2f} > {threshold}"
    return None
