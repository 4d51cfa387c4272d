"""Calibration: how much each op × severity degrades real photos, and PSNR-matched severities.

:func:`calibrate` measures the mean PSNR and SSIM of degraded against clean images for every
cell of a grid. :func:`match_levels` finds, per op, the parameter values whose mean PSNR hits
given targets (e.g. 30, 27, 24, 21, 18, 15 dB), so that "severity 3" means the same loss of
fidelity for blur as for noise or JPEG. It searches a *fractional severity* ``t`` in
``[0, n_levels]`` by bisection on the measured mean PSNR:

* ``t ≥ 1`` interpolates the op's table linearly between neighbouring entries (component-wise
  for tuple levels; ops truncate components they need as integers, e.g. the JPEG quality);
* ``0 ≤ t < 1`` interpolates from the op's *identity* (:data:`IDENTITY_LEVELS`: σ = 0,
  quality 100, scale 1, ...; for shot noise 1/photons → 0) toward level 1, so mild targets
  are reachable wherever the op allows. Ops without an identity entry extrapolate the first
  table step instead.

A target counts as *reachable* only when the achieved mean PSNR lies within ``tolerance_db``
(default ±0.25 dB) of it. For step-function ops (defocus blur below a radius of about 2.5 px,
JPEG quality) a missed target reports the achievable neighbours on both sides. A matched grid
never repeats a level within an op: :func:`matched_grid` refuses (:class:`RepeatedLevelError`)
or, with ``on_repeat="drop"``, leaves such ops out and says so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from restorelab.benchmark.metrics import create_metric
from restorelab.degradations.base import apply_level, degrade_with_params, get_degradation
from restorelab.degradations.grid import Grid
from restorelab.progress import tqdm

#: Level of each op that leaves an image (nearly) unchanged: the ``t = 0`` end of the fractional
#: severities below 1. ``None`` in a tuple keeps that component of level 1 (e.g. the defocus
#: anti-aliasing σ). JPEG quality 100 is as mild as the op gets; glass blur has no identity.
IDENTITY_LEVELS: dict[str, object] = {
    "gaussian_blur": 0.0,
    "defocus_blur": (0.0, None),
    "motion_blur": (0.0, 0.0),
    "zoom_blur": (1.0, None),
    "gaussian_noise": 0.0,
    "speckle_noise": 0.0,
    "impulse_noise": 0.0,
    "shot_noise": math.inf,
    "jpeg_compression": 100,
    "pixelate": 1.0,
}

#: Ops whose level is interpolated in reciprocal (1/photons for shot noise: noise variance
#: grows with 1/photons, so the identity is 1/photons = 0).
RECIPROCAL_OPS = frozenset({"shot_noise"})

#: Default tolerance of "reachable", dB.
DEFAULT_TOLERANCE_DB = 0.25


def has_identity(name: str) -> bool:
    """Whether fractional severities of ``name`` below 1 interpolate toward an identity."""
    return name in IDENTITY_LEVELS


def interpolate_level(name: str, t: float) -> float | tuple:
    """The level of op ``name`` at fractional severity ``t`` (0 ≤ t ≤ number of levels).

    Integer ``t`` ≥ 1 gives the table entry itself; in between, each component is
    interpolated linearly (``levels[k - 1] → levels[k]``). Below 1 the level moves from the
    op's identity (:data:`IDENTITY_LEVELS`, ``t = 0``) to level 1 (``t = 1``); for
    :data:`RECIPROCAL_OPS` linearly in 1/level. Ops without an identity extrapolate the first
    table step instead (``t = 0`` is one step milder than level 1, each component kept
    positive).
    """
    levels = get_degradation(name).levels
    if not 0 <= t <= len(levels):
        raise ValueError(f"{name}: fractional severity {t} outside 0..{len(levels)}")
    if t < 1 and name in IDENTITY_LEVELS:
        return _toward_identity(name, levels[0], t)
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


def _toward_identity(name: str, first: object, t: float) -> float | tuple:
    identity = IDENTITY_LEVELS[name]
    if name in RECIPROCAL_OPS:  # 1/level goes linearly from 0 (identity) to 1/first
        return math.inf if t == 0 else round(float(first) / t, 6)
    if isinstance(first, (tuple, list)):
        return tuple(
            float(y) if x is None else round(float(x) + (float(y) - float(x)) * t, 6)
            for x, y in zip(identity, first, strict=True)
        )
    return round(float(identity) + (float(first) - float(identity)) * t, 6)


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
    """One PSNR-matched level of an op.

    ``reachable`` is True when ``psnr`` lies within the tolerance of ``target_psnr``.
    ``neighbours`` are the achievable (fractional severity, level, mean PSNR) on each side of
    a missed target (the milder one first), ``note`` says why a target was missed.
    """

    target_psnr: float
    severity: float
    level: float | tuple
    psnr: float
    reachable: bool
    neighbours: tuple = ()
    note: str = ""


def _db(value: float) -> str:
    return f"{value:.2f} dB" if math.isfinite(value) else "no change (∞ dB)"


def _fmt_level(level: object) -> str:
    if isinstance(level, tuple):
        return "(" + ", ".join(f"{v:g}" for v in level) + ")"
    return f"{level:g}" if isinstance(level, (int, float)) else str(level)


def match_levels(
    images: Sequence[np.ndarray],
    name: str,
    targets: Sequence[float],
    *,
    seeds: Sequence[int] = (0,),
    iterations: int = 16,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
) -> list[MatchedLevel]:
    """Per target PSNR (dB), the fractional severity and level of ``name`` that reaches it.

    Bisection over ``t`` in ``[0, n_levels]`` (see :func:`interpolate_level`) assuming the
    mean PSNR falls with ``t``; ``t = 0`` is the identity (infinite PSNR) for ops listed in
    :data:`IDENTITY_LEVELS`. The best level found is returned; it is ``reachable`` only when
    its mean PSNR is within ``tolerance_db`` of the target. A missed target (step-function
    op, or beyond the op's range) carries the achievable neighbours and a note.
    """
    if not tolerance_db > 0:
        raise ValueError(f"tolerance_db must be > 0, got {tolerance_db!r}")
    op = get_degradation(name)
    n = len(op.levels)
    cache: dict[float, float] = {}

    def psnr_at(t: float) -> float:
        if t not in cache:
            if t == 0 and has_identity(name):
                cache[t] = math.inf
            else:
                cache[t] = _mean_psnr(images, name, interpolate_level(name, t), seeds)
        return cache[t]

    def entry(t: float) -> tuple:
        return (t, interpolate_level(name, t), psnr_at(t))

    def effective(t: float) -> str:  # the op's own parameters at t (ints where it truncates)
        level = interpolate_level(name, t)
        if t == 0 and has_identity(name):
            return "identity"
        params = apply_level(images[0], name, level, seeds[0]).params
        shown = {k: v for k, v in params.items() if k not in ("name", "seed", "level")}
        text = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
        )
        return text or f"level {_fmt_level(level)}"

    matched = []
    for target in targets:
        if psnr_at(0.0) <= target:
            note = (
                f"{name} cannot be milder than {psnr_at(0.0):.2f} dB "
                f"(level {_fmt_level(interpolate_level(name, 0.0))})"
            )
            matched.append(
                MatchedLevel(target, 0.0, interpolate_level(name, 0.0), psnr_at(0.0), False,
                             (entry(0.0),), note)
            )  # fmt: skip
            continue
        if psnr_at(float(n)) > target:
            note = f"{name} at its last level still gives {psnr_at(float(n)):.2f} dB"
            matched.append(
                MatchedLevel(target, float(n), op.levels[-1], psnr_at(float(n)), False,
                             (entry(float(n)),), note)
            )  # fmt: skip
            continue
        low, high = 0.0, float(n)  # psnr(low) > target >= psnr(high)
        for _ in range(iterations):
            mid = round((low + high) / 2, 6)
            if mid in (low, high):
                break
            if psnr_at(mid) > target:
                low = mid
            else:
                high = mid
        candidates = [t for t in (low, high) if math.isfinite(psnr_at(t))]
        best = min(candidates, key=lambda t: abs(psnr_at(t) - target))
        reachable = abs(psnr_at(best) - target) <= tolerance_db
        neighbours, note = (), ""
        if not reachable:
            neighbours = (entry(low), entry(high))
            note = (
                f"{name} jumps from {_db(psnr_at(low))} ({effective(low)}) to "
                f"{psnr_at(high):.2f} dB ({effective(high)}) at t ≈ {high:.3f}: "
                f"{target:g} dB is not reachable within ±{tolerance_db:g} dB"
            )
        matched.append(
            MatchedLevel(target, best, interpolate_level(name, best), psnr_at(best), reachable,
                         neighbours, note)
        )  # fmt: skip
    return matched


class RepeatedLevelError(ValueError):
    """A matched grid would repeat a level within an op; ``report`` is the matching table."""

    def __init__(self, message: str, report: pd.DataFrame) -> None:
        super().__init__(message)
        self.report = report


def _repeats(found: Sequence[MatchedLevel]) -> dict[int, int]:
    """Severity (1-based) → the earlier severity it repeats (same level or same mean PSNR)."""
    repeats = {}
    for i, m in enumerate(found):
        for j in range(i):
            same_level = _fmt_level(m.level) == _fmt_level(found[j].level)
            same_psnr = math.isfinite(m.psnr) and m.psnr == found[j].psnr
            if same_level or same_psnr:
                repeats[i + 1] = j + 1
                break
    return repeats


def matched_grid(
    images: Sequence[np.ndarray],
    grid: Grid,
    targets: Sequence[float],
    *,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
    on_repeat: str = "refuse",
    progress: bool = True,
) -> tuple[Grid, pd.DataFrame]:
    """A copy of ``grid`` whose severities 1..len(targets) hit the target PSNRs for every op.

    Parameters
    ----------
    images : sequence of arrays
        Clean images (uint8 RGB).
    grid : Grid
        Its single ops are matched (chains are dropped).
    targets : sequence of float
        Target mean PSNRs in dB, one per severity, mildest first (strictly decreasing).
    tolerance_db : float
        A target is reachable when the achieved mean PSNR is within ± this (dB).
    on_repeat : {"refuse", "drop"}
        When two severities of an op come out as the same degradation (same level, or the
        same mean PSNR: a step-function op): raise :class:`RepeatedLevelError` naming them
        ("refuse"), or leave that op out of the grid ("drop", recorded in the table).

    Returns
    -------
    (Grid, DataFrame)
        The new grid (``levels`` overrides) and a table of what was matched: degradation,
        severity, target_psnr, psnr, fractional_severity, level, reachable, milder_psnr and
        harsher_psnr (the achievable mean PSNRs either side of a missed target, NaN otherwise),
        repeats (the earlier severity it repeats, 0 if none), in_grid, note.
    """
    if on_repeat not in ("refuse", "drop"):
        raise ValueError(f"on_repeat must be 'refuse' or 'drop', got {on_repeat!r}")
    targets = [float(t) for t in targets]
    if not targets:
        raise ValueError("give at least one target PSNR")
    if any(b >= a for a, b in itertools.pairwise(targets)):
        raise ValueError(f"targets must fall strictly (mildest first), got {targets}")
    levels: dict[str, list] = {}
    report = []
    repeated: dict[str, dict[int, int]] = {}
    for name in tqdm(grid.degradations, desc="match", unit="op", disable=not progress):
        found = match_levels(images, name, targets, seeds=grid.seeds, tolerance_db=tolerance_db)
        repeats = _repeats(found)
        if repeats:
            repeated[name] = repeats
        if not repeats or on_repeat == "refuse":
            levels[name] = [list(m.level) if isinstance(m.level, tuple) else m.level for m in found]
        for index, m in enumerate(found, start=1):
            note = m.note
            if index in repeats:
                note = (
                    note + "; " if note else ""
                ) + f"same degradation as severity {repeats[index]}"
            report.append(
                {
                    "degradation": name,
                    "severity": index,
                    "target_psnr": m.target_psnr,
                    "psnr": m.psnr,
                    "fractional_severity": m.severity,
                    "level": _fmt_level(m.level),
                    "reachable": m.reachable,
                    "milder_psnr": m.neighbours[0][2] if m.neighbours else math.nan,
                    "harsher_psnr": m.neighbours[-1][2] if len(m.neighbours) > 1 else math.nan,
                    "repeats": repeats.get(index, 0),
                    "in_grid": not (repeats and on_repeat == "drop"),
                    "note": note,
                }
            )
    table = pd.DataFrame(report)
    if repeated and on_repeat == "refuse":
        details = "; ".join(
            f"{name}: " + ", ".join(f"severity {s} = severity {r}" for s, r in reps.items())
            for name, reps in repeated.items()
        )
        raise RepeatedLevelError(
            f"the matched grid would repeat levels ({details}): these ops cannot tell the "
            "targets apart. Use targets farther apart, or drop those ops "
            "(restorelab degrade calibrate ... --on-repeat drop)",
            table,
        )
    kept = [name for name in grid.degradations if name in levels]
    if not kept:
        raise RepeatedLevelError("every op repeats a level; no matched grid is left", table)
    dropped = sorted(repeated) if on_repeat == "drop" else []
    new = Grid(
        name=f"{grid.name}-matched",
        degradations=kept,
        severities=list(range(1, len(targets) + 1)),
        seeds=list(grid.seeds),
        levels=levels,
        description=f"{grid.name} with per-op levels matched to mean PSNR targets "
        f"{targets} dB (±{tolerance_db:g} dB)"
        + (f"; dropped for repeated levels: {', '.join(dropped)}" if dropped else ""),
    )
    return new, table
