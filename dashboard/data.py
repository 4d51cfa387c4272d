"""Pure data functions behind the dashboard (no Streamlit here, so they are testable).

Runs are read with :func:`restorelab.results.load_results` and every statistic comes from
:mod:`restorelab.benchmark.stats` (bootstrap intervals, paired comparisons, breakdown
severities), so the dashboard shows the numbers ``restorelab report`` prints. The functions
here only select rows, call those functions and reshape their tables for display.

Conventions: a *cell* is (image_id, degradation, severity, seed); the degraded input is shown
as a pseudo-restorer :data:`INPUT_LABEL`; *gain* is restored − input, sign-flipped for
lower-is-better metrics so that a positive gain always means the restorer helped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from inspect import signature
from pathlib import Path

import numpy as np
import pandas as pd

from restorelab.benchmark.stats import (
    available_metrics,
    breakdown_severity,
    paired_comparison,
    resolve_directions,
    summary_table,
)
from restorelab.results import RESULTS_DIR, RUN_FILE, ResultsStore, read_run_info

#: Label of the pseudo-restorer that stands for the degraded input itself.
INPUT_LABEL = "(degraded input)"

#: Severities at or above this level are "extreme" (shaded on curves, a failure-page filter).
EXTREME_FROM = 6

#: Columns that identify one cell.
CELL = ["image_id", "degradation", "severity", "seed"]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns present in a results table (those that also have an ``input_`` twin)."""
    return available_metrics(frame)


def natural_key(text: str) -> list:
    """Sort key that orders numbers inside names by value (``blur:2`` before ``blur:10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


# --- finding and loading runs -----------------------------------------------------------------
def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run folder (it has ``run.json`` or a ``results/`` folder)."""
    path = Path(path)
    return (path / RUN_FILE).is_file() or (path / RESULTS_DIR).is_dir()


def discover_runs(paths: Iterable[str | os.PathLike], max_depth: int = 2) -> list[Path]:
    """Run folders among ``paths``: each path that is a run, else the runs below it.

    A folder that holds runs (such as the demo's ``--out``, which holds ``run/``) is searched
    ``max_depth`` levels down. Order: as given, runs below one folder sorted by name;
    duplicates dropped.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.is_dir():
            continue
        if is_run_dir(path):
            found.append(path)
            continue
        level = [path]
        for _ in range(max_depth):
            below = []
            for folder in level:
                try:
                    children = sorted(p for p in folder.iterdir() if p.is_dir())
                except OSError:
                    continue
                for child in children:
                    if child.name.startswith("."):
                        continue
                    (found if is_run_dir(child) else below).append(child)
            level = below
    return list(dict.fromkeys(found))


def run_fingerprint(run_dir: str | os.PathLike) -> str:
    """A short hash of what the run's tables depend on: its part files and ``run.json``.

    Changes whenever a part is added, replaced or removed, or ``run.json`` is rewritten; the
    dashboard caches every table under this key.
    """
    run_dir = Path(run_dir)
    entries = []
    for path in [run_dir / RUN_FILE, *ResultsStore(run_dir).part_files()]:
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256(f"{run_dir}|{'|'.join(entries)}".encode()).hexdigest()[:16]


@dataclass
class RunData:
    """One run folder as the dashboard sees it."""

    path: Path
    frame: pd.DataFrame  # rows without errors
    errors: pd.DataFrame  # rows whose degradation, restorer or metric failed
    info: dict
    problems: list[str] = field(default_factory=list)  # damaged parts, bad run.json, ...

    @property
    def name(self) -> str:
        return self.path.name


def load_run_data(run_dir: str | os.PathLike) -> RunData:
    """Read a run folder without raising: what cannot be read is listed in ``problems``."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    try:
        info = read_run_info(run_dir)
    except (OSError, ValueError) as exc:
        info = {}
        problems.append(f"{RUN_FILE} is unreadable ({exc}); spec and metric directions unknown")
    store = ResultsStore(run_dir)
    # damaged or foreign part files are left out and named, never fatal for the page
    skip = {"skip_damaged": True} if "skip_damaged" in signature(store.load).parameters else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = store.load(**skip)
        except Exception as exc:  # a part set that cannot be combined: report, show nothing
            problems.append(f"results could not be read: {type(exc).__name__}: {exc}")
            frame = pd.DataFrame()
    problems += [str(w.message) for w in caught if "part" in str(w.message)]
    missing = [c for c in [*CELL, "restorer"] if c not in frame.columns]
    if not frame.empty and missing:
        problems.append(f"results lack the column(s) {missing}; not a restorelab results table")
        frame = pd.DataFrame()
    if "error" in frame.columns:
        failed = frame["error"].fillna("").astype(str) != ""
        errors, frame = frame[failed], frame[~failed]
    else:
        errors = frame.iloc[0:0]
    return RunData(
        run_dir, frame.reset_index(drop=True), errors.reset_index(drop=True), info, problems
    )


def load_run(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Results (rows without errors) and ``run.json`` of a run folder."""
    data = load_run_data(run_dir)
    return data.frame, data.info


def error_rows(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Rows whose restorer or degradation failed, with the error text."""
    return load_run_data(run_dir).errors


# --- several runs at once --------------------------------------------------------------------
@dataclass
class Combined:
    """Several runs as one table, and what differs between them."""

    frame: pd.DataFrame  # a ``run`` column added; restorer labels made unique across runs
    metrics: list[str]
    directions: dict[str, bool]
    conventions: dict[str, dict]
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    restorer_runs: dict[str, str] = field(default_factory=dict)  # label -> run name


def _short_names(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}/{p.name}" for p in paths]


def combine_runs(runs: Sequence[RunData]) -> Combined:
    """One table over several runs; differences are reported, never merged silently.

    Restorers of several runs are compared on the cells every run has. Reported as
    mismatches: images, grid cells or seeds that not every run has (those rows are left out
    of the combined table), the same cell scoring differently as degraded input in two runs
    (other image content or another degradation behind the same names: the later runs are
    left out), and metrics whose conventions differ (left out). A restorer label in several
    runs gets its run's name appended (``"tv @ run2"``).
    """
    runs = [r for r in runs if not r.frame.empty]
    if not runs:
        return Combined(pd.DataFrame(), [], {}, {})
    names = _short_names([r.path for r in runs])
    mismatches: list[str] = []
    notes: list[str] = []
    # metrics: in every run, with one convention
    conventions: dict[str, dict] = {}
    metric_sets = [set(metric_columns(r.frame)) for r in runs]
    common = set.intersection(*metric_sets)
    for name, metrics in zip(names, metric_sets, strict=True):
        extra = sorted(metrics - common)
        if extra and len(runs) > 1:
            mismatches.append(f"metric(s) {extra} only in run {name}: left out")
    for metric in sorted(common):
        seen = {
            name: run.info.get("metrics", {}).get(metric, {}).get("convention")
            for name, run in zip(names, runs, strict=True)
        }
        distinct = {v for v in seen.values() if v}
        if len(distinct) > 1:
            mismatches.append(f"metric {metric!r} has different conventions in the runs: left out")
            common.discard(metric)
        else:
            entry = next(
                (r.info["metrics"][metric] for r in runs if metric in r.info.get("metrics", {})),
                {},
            )
            conventions[metric] = dict(entry)
    metrics = [m for m in metric_columns(runs[0].frame) if m in common]
    # labels unique across runs
    label_count: dict[str, int] = {}
    for run in runs:
        for label in run.frame["restorer"].astype(str).unique():
            label_count[label] = label_count.get(label, 0) + 1
    frames = []
    restorer_runs: dict[str, str] = {}
    for name, run in zip(names, runs, strict=True):
        part = run.frame.copy()
        part["restorer"] = part["restorer"].astype(str)
        if len(runs) > 1:
            clash = part["restorer"].map(label_count) > 1
            part.loc[clash, "restorer"] = part.loc[clash, "restorer"] + f" @ {name}"
        part["run"] = name
        part["run_dir"] = str(run.path)
        for label in part["restorer"].unique():
            restorer_runs[label] = name
        drop = [c for c in metric_columns(part) if c not in metrics]
        part = part.drop(columns=drop + [f"input_{c}" for c in drop])
        frames.append(part)
    if len(runs) > 1:
        cell_sets = [set(map(tuple, f[CELL].drop_duplicates().to_numpy().tolist())) for f in frames]
        shared = set.intersection(*cell_sets)
        for name, cells in zip(names, cell_sets, strict=True):
            only = cells - shared
            if only:
                images = sorted({c[0] for c in only})
                degradations = sorted({str(c[1]) for c in only})
                mismatches.append(
                    f"run {name} has {len(only)} cell(s) the other runs lack (images "
                    f"{_listing(images)}; degradations {_listing(degradations)}): left out"
                )
        frames = [
            f[pd.MultiIndex.from_frame(f[CELL]).isin(list(shared))] if shared else f.iloc[0:0]
            for f in frames
        ]
        # the degraded input of a shared cell must score the same in every run
        base = frames[0].drop_duplicates(CELL).set_index(CELL)[[f"input_{m}" for m in metrics]]
        keep = [frames[0]]
        for name, part in zip(names[1:], frames[1:], strict=True):
            other = part.drop_duplicates(CELL).set_index(CELL)[[f"input_{m}" for m in metrics]]
            joined = base.merge(
                other, left_index=True, right_index=True, how="inner", suffixes=("", "_other")
            )
            differs = np.zeros(len(joined), dtype=bool)
            for m in metrics:
                a, b = joined[f"input_{m}"], joined[f"input_{m}_other"]
                differs |= ~np.isclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True)
            if differs.any():
                mismatches.append(
                    f"run {name} scores the degraded input differently on {int(differs.sum())}"
                    f" of {len(joined)} shared cells (other image content or degradation "
                    f"behind the same names): run {name} left out"
                )
            else:
                keep.append(part)
        frames = keep
        if shared:
            notes.append(f"{len(runs)} runs compared on the {len(shared)} cells they share")
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    known = {m: c for m, c in conventions.items() if "higher_is_better" in c}
    directions = {}
    for metric in list(metrics):
        try:
            directions.update(resolve_directions([metric], known))
        except ValueError:
            mismatches.append(
                f"metric {metric!r}: its direction is unknown (not in run.json, not a registered "
                "metric): left out"
            )
            metrics.remove(metric)
    return Combined(frame, metrics, directions, conventions, mismatches, notes, restorer_runs)


def _listing(items: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --- selections ------------------------------------------------------------------------------
def with_input_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus one row per cell for the degraded input, labelled :data:`INPUT_LABEL`."""
    metrics = metric_columns(frame)
    if frame.empty or not metrics:
        return frame
    inputs = frame.drop_duplicates(subset=CELL)[CELL + [f"input_{m}" for m in metrics]]
    inputs = inputs.assign(**{m: inputs[f"input_{m}"] for m in metrics})
    inputs["restorer"] = INPUT_LABEL
    return pd.concat([frame, inputs], ignore_index=True)


def filter_rows(
    frame: pd.DataFrame,
    degradations: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Rows of the chosen degradations and severities (None or empty keeps all)."""
    if degradations:
        frame = frame[frame["degradation"].isin(list(degradations))]
    if severities:
        frame = frame[frame["severity"].isin(list(severities))]
    return frame


def extreme_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose severity (or any step's, in a chain) is :data:`EXTREME_FROM` or more."""
    if frame.empty:
        return frame
    keys = frame[["degradation", "severity"]].drop_duplicates()
    extreme = {
        (d, s)
        for d, s in keys.itertuples(index=False)
        if max(step_levels(str(d), int(s)).values(), default=0) >= EXTREME_FROM
    }
    mask = pd.MultiIndex.from_frame(frame[["degradation", "severity"]]).isin(list(extreme))
    return frame[mask]


# --- leaderboard -----------------------------------------------------------------------------
def leaderboard_tables(
    frame: pd.DataFrame,
    metrics: Sequence[str],
    directions: Mapping[str, bool],
    *,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """Per metric, one row per restorer: mean with its CI and the gain Δ over the input.

    The mean and its interval come from :func:`~restorelab.benchmark.stats.summary_table`
    grouped by restorer (each image averaged over the selected cells, images resampled); Δ and
    its interval from :func:`~restorelab.benchmark.stats.paired_comparison` of the restorer
    against the degraded input on the same cells (Δ = restored − input, in metric units).
    Each table is sorted best first by its own metric's direction.

    Columns: ``rank``, ``restorer``, ``mean``, ``ci_low``, ``ci_high``, ``Δ``, ``Δ_low``,
    ``Δ_high``, ``input``, ``W/T/L`` (cells better / tied / worse than the input), ``images``,
    ``cells``.
    """
    if frame.empty or not metrics:
        return {}
    summary = summary_table(frame, list(metrics), by=("restorer",), seed=seed, ci=ci)
    both = with_input_rows(frame)
    deltas = []
    for restorer in sorted(frame["restorer"].astype(str).unique()):
        table = paired_comparison(
            both,
            restorer,
            INPUT_LABEL,
            list(metrics),
            by=(),
            higher_is_better=directions,
            overall=False,
            seed=seed,
            ci=ci,
        )
        deltas.append(table)
    delta = pd.concat(deltas, ignore_index=True).rename(columns={"a": "restorer"})
    out = {}
    for m in metrics:
        rows = summary[summary["metric"] == m].set_index("restorer")
        d = delta[delta["metric"] == m].set_index("restorer")
        table = pd.DataFrame(
            {
                "restorer": rows.index,
                "mean": rows["mean"].to_numpy(),
                "ci_low": rows["ci_low"].to_numpy(),
                "ci_high": rows["ci_high"].to_numpy(),
                "Δ": d.loc[rows.index, "mean_diff"].to_numpy(),
                "Δ_low": d.loc[rows.index, "ci_low"].to_numpy(),
                "Δ_high": d.loc[rows.index, "ci_high"].to_numpy(),
                "input": rows["input_mean"].to_numpy(),
                "W/T/L": [
                    f"{d.loc[r, 'wins']}/{d.loc[r, 'ties']}/{d.loc[r, 'losses']}"
                    for r in rows.index
                ],
                "images": rows["n"].to_numpy(),
                "cells": d.loc[rows.index, "n_cells"].to_numpy(),
            }
        )
        table = table.sort_values("mean", ascending=not directions.get(m, True), kind="stable")
        table.insert(0, "rank", range(1, len(table) + 1))
        out[m] = table.reset_index(drop=True)
    return out


# --- severity curves -------------------------------------------------------------------------
def severity_curve_table(
    frame: pd.DataFrame, metric: str, *, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """Mean of ``metric`` per restorer × degradation × severity with its bootstrap CI.

    From :func:`~restorelab.benchmark.stats.summary_table`; the degraded input appears as
    restorer :data:`INPUT_LABEL`. Columns: ``restorer``, ``degradation``, ``severity``,
    ``mean``, ``ci_low``, ``ci_high``, ``n``.
    """
    if frame.empty:
        return pd.DataFrame(
            columns=["restorer", "degradation", "severity", "mean", "ci_low", "ci_high", "n"]
        )
    table = summary_table(with_input_rows(frame), metric, seed=seed, ci=ci)
    return table[["restorer", "degradation", "severity", "mean", "ci_low", "ci_high", "n"]]


def severity_curves(frame: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """Per degradation: mean ``metric`` by severity (rows) and restorer (columns, input too)."""
    table = severity_curve_table(frame, metric)
    return {
        str(d): g.pivot(index="severity", columns="restorer", values="mean").sort_index()
        for d, g in table.groupby("degradation")
    }


# --- crossed grids (blur × noise) and the breakdown map --------------------------------------
def step_levels(degradation: str, severity: int) -> dict[str, int]:
    """Op → severity actually applied in cell (``degradation``, ``severity``).

    ``"gaussian_blur"`` at 4 → ``{"gaussian_blur": 4}``; the chain
    ``"gaussian_blur:8+gaussian_noise"`` at 3 → ``{"gaussian_blur": 8, "gaussian_noise": 3}``.
    An op that is not in the cell is absent (severity 0 on a crossed map).
    """
    levels: dict[str, int] = {}
    for part in str(degradation).split("+"):
        name, colon, fixed = part.strip().partition(":")
        try:
            level = int(fixed) if colon else int(severity)
        except ValueError:
            level = int(severity)
        levels[name] = max(levels.get(name, 0), level)
    return levels


def crossed_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of ops that the run crosses: chains of exactly two ops at several level pairs.

    A pair qualifies when its cells (chains of the two ops, and each op alone) span at least
    two levels of each op.
    """
    if frame.empty:
        return []
    keys = frame[["degradation", "severity"]].drop_duplicates()
    points: dict[tuple[str, str], set[tuple[int, int]]] = {}
    levels = [step_levels(str(d), int(s)) for d, s in keys.itertuples(index=False)]
    pairs = {tuple(sorted(lv)) for lv in levels if len(lv) == 2}
    for pair in pairs:
        for lv in levels:
            if set(lv) <= set(pair):
                points.setdefault(pair, set()).add((lv.get(pair[0], 0), lv.get(pair[1], 0)))
    return sorted(
        p
        for p, pts in points.items()
        if len({a for a, _ in pts}) > 1 and len({b for _, b in pts}) > 1
    )


def crossed_rows(frame: pd.DataFrame, pair: tuple[str, str]) -> pd.DataFrame:
    """Rows whose cell lies on the plane of ``pair``, with ``level_a`` and ``level_b`` added."""
    keys = frame[["degradation", "severity"]].drop_duplicates()
    coords = []
    for d, s in keys.itertuples(index=False):
        lv = step_levels(str(d), int(s))
        if lv and set(lv) <= set(pair):
            coords.append((d, s, lv.get(pair[0], 0), lv.get(pair[1], 0)))
    table = pd.DataFrame(coords, columns=["degradation", "severity", "level_a", "level_b"])
    return frame.merge(table, on=["degradation", "severity"], how="inner")


def gain_map(
    frame: pd.DataFrame,
    pair: tuple[str, str],
    restorer: str,
    metric: str,
    directions: Mapping[str, bool],
    *,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Mean gain of ``restorer`` over the degraded input per (level of A, level of B).

    The gain and its interval come from
    :func:`~restorelab.benchmark.stats.paired_comparison` of the restorer against the input,
    per cell (degradation, severity), oriented so that positive means improvement. A cell is
    ``broken`` when the gain's CI reaches zero or below (no established gain).

    Columns: ``level_a``, ``level_b``, ``degradation``, ``severity``, ``gain``, ``gain_low``,
    ``gain_high``, ``p``, ``images``, ``broken``.
    """
    rows = crossed_rows(frame[frame["restorer"].astype(str) == restorer], pair)
    columns = ["level_a", "level_b", "degradation", "severity", "gain", "gain_low", "gain_high"]
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "p", "images", "broken"])
    table = paired_comparison(
        with_input_rows(rows.drop(columns=["level_a", "level_b"])),
        restorer,
        INPUT_LABEL,
        metric,
        by=("degradation", "severity"),
        higher_is_better=directions,
        overall=False,
        seed=seed,
        ci=ci,
    )
    sign = 1.0 if directions.get(metric, True) else -1.0
    low, high = sign * table["ci_low"], sign * table["ci_high"]
    table = table.assign(
        gain=sign * table["mean_diff"],
        gain_low=np.minimum(low, high),
        gain_high=np.maximum(low, high),
        p=table["p_value"],
        images=table["n_images"],
    )
    coords = rows[["degradation", "severity", "level_a", "level_b"]].drop_duplicates()
    table["severity"] = table["severity"].astype(int)
    table = table.merge(coords, on=["degradation", "severity"], how="left")
    table["broken"] = table["gain_low"] <= 0
    return table[[*columns, "p", "images", "broken"]].sort_values(["level_a", "level_b"])


def frontier(gains: pd.DataFrame) -> pd.DataFrame:
    """The breakdown frontier of a :func:`gain_map`: per level of A, the first level of B at
    which the restorer is broken (``level_b`` NaN when it never breaks along that line)."""
    rows = []
    for a, group in gains.groupby("level_a", sort=True):
        broken = group[group["broken"]].sort_values("level_b")
        rows.append({"level_a": a, "level_b": broken["level_b"].iloc[0] if len(broken) else None})
    return pd.DataFrame(rows, columns=["level_a", "level_b"])


def breakdown_view(
    frame: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    higher_is_better: Mapping | None = None,
    threshold: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Restorer × degradation → first failing severity per metric, why, and the gains.

    Columns: ``restorer``, ``degradation``, then per metric ``<metric> breaks at`` (a
    severity, or ``"never"`` within the grid), ``<metric> reason`` and
    ``<metric> gain by severity``. See
    :func:`restorelab.benchmark.stats.breakdown_severity`.
    """
    if frame.empty:
        return pd.DataFrame(columns=["restorer", "degradation"])
    metrics = list(metrics or metric_columns(frame))
    table = breakdown_severity(
        frame, metrics, higher_is_better=higher_is_better, threshold=threshold
    )
    view = table[["restorer", "degradation"]].drop_duplicates().reset_index(drop=True)
    for m in metrics:
        part = table[table["metric"] == m].drop(columns="metric")
        part = part.assign(
            **{
                f"{m} breaks at": part["breaks_at"].map(
                    lambda s: "never" if pd.isna(s) else str(int(s))
                ),
                f"{m} reason": part["reason"],
                f"{m} gain by severity": part["gains"],
            }
        )
        view = view.merge(
            part[
                [
                    "restorer",
                    "degradation",
                    f"{m} breaks at",
                    f"{m} reason",
                    f"{m} gain by severity",
                ]
            ],
            on=["restorer", "degradation"],
            how="left",
        )
    return view


# --- failure analysis ------------------------------------------------------------------------
def worst_rows(
    frame: pd.DataFrame,
    restorer: str,
    metric: str,
    directions: Mapping[str, bool],
    *,
    by: str = "loss",
    k: int = 8,
) -> pd.DataFrame:
    """The ``k`` worst rows of ``restorer`` by ``metric``.

    ``by="loss"``: the largest loss against the degraded input first (most negative gain);
    ``by="metric"``: the worst restored score first. Adds ``gain`` (oriented restored −
    input).
    """
    rows = frame[frame["restorer"].astype(str) == restorer].dropna(subset=[metric])
    sign = 1.0 if directions.get(metric, True) else -1.0
    rows = rows.assign(gain=sign * (rows[metric] - rows[f"input_{metric}"]))
    key = rows["gain"] if by == "loss" else sign * rows[metric]
    order = np.argsort(key.to_numpy(), kind="stable")[:k]
    return rows.iloc[order].reset_index(drop=True)


def corpus_index(corpus: str | os.PathLike) -> dict[str, Path]:
    """image_id → clean image path for a corpus folder (as the runner names them)."""
    from restorelab.corpus import load_corpus

    return {item.image_id: item.path for item in load_corpus(corpus)}


def grid_levels(info: Mapping, degradation: str) -> tuple | None:
    """The replacement severity table a run's grid used for ``degradation`` (None: the op's)."""
    levels = (info.get("grid") or {}).get("levels") or {}
    found = levels.get(degradation)
    return tuple(tuple(v) if isinstance(v, list) else v for v in found) if found else None


def regenerate_lq(
    clean: np.ndarray, degradation: str, severity: int, seed: int, levels: tuple | None = None
) -> np.ndarray:
    """The degraded input of a cell, recomputed (degradations are deterministic)."""
    from restorelab.degradations import degrade_with_params

    return degrade_with_params(clean, degradation, int(severity), int(seed), levels=levels).image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An RGB ``uint8`` array from an image file."""
    from restorelab.imageio import read_image as _read

    return _read(path)


def saved_image(run_dir: str | os.PathLike, relpath: object) -> Path | None:
    """The saved file ``relpath`` (a row's ``restored_file``) under ``run_dir``, if it exists."""
    if not isinstance(relpath, str) or not relpath:
        return None
    path = Path(run_dir) / relpath
    return path if path.is_file() else None


def abs_error_map(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean absolute error over channels per pixel, in 0–255 units, shape (H, W)."""
    return np.abs(image.astype(np.float32) - reference.astype(np.float32)).mean(axis=-1)


def ssim_map(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Local SSIM per pixel (mean over RGB channels, 7×7 window), in [-1, 1], shape (H, W)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(
        reference, image, channel_axis=-1, data_range=255, full=True, win_size=7
    )
    return full.mean(axis=-1)


def colormap(values: np.ndarray, low: float, high: float, *, reverse: bool = False) -> np.ndarray:
    """A (H, W) array as an RGB ``uint8`` heat image (dark blue → yellow) over [low, high]."""
    t = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
    if reverse:
        t = 1.0 - t
    anchors = np.array(
        [[48, 18, 59], [70, 107, 227], [41, 187, 236], [164, 252, 60], [251, 185, 56],
         [122, 4, 3]], dtype=np.float32
    )  # fmt: skip
    pos = t * (len(anchors) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(anchors) - 2)
    frac = (pos - lo)[..., None]
    return (anchors[lo] * (1 - frac) + anchors[lo + 1] * frac).astype(np.uint8)


def wipe(left: np.ndarray, right: np.ndarray, position: float) -> np.ndarray:
    """``left`` up to ``position`` (0–1 of the width), ``right`` after it, a white line between.

    Images of other sizes (a super-resolver's output) are compared at ``right``'s size.
    """
    if left.shape != right.shape:
        from PIL import Image

        left = np.asarray(
            Image.fromarray(left).resize(right.shape[1::-1], Image.Resampling.NEAREST)
        )
    out = right.copy()
    x = round(float(np.clip(position, 0.0, 1.0)) * right.shape[1])
    out[:, :x] = left[:, :x]
    if 0 < x < right.shape[1]:
        out[:, max(0, x - 1) : x + 1] = 255
    return out


# --- A vs B ----------------------------------------------------------------------------------
def paired_view(
    frame: pd.DataFrame,
    a: str,
    b: str,
    metrics: Sequence[str] | None = None,
    *,
    higher_is_better: Mapping | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Restorer ``a`` against ``b`` per degradation × severity, plus an "all cells" row.

    Columns: ``metric``, ``degradation``, ``severity``, ``a − b`` (mean difference), ``ci_low``,
    ``ci_high``, ``p`` (Wilcoxon signed-rank), ``W/T/L`` (cells where ``a`` is better / tied /
    worse), ``images``. From :func:`restorelab.benchmark.stats.paired_comparison`.
    """
    metrics = list(metrics or metric_columns(frame))
    table = paired_comparison(frame, a, b, metrics, higher_is_better=higher_is_better, seed=seed)
    return pd.DataFrame(
        {
            "metric": table["metric"],
            "degradation": np.where(
                table["overall"], "all cells", table["degradation"].astype(str)
            ),
            "severity": np.where(table["overall"], "all", table["severity"].astype(str)),
            "a − b": table["mean_diff"],
            "ci_low": table["ci_low"],
            "ci_high": table["ci_high"],
            "p": table["p_value"],
            "W/T/L": [
                f"{w}/{t}/{lo}"
                for w, t, lo in zip(table["wins"], table["ties"], table["losses"], strict=True)
            ],
            "images": table["n_images"],
        }
    )


def per_image_pairs(frame: pd.DataFrame, a: str, b: str, metric: str) -> pd.DataFrame:
    """Per image: the mean ``metric`` of ``a`` and of ``b`` over the cells both have, and a − b.

    The raw points behind the paired statistics (for the scatter and histogram).
    """
    sides = [
        frame[frame["restorer"].astype(str) == name].groupby(CELL, observed=True)[metric].mean()
        for name in (a, b)
    ]
    joined = pd.concat({"a": sides[0], "b": sides[1]}, axis=1, join="inner").dropna()
    images = joined.groupby(level="image_id").mean()
    images["diff"] = images["a"] - images["b"]
    return images.reset_index()


# --- curation report -------------------------------------------------------------------------
CURATION_SUMMARY = "curation.json"


def is_curated(folder: str | os.PathLike | None) -> bool:
    """Whether ``folder`` was written by ``restorelab curate``."""
    return bool(folder) and (Path(folder) / CURATION_SUMMARY).is_file()


@dataclass
class CurationView:
    """What the curation page shows for one curated folder."""

    folder: Path
    summary: dict
    kept: pd.DataFrame  # metadata.jsonl rows (+ short_side)
    rejected: pd.DataFrame  # rejected.csv rows (+ kind, short_side)
    thresholds: dict[str, tuple[str, str, object]]  # filter -> (signal, op, threshold)


def curation_view(folder: str | os.PathLike) -> CurationView:
    """Read a curated folder's summary, kept and rejected tables and active thresholds."""
    from restorelab.curation.filters import FILTERS

    folder = Path(folder)
    summary = json.loads((folder / CURATION_SUMMARY).read_text(encoding="utf-8"))
    meta = folder / "metadata.jsonl"
    kept = pd.read_json(meta, lines=True) if meta.is_file() and meta.stat().st_size else None
    kept = kept if kept is not None else pd.DataFrame(columns=["file_name"])
    rej_path = folder / "rejected.csv"
    rejected = pd.read_csv(rej_path) if rej_path.is_file() else pd.DataFrame()
    if rejected.empty:
        rejected = pd.DataFrame(columns=["source", "reason"])
    rejected["kind"] = rejected["reason"].astype(str).str.split(":", n=1).str[0]
    for table in (kept, rejected):
        if {"width", "height"} <= set(table.columns):
            table["short_side"] = table[["width", "height"]].min(axis=1)
    filters = (summary.get("config") or {}).get("filters") or {}
    thresholds = {}
    for name, value in filters.items():
        if value is None or name not in FILTERS:
            continue
        spec = FILTERS.get(name)
        thresholds[name] = (spec.signal, spec.op, value)
    return CurationView(folder, summary, kept, rejected, thresholds)


def rejection_counts(view: CurationView) -> pd.DataFrame:
    """Rejections per reason kind (``too small``, ``exact duplicate``, ...), most first."""
    counts = view.rejected["kind"].value_counts()
    return pd.DataFrame({"reason": counts.index, "images": counts.to_numpy()})


_DUPLICATE = re.compile(r"^(exact duplicate: same pixels as|near duplicate: of) (.+?)(; also .*)?$")


def source_path(view: CurationView, source: str) -> Path | None:
    """Where an input file of the curation is now: as recorded, or relative to the folders
    above the curated folder (sources recorded relative to where ``curate`` ran)."""
    path = Path(str(source))
    candidates = [path] if path.is_absolute() else [path, *[p / path for p in view.folder.parents]]
    return next((c for c in candidates if c.is_file()), None)


def duplicate_groups(view: CurationView) -> list[dict]:
    """Duplicate groups: ``{"kept": source, "kept_file": path or None, "dropped": [...]}``.

    From the rejection reasons (``exact duplicate: same pixels as X``, ``near duplicate: of
    X``); ``kept_file`` is the kept member's file in the curated folder when it is there.
    """
    groups: dict[str, list[str]] = {}
    for source, reason in view.rejected[["source", "reason"]].itertuples(index=False):
        match = _DUPLICATE.match(str(reason))
        if match:
            groups.setdefault(match.group(2), []).append(str(source))
    by_source = {}
    if "source" in view.kept.columns:
        by_source = dict(zip(view.kept["source"].astype(str), view.kept["file_name"], strict=True))
    return [
        {
            "kept": keeper,
            "kept_file": (view.folder / by_source[keeper])
            if keeper in by_source
            else source_path(view, keeper),
            "dropped": dropped,
        }
        for keeper, dropped in groups.items()
    ]


def curation_report(run_info: Mapping) -> tuple[dict, pd.DataFrame] | None:
    """The curation summary and rejected-files table of the run's corpus, if it was curated."""
    corpus = run_info.get("corpus")
    if not is_curated(corpus):
        return None
    view = curation_view(corpus)
    return view.summary, view.rejected.drop(columns=["kind", "short_side"], errors="ignore")


# --- run info --------------------------------------------------------------------------------
def timing_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per restorer: rows, mean and total restore seconds, peak memory (MiB)."""
    if frame.empty or "seconds" not in frame.columns:
        return pd.DataFrame(columns=["restorer", "rows", "mean s", "total s"])
    agg = {
        "rows": ("seconds", "size"),
        "mean s": ("seconds", "mean"),
        "total s": ("seconds", "sum"),
    }
    if "peak_rss_mb" in frame.columns:
        agg["peak RSS MiB"] = ("peak_rss_mb", "max")
    return frame.groupby("restorer").agg(**agg).reset_index()
