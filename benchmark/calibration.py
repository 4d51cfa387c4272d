"""Calibration: how much each op × severity degrades real photos, and PSNR-matched severities.

:func:`calibrate` measures the mean PSNR and SSIM of degraded against clean images for every
cell of a grid. :func:`match_levels` finds, per op, the parameter values whose mean PSNR hits
given targets (e.g. 30, 27, 24, 21, 18, 15 dB), so that "severity 3" means the same loss of
fidelity for blur as for noise or JPEG. It searches a *fractional severity* ``t`` in
``[0, n_levels]`` whose level interpolates the op's table linearly between neighbouring
entries (component-wise for tuple levels; below 1 it extrapolates toward milder levels; ops
truncate components they need as integers, e.g. the JPEG quality), by bisection on the
measured mean PSNR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from restorelab.benchmark.metrics import create_metric
from restorelab.degradations.base import apply_level, degrade_with_params, get_degradation
from restorelab.degradations.grid import Grid


def interpolate_level(name: str, t: float) -> float | tuple:
    """The level of op ``name`` at fractional severity ``t`` (0 ≤ t ≤ number of levels).

    Integer ``t`` ≥ 1 gives the table entry itself; in between, each component is
    interpolated linearly (``levels[k - 1] → levels[k]``). Below 1 the first step of the
    table is extrapolated toward milder levels (t = 0 is one table step milder than level 1),
    each component kept positive.
    """
    levels = get_degradation(name).levels
    if not 0 <= t <= len(levels):
        raise ValueError(f"{name}: fractional severity {t} outside 0..{len(levels)}")
    if t < 1:
        if len(levels) < 2:
            raise ValueError(f"{name}: a one-level table cannot be extrapolated below 1")
        a, b = levels[0], levels[1]
        frac = t - 1  # negative: step back from level 1, away from level 2
    else:
        low = math.floor(t)
        frac = t - low
        if frac == 0:
            return levels[low - 1]
        a, b = levels[low - 1], levels[low]
    if isinstance(a, (tuple, list)):
        return tuple(_lerp(x, y, frac) for x, y in zip(a, b, strict=True))
    if isinstance(a, str):
        raise ValueError(f"{name}: levels are not numeric ({a!r}); it cannot be interpolated")
    return _lerp(a, b, frac)


def _lerp(a: float, b: float, frac: float) -> float:
    value = float(a) + (float(b) - float(a)) * frac
    if frac < 0:  # extrapolating below level 1: stay positive (σ, radius, amount, quality ...)
        value = max(value, 0.25 * min(abs(float(a)), abs(float(b))))
    return round(value, 6)


def _mean_psnr(images: Sequence[np.ndarray], name: str, level, seeds: Sequence[int]) -> float:
    psnr = create_metric("psnr")
    values = [psnr(img, apply_level(img, name, level, s).image) for img in images for s in seeds]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.inf


def calibrate(
    images: Sequence[np.ndarray],
    grid: Grid,
    *,
    metrics: Sequence[str] = ("psnr", "ssim"),
    progress: bool = True,
) -> pd.DataFrame:
    """Mean fidelity of degraded vs clean images for every (degradation, severity) of ``grid``.

    Returns one row per (degradation, severity) with ``<metric>_mean``, ``<metric>_std``
    and ``n`` (images × seeds); SSIM also as ``ssim_drop = 1 - ssim_mean``.
    """
    scorers = {m: create_metric(m) for m in metrics}
    rows: dict[tuple[str, int], dict[str, list[float]]] = {}
    cells = list(grid.cells())
    for name, severity, seed in tqdm(cells, desc="calibrate", unit="cell", disable=not progress):
        bucket = rows.setdefault((name, severity), {m: [] for m in metrics})
        for image in images:
            degraded = degrade_with_params(
                image, name, severity, seed, levels=grid.levels_for(name)
            ).image
            for metric, scorer in scorers.items():
                bucket[metric].append(scorer(image, degraded))
    table = []
    for (name, severity), values in rows.items():
        row: dict = {"degradation": name, "severity": severity}
        for metric, vals in values.items():
            finite = np.array([v for v in vals if math.isfinite(v)], dtype=float)
            row[f"{metric}_mean"] = float(finite.mean()) if finite.size else math.inf
            row[f"{metric}_std"] = float(finite.std()) if finite.size else 0.0
            row["n"] = len(vals)
        if "ssim_mean" in row:
            row["ssim_drop"] = 1.0 - row["ssim_mean"]
        table.append(row)
    return pd.DataFrame(table)


@dataclass(frozen=True)
class MatchedLevel:
    """One PSNR-matched level of an op."""

    target_psnr: float
    severity: float
    level: float | tuple
    psnr: float
    reachable: bool


def match_levels(
    images: Sequence[np.ndarray],
    name: str,
    targets: Sequence[float],
    *,
    seeds: Sequence[int] = (0,),
    iterations: int = 14,
) -> list[MatchedLevel]:
    """Per target PSNR (dB), the fractional severity and level of ``name`` that reaches it.

    Bisection over ``t`` in ``[0, n_levels]`` (see :func:`interpolate_level`) assuming the
    mean PSNR falls with ``t``. A target above the PSNR at ``t = 0`` or below that of the last
    level is not reachable: the end level is returned with ``reachable=False``.
    """
    op = get_degradation(name)
    n = len(op.levels)
    cache: dict[float, float] = {}

    def psnr_at(t: float) -> float:
        if t not in cache:
            cache[t] = _mean_psnr(images, name, interpolate_level(name, t), seeds)
        return cache[t]

    matched = []
    for target in targets:
        if psnr_at(0.0) <= target:
            level = interpolate_level(name, 0.0)
            matched.append(MatchedLevel(target, 0.0, level, psnr_at(0.0), False))
            continue
        if psnr_at(float(n)) > target:
            matched.append(MatchedLevel(target, float(n), op.levels[-1], psnr_at(float(n)), False))
            continue
        low, high = 0.0, float(n)  # psnr(low) > target >= psnr(high)
        for _ in range(iterations):
            mid = round((low + high) / 2, 6)
            if psnr_at(mid) > target:
                low = mid
            else:
                high = mid
        best = min((low, high), key=lambda t: abs(psnr_at(t) - target))
        matched.append(
            MatchedLevel(target, best, interpolate_level(name, best), psnr_at(best), True)
        )
    return matched


def matched_grid(
    images: Sequence[np.ndarray],
    grid: Grid,
    targets: Sequence[float],
    *,
    progress: bool = True,
) -> tuple[Grid, pd.DataFrame]:
    """A copy of ``grid`` whose severities 1..len(targets) hit the target PSNRs for every op.

    Returns the new grid (``levels`` overrides, chains dropped) and a table of what was
    matched: degradation, severity, target, achieved PSNR, fractional severity, level,
    reachable.
    """
    levels: dict[str, list] = {}
    report = []
    for name in tqdm(grid.degradations, desc="match", unit="op", disable=not progress):
        found = match_levels(images, name, targets, seeds=grid.seeds)
        levels[name] = [list(m.level) if isinstance(m.level, tuple) else m.level for m in found]
        for index, m in enumerate(found, start=1):
            report.append(
                {
                    "degradation": name,
                    "severity": index,
                    "target_psnr": m.target_psnr,
                    "psnr": m.psnr,
                    "fractional_severity": m.severity,
                    "level": str(m.level),
                    "reachable": m.reachable,
                }
            )
    new = Grid(
        name=f"{grid.name}-matched",
        degradations=list(grid.degradations),
        severities=list(range(1, len(targets) + 1)),
        seeds=list(grid.seeds),
        levels=levels,
        description=f"{grid.name} with per-op levels matched to mean PSNR targets "
        f"{list(targets)} dB",
    )
    return new, pd.DataFrame(report)
