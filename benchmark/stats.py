"""Statistics on benchmark results: one path for ``restorelab report``, the dashboard and notebooks.

Every function here is pure: it takes the results table of :func:`load_run_table` /
:func:`restorelab.results.load_results` (one row per image × degradation × severity × seed ×
restorer, failed rows included, with metric columns such as ``psnr`` and the degraded input's
``input_psnr``) and returns a tidy DataFrame. The settings live in one place,
:class:`StatsSettings` (:data:`DEFAULT_SETTINGS`: 2000 bootstrap resamples, 95 % intervals,
seed 0, the tie tolerances of :data:`DEFAULT_TIE_TOLERANCE`); metric directions come from the
run's stored metric conventions (``run.json`` ``metrics``, else the metric registry) through
:func:`metric_directions`, never from names or prose. Equal inputs and settings give equal
numbers wherever they are shown.

Fair support
------------
A *cell* is (image_id, degradation, severity, seed). A restorer *finished* a cell when its row
there has no error. By default (``support="common"``) every mean, interval, test and breakdown
is computed on the **common cells**: those every compared restorer finished (restorers that
finished no cell at all are left out of the comparison and listed by :func:`coverage` /
:func:`unfinished_restorers` with their errors), and the degraded input's scores are averaged
over the same cells. ``support="own"`` gives each restorer its own finished cells instead;
tables then say so in their ``support`` column (``"own cells"``), and their numbers are not
comparable across restorers.

Public API (all return DataFrames unless noted)
-----------------------------------------------
- :func:`load_run_table` (frame, run_info) of a run folder, failed rows included;
  :func:`run_fingerprint`, a cache key for its tables.
- :func:`coverage`: restorer, planned, finished, failed, missing, common, reasons, status.
- :func:`failures`: failed cells grouped by restorer and reason (cells, images, example).
- :func:`unfinished_restorers`: restorers with no finished cell and their errors.
- :func:`common_cells` / :func:`on_support`: the cells of the comparison, and the rows on them.
- :func:`leaderboard`: restorer × metric mean, CI, input mean, Δ over input with its CI,
  images, cells, coverage, rank by the metric's direction (plus the input row).
- :func:`summary_table`: mean and CI per restorer × degradation × severity × metric.
- :func:`severity_curves`: the same in long form with the degraded input as a restorer row.
- :func:`paired_comparison`: a − b per group: CI, Wilcoxon p, smallest reachable p,
  wins/ties/losses, a small-sample ``note``.
- :func:`severity_gains` and :func:`breakdown_severity`: gain over the input per severity with
  its CI, and the first severity where the gain is ≤ 0 within its CI (or a threshold is crossed),
  with the reason and the per-severity gains.
- :func:`compute_report` → :class:`Report` (all of the above for a run folder),
  :func:`build_report` (the same from a frame), :func:`write_report`, :func:`load_report`,
  :func:`format_report` (``text`` fitting 100 columns, ``markdown``, ``csv``, ``json``).
- Helpers: :func:`metric_directions`, :func:`available_metrics`, :func:`compared_restorers`,
  :func:`is_paired_run`, :func:`min_wilcoxon_p`, :func:`small_sample_note`,
  :func:`error_reason`, :func:`make_settings`, and :func:`decimals` /
  :func:`format_interval` to print numbers exactly as the report does.

A dashboard (or a notebook) shows the report's numbers by calling the same functions with the
same settings, e.g.::

    frame, info = load_run_table(run_dir)              # failed rows included
    directions = metric_directions(info, available_metrics(frame))
    names = compared_restorers(frame)                  # fix the compared set before filtering
    view = frame[frame["degradation"].isin(chosen)]
    board = leaderboard(view, higher_is_better=directions, restorers=names)
    curves = severity_curves(frame, "psnr", restorers=names)
    versus = paired_comparison(frame, "tv", "identity", higher_is_better=directions)
    cover, failed = coverage(frame), failures(frame)   # show beside the numbers

Every table carries a ``support`` column; cache them per run fingerprint and settings
(:class:`StatsSettings` is frozen and hashable).

Statistics
----------
The unit of replication is the *image*: cells of one image (its seeds, and in pooled rows its
degradations and severities) are averaged first, then images are resampled with replacement
(percentile bootstrap). Randomness comes only from the settings' ``seed``; each group size
draws its own index matrix from ``numpy.random.default_rng([seed, size])``, so a group's
interval does not depend on which other groups are in the table. Paired tests are two-sided
Wilcoxon signed-rank tests on per-image differences; with n images the exact test cannot go
below ``2 / 2**n`` (0.25 for 3 images), and rows where that floor is above ``1 − ci`` carry a
note saying so.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from restorelab.results import load_results, read_run_info

#: Columns that identify one cell (an image under one degradation setting).
CELL_COLUMNS = ("image_id", "degradation", "severity", "seed")

#: Label of the pseudo-restorer that stands for the degraded input itself.
INPUT_LABEL = "(degraded input)"

#: ``degradation`` value of the rows of a paired test set (``restorelab bench --pairs``).
PAIRED_DEGRADATION = "paired"

#: Differences at most this large count as ties in :func:`paired_comparison`, and gains at
#: most this large as "no gain" in :func:`breakdown_severity` (metric units: 0.01 dB, 1e-4 of
#: SSIM / LPIPS / DISTS). Labels with options (``"psnr:crop_border=4"``) use their metric's
#: entry; metrics not listed tie only when exactly equal.
DEFAULT_TIE_TOLERANCE: dict[str, float] = {
    "psnr": 0.01,
    "psnr_y": 0.01,
    "consistency": 0.01,
    "ssim": 1e-4,
    "ssim_y": 1e-4,
    "lpips": 1e-4,
    "dists": 1e-4,
}

#: Folder under the run folder that :func:`write_report` fills.
REPORT_DIR = "report"

#: Output formats of :func:`format_report`.
FORMATS = ("text", "markdown", "csv", "json")

#: Support modes: cells every compared restorer finished, or each restorer's own.
SUPPORTS = ("common", "own")

Directions = Mapping[str, bool | Mapping[str, object]]


@dataclass(frozen=True)
class StatsSettings:
    """Every setting that changes a reported number, in one place.

    Parameters
    ----------
    n_boot : int
        Bootstrap resamples (≥ 1).
    ci : float
        Coverage of the intervals, strictly between 0 and 1 (0.95 → 2.5th–97.5th percentile).
    seed : int
        Seed of the resampling (≥ 0); equal seeds give equal tables.
    tie_tolerance : tuple of (metric, tolerance)
        Overrides of :data:`DEFAULT_TIE_TOLERANCE` (metric units); see :meth:`tolerances`.
    support : {"common", "own"}
        Cells every compared restorer finished (default), or each restorer's own.
    """

    n_boot: int = 2000
    ci: float = 0.95
    seed: int = 0
    tie_tolerance: tuple[tuple[str, float], ...] = ()
    support: str = "common"

    def __post_init__(self) -> None:
        _check_bootstrap(self.n_boot, self.seed, self.ci)
        if self.support not in SUPPORTS:
            raise ValueError(f"support must be one of {SUPPORTS}, got {self.support!r}")
        if isinstance(self.tie_tolerance, Mapping):
            object.__setattr__(self, "tie_tolerance", tuple(sorted(self.tie_tolerance.items())))

    def tolerances(self, metrics: Iterable[str]) -> dict[str, float]:
        """Tie tolerance per metric: the overrides, else the default of the metric's name."""
        return _tolerances(metrics, dict(self.tie_tolerance))

    def to_dict(self) -> dict:
        """Plain JSON-able dict (stored with a report)."""
        out = asdict(self)
        out["tie_tolerance"] = {**DEFAULT_TIE_TOLERANCE, **dict(self.tie_tolerance)}
        return out

    @property
    def support_label(self) -> str:
        """``"common cells"`` or ``"own cells"`` (the ``support`` column of the tables)."""
        return f"{self.support} cells"


def make_settings(settings: StatsSettings | None = None, **overrides: object) -> StatsSettings:
    """``settings`` (default :data:`DEFAULT_SETTINGS`) with the non-None ``overrides``
    (``n_boot``, ``ci``, ``seed``, ``tie_tolerance``, ``support``) applied; the keyword
    arguments of the table functions go through here, so they win over ``settings``."""
    base = settings or DEFAULT_SETTINGS
    given = {k: v for k, v in overrides.items() if v is not None}
    if "tie_tolerance" in given and isinstance(given["tie_tolerance"], Mapping):
        given["tie_tolerance"] = tuple(sorted(given["tie_tolerance"].items()))
    return replace(base, **given) if given else base


# --- input checks ----------------------------------------------------------------------------
def available_metrics(frame: pd.DataFrame) -> list[str]:
    """Metric columns of a results table: those with an ``input_<metric>`` twin."""
    return [
        c[len("input_") :]
        for c in frame.columns
        if c.startswith("input_") and c[len("input_") :] in frame.columns
    ]


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _failed_mask(frame: pd.DataFrame) -> pd.Series:
    if "error" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["error"].fillna("").astype(str) != ""


def finished_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows without an error (the restorer finished the cell and it was scored)."""
    return frame[~_failed_mask(frame)]


def _check_frame(
    frame: pd.DataFrame,
    metrics: str | Iterable[str] | None,
    columns: Iterable[str],
    *,
    allow_empty: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """Validate ``frame`` and ``metrics``; return the error-free rows and the metric list."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"frame lacks column(s) {missing}; it should come from "
            "restorelab.results.load_results (columns: " + ", ".join(map(str, frame.columns)) + ")"
        )
    valid = available_metrics(frame)
    chosen = _as_list(metrics)
    if chosen is None:
        chosen = valid
    if not chosen:
        raise ValueError(f"no metrics to summarise; valid: {', '.join(valid) or 'none'}")
    unknown = [m for m in chosen if m not in valid]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {unknown}; valid (columns with an input_ twin): "
            + (", ".join(valid) or "none")
        )
    frame = finished_rows(frame)
    if frame.empty and not allow_empty:
        raise ValueError("frame has no rows without errors")
    return frame, list(dict.fromkeys(chosen))


def _check_bootstrap(n_boot: int, seed: int, ci: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(ci, (int, float)) or not 0 < ci < 1:
        raise ValueError(f"ci must lie strictly between 0 and 1 (e.g. 0.95), got {ci!r}")


#: The settings `restorelab report` and the dashboard use.
DEFAULT_SETTINGS = StatsSettings()


def _check_restorer(frame: pd.DataFrame, name: str) -> None:
    valid = sorted(frame["restorer"].astype(str).unique())
    if name not in valid:
        raise ValueError(f"unknown restorer {name!r}; valid: {', '.join(valid)}")


def resolve_directions(
    metrics: Iterable[str], higher_is_better: Directions | None = None
) -> dict[str, bool]:
    """Whether higher is better for each metric.

    Parameters
    ----------
    metrics : iterable of str
        Metric names or labels (``"lpips:net=vgg"``).
    higher_is_better : mapping, optional
        ``{metric: bool}``, or a run's ``run.json`` ``metrics`` entry
        (``{metric: {"higher_is_better": bool, ...}}``). Metrics not given here are looked up
        in the metric registry (by the name before ``:``).

    Returns
    -------
    dict of str to bool

    Raises
    ------
    ValueError
        When a metric is neither given nor registered.
    """
    given = dict(higher_is_better or {})
    result = {}
    for m in metrics:
        if m in given:
            value = given[m]
            if isinstance(value, Mapping):
                if "higher_is_better" not in value:
                    raise ValueError(f"higher_is_better[{m!r}] lacks a 'higher_is_better' key")
                value = value["higher_is_better"]
            result[m] = bool(value)
            continue
        # the registry imports every metric's module (torch, 1.5 s): only when one is needed
        from restorelab.benchmark.metrics import METRICS

        if m.split(":")[0] in METRICS:  # a name, or a label such as "lpips:net=vgg"
            result[m] = bool(METRICS.get(m.split(":")[0]).higher_is_better)
        else:
            raise ValueError(
                f"direction of metric {m!r} is unknown (not a registered metric); "
                f"pass higher_is_better={{{m!r}: True or False}}"
            )
    return result


def metric_directions(run_info: Mapping | None, metrics: Iterable[str]) -> dict[str, bool]:
    """Directions of ``metrics`` from a run's ``run.json`` (its stored metric conventions),
    falling back to the metric registry; see :func:`resolve_directions`."""
    return resolve_directions(metrics, (run_info or {}).get("metrics", {}))


def _tolerances(
    metrics: Iterable[str], tie_tolerance: Mapping[str, float] | float | None
) -> dict[str, float]:
    if tie_tolerance is None or isinstance(tie_tolerance, Mapping):
        given = {**DEFAULT_TIE_TOLERANCE, **dict(tie_tolerance or {})}
        result = {m: float(given.get(m, given.get(m.split(":")[0], 0.0))) for m in metrics}
    else:
        result = {m: float(tie_tolerance) for m in metrics}
    bad = {m: t for m, t in result.items() if not t >= 0}
    if bad:
        raise ValueError(f"tie tolerances must be >= 0, got {bad}")
    return result


def _resolve_tolerances(
    metrics: Sequence[str],
    settings: StatsSettings,
    tie_tolerance: Mapping[str, float] | float | None,
) -> dict[str, float]:
    if tie_tolerance is not None and not isinstance(tie_tolerance, Mapping):
        return _tolerances(metrics, tie_tolerance)
    return _tolerances(metrics, {**dict(settings.tie_tolerance), **dict(tie_tolerance or {})})


def is_paired_run(frame: pd.DataFrame, run_info: Mapping | None = None) -> bool:
    """True for a paired test set (``bench --pairs``): no degradation grid, no severities."""
    if run_info and "pairs" in run_info and "grid" not in run_info:
        return True
    if frame.empty or "degradation" not in frame.columns:
        return False
    return bool((frame["degradation"].astype(str) == PAIRED_DEGRADATION).all())


# --- support: planned, finished and common cells ---------------------------------------------
def _cells_index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(frame[list(CELL_COLUMNS)])


def error_reason(error: str) -> str:
    """A short reason for grouping errors: the first line, its temporary paths shortened,
    plus the last line of a quoted stderr tail (what the program said).

    ``"CommandError: command 'x' exited with code 1; stderr tail:\\n...\\nno weights"`` →
    ``"CommandError: command 'x' exited with code 1: no weights"``.
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    line = lines[0]
    if re.search(r"; stderr tail:\s*$", line):
        line = re.sub(r"; stderr tail:\s*$", "", line)
        if len(lines) > 1:
            line += f": {lines[-1]}"
    line = re.sub(r"\S*restorelab-cmd-[^\s'\"]*", "<tmp>", line)
    return line[:200] + ("…" if len(line) > 200 else "")


def _with_reason(frame: pd.DataFrame) -> pd.DataFrame:
    failed = frame[_failed_mask(frame)]
    return failed.assign(reason=failed["error"].astype(str).map(error_reason))


def _restorer_order(frame: pd.DataFrame) -> list[str]:
    """Restorer labels in order of first appearance."""
    return list(dict.fromkeys(frame["restorer"].astype(str).unique()))


def compared_restorers(frame: pd.DataFrame, restorers: Iterable[str] | None = None) -> list[str]:
    """Restorers with at least one finished cell (of ``restorers`` when given), in order."""
    done = finished_rows(frame)
    have = set(done["restorer"].astype(str).unique())  # unique() first: 100× faster on 1e5 rows
    names = _restorer_order(frame) if restorers is None else restorers
    return [str(r) for r in names if str(r) in have]


def common_cells(frame: pd.DataFrame, restorers: Iterable[str] | None = None) -> pd.DataFrame:
    """The cells every compared restorer finished (columns :data:`CELL_COLUMNS`).

    Parameters
    ----------
    frame : DataFrame
        Results table, failed rows included or not.
    restorers : iterable of str, optional
        Restorers to compare (default: all in ``frame``). Those with no finished cell are
        left out (see :func:`unfinished_restorers`), so one broken restorer does not empty
        the comparison.
    """
    names = compared_restorers(frame, restorers)
    done = finished_rows(frame)
    done = done[done["restorer"].astype(str).isin(names)]
    if done.empty:
        return pd.DataFrame(columns=list(CELL_COLUMNS))
    counts = (
        done.drop_duplicates([*CELL_COLUMNS, "restorer"])
        .groupby(list(CELL_COLUMNS), observed=True, sort=True)["restorer"]
        .nunique()
    )
    return counts[counts == len(names)].index.to_frame(index=False)


def on_support(
    frame: pd.DataFrame,
    restorers: Iterable[str] | None = None,
    *,
    support: str = "common",
) -> pd.DataFrame:
    """Finished rows of the compared restorers, on the common cells (``support="common"``)
    or on each restorer's own cells (``support="own"``)."""
    if support not in SUPPORTS:
        raise ValueError(f"support must be one of {SUPPORTS}, got {support!r}")
    names = compared_restorers(frame, restorers)
    done = finished_rows(frame)
    done = done[done["restorer"].astype(str).isin(names)]
    if support == "own" or done.empty:
        return done
    cells = common_cells(done, names)
    if cells.empty:  # the compared restorers share no finished cell
        return done.iloc[0:0]
    return done[_cells_index(done).isin(_cells_index(cells))]


def coverage(frame: pd.DataFrame, restorers: Iterable[str] | None = None) -> pd.DataFrame:
    """Finished and failed cells per restorer, against the cells planned in the run.

    Returns
    -------
    DataFrame
        One row per restorer: ``restorer``, ``planned`` (cells of the run: every cell any
        restorer has a row for), ``finished``, ``failed``, ``missing`` (planned − finished −
        failed: not run yet), ``common`` (cells in the common support), ``coverage``
        (finished / planned, 0–1), ``reasons`` (``"3× reason; 1× other"``), ``status``
        (``"complete"``, ``"partial"`` or ``"no finished cell"``).
    """
    columns = ["restorer", "planned", "finished", "failed", "missing", "common", "coverage",
               "reasons", "status"]  # fmt: skip
    if frame.empty:
        return pd.DataFrame(columns=columns)
    names = _restorer_order(frame) if restorers is None else restorers
    planned = len(frame.drop_duplicates(list(CELL_COLUMNS)))
    n_common = len(common_cells(frame, names))
    failed_rows = _with_reason(frame)
    done = finished_rows(frame)
    compared = set(compared_restorers(frame, names))
    rows = []
    for name in names:
        fin = done[done["restorer"].astype(str) == name].drop_duplicates(list(CELL_COLUMNS))
        bad = failed_rows[failed_rows["restorer"].astype(str) == name]
        bad = bad.drop_duplicates(list(CELL_COLUMNS))
        if len(fin):  # a cell finished after an earlier failure counts as finished
            bad = bad[~_cells_index(bad).isin(_cells_index(fin))]
        counts = bad["reason"].value_counts()
        status = (
            "no finished cell" if fin.empty else ("complete" if len(fin) == planned else "partial")
        )
        rows.append(
            {
                "restorer": name,
                "planned": planned,
                "finished": len(fin),
                "failed": len(bad),
                "missing": planned - len(fin) - len(bad),
                "common": n_common if name in compared else 0,
                "coverage": len(fin) / planned if planned else math.nan,
                "reasons": "; ".join(f"{n}× {r}" for r, n in counts.items()),
                "status": status,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed cells grouped by restorer and reason.

    Returns
    -------
    DataFrame
        ``restorer``, ``reason`` (:func:`error_reason`), ``cells``, ``images`` (distinct
        image ids), ``example`` (one cell: ``"image degradation:severity seed N"``) and
        ``error`` (the full text of that example), most frequent first.
    """
    columns = ["restorer", "reason", "cells", "images", "example", "error"]
    failed = _with_reason(frame) if not frame.empty else frame
    if failed.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (restorer, reason), group in failed.groupby(["restorer", "reason"], sort=False):
        first = group.iloc[0]
        rows.append(
            {
                "restorer": str(restorer),
                "reason": reason,
                "cells": len(group.drop_duplicates(list(CELL_COLUMNS))),
                "images": group["image_id"].nunique(),
                "example": _cell_name(first),
                "error": str(first["error"]),
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(
        ["cells", "restorer"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def _cell_name(row: Mapping) -> str:
    if str(row["degradation"]) == PAIRED_DEGRADATION:
        return f"{row['image_id']} (paired)"
    return f"{row['image_id']} {row['degradation']}:{int(row['severity'])} seed {int(row['seed'])}"


def unfinished_restorers(frame: pd.DataFrame) -> pd.DataFrame:
    """Restorers without a single finished cell, with their errors (:func:`failures` rows)."""
    table = coverage(frame)
    names = set(table.loc[table["status"] == "no finished cell", "restorer"])
    fails = failures(frame)
    return fails[fails["restorer"].isin(names)].reset_index(drop=True)


def support_note(frame: pd.DataFrame, settings: StatsSettings | None = None) -> str:
    """One line saying which cells the numbers are computed on."""
    settings = settings or DEFAULT_SETTINGS
    names = compared_restorers(frame)
    planned = len(frame.drop_duplicates(list(CELL_COLUMNS))) if not frame.empty else 0
    if settings.support == "own":
        return "support: each restorer on its OWN finished cells (not comparable across restorers)"
    if not names:
        return f"support: no restorer finished any of the {planned} cells; nothing to compare"
    cells = common_cells(frame, names)
    if cells.empty:
        return (
            f"support: the {len(names)} compared restorers share no finished cell; nothing to "
            "compare on common cells (report --support own shows each on its own cells)"
        )
    images = cells["image_id"].nunique()
    return (
        f"support: {len(cells)} of {planned} cells ({images} images) finished by all "
        f"{len(names)} compared restorers; the degraded input on the same cells"
    )


# --- bootstrap core --------------------------------------------------------------------------
def _bootstrap_intervals(
    samples: Sequence[np.ndarray], *, n_boot: int, seed: int, ci: float
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each 1-D sample.

    Samples of equal size share one ``(n_boot, size)`` index matrix drawn from
    ``default_rng([seed, size])`` and are resampled together.
    """
    low = np.full(len(samples), np.nan)
    high = np.full(len(samples), np.nan)
    by_size: dict[int, list[int]] = {}
    for i, sample in enumerate(samples):
        if len(sample):
            by_size.setdefault(len(sample), []).append(i)
    alpha = (1.0 - ci) / 2.0
    for size, members in by_size.items():
        index = np.random.default_rng([seed, size]).integers(0, size, size=(n_boot, size))
        # resampled sums as one matrix product: counts[b, j] = times image j is drawn in b
        counts = np.zeros((n_boot, size))
        np.add.at(counts, (np.repeat(np.arange(n_boot), size), index.ravel()), 1.0)
        stacked = np.stack([samples[i] for i in members])  # (groups, size)
        means = stacked @ counts.T / size  # (groups, n_boot)
        odd = ~np.isfinite(stacked).all(axis=1)  # ±inf scores (identical images): index
        if odd.any():
            means[odd] = stacked[odd][:, index].mean(axis=-1)
        lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=1)
        low[members], high[members] = lo, hi
    return low, high


def _groups(frame: pd.DataFrame, by: Sequence[str]):
    """(key tuple, sub-frame) pairs; one pair with key () when ``by`` is empty."""
    if not by:
        return [((), frame)]
    return [
        (key if isinstance(key, tuple) else (key,), group)
        for key, group in frame.groupby(list(by), sort=True, observed=True)
    ]


def _per_image(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean of ``columns`` per image (over its seeds and any other cells in ``frame``)."""
    return frame.groupby("image_id", sort=True, observed=True)[columns].mean()


def _image_groups(part: pd.DataFrame, keys: Sequence[str], columns: list[str]) -> tuple:
    """Per group of ``keys`` (sorted): key tuples, each column's mean over the group's
    per-image means, the numbers of images and of cells, and the per-image values of every
    column (for the bootstrap). One groupby for all groups."""
    keys = list(keys)
    if part.empty:
        return (
            [],
            pd.DataFrame(columns=columns),
            np.array([], int),
            np.array([], int),
            {c: [] for c in columns},
        )
    img = part.groupby([*keys, "image_id"], observed=True, sort=True)[columns].mean()
    cells = part.drop_duplicates(list(dict.fromkeys([*keys, *CELL_COLUMNS])))
    if keys:
        grouped = img.groupby(level=keys, sort=True, observed=True)
        means = grouped.mean()
        sizes = grouped.size().reindex(means.index).to_numpy()
        n_cells = cells.groupby(keys, observed=True, sort=True).size().reindex(means.index)
        tuples = [k if isinstance(k, tuple) else (k,) for k in means.index]
    else:
        means = img.mean().to_frame().T
        sizes, n_cells, tuples = np.array([len(img)]), pd.Series([len(cells)]), [()]
    bounds = np.cumsum(sizes)[:-1]
    samples = {c: np.split(img[c].to_numpy(dtype=float), bounds) for c in columns}
    return tuples, means.reset_index(drop=True), sizes, n_cells.to_numpy(), samples


def _metric_support(rows: pd.DataFrame, metric: str, support: str) -> pd.DataFrame:
    """Rows with a score for ``metric``; on common support, only cells where every restorer
    in ``rows`` has one (a NaN score of one restorer drops the cell for all)."""
    rows = rows.dropna(subset=[metric])
    if support != "common" or rows.empty:
        return rows
    n = rows["restorer"].nunique()
    counts = rows.groupby(list(CELL_COLUMNS), observed=True)["restorer"].transform("nunique")
    return rows[counts == n]


def _supported(
    frame: pd.DataFrame,
    metrics: str | Iterable[str] | None,
    columns: Iterable[str],
    settings: StatsSettings,
    restorers: Iterable[str] | None,
) -> tuple[pd.DataFrame, list[str]]:
    """Validated rows on the chosen support, and the metric list."""
    _, metrics = _check_frame(frame, metrics, columns)
    if restorers is not None:  # names absent from a filtered view are fine; all absent is not
        present = set(frame["restorer"].astype(str).unique())
        if not present & set(map(str, restorers)):
            raise ValueError(
                f"none of the restorers {list(restorers)} is in the table; valid: "
                + ", ".join(sorted(present))
            )
    return on_support(frame, restorers, support=settings.support), metrics


def _input_rows(rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per cell for the degraded input: its scores as the metric columns."""
    cells = rows.drop_duplicates(list(CELL_COLUMNS))
    out = cells[list(CELL_COLUMNS)].copy()
    for m in metrics:
        out[m] = cells[f"input_{m}"].to_numpy()
        out[f"input_{m}"] = cells[f"input_{m}"].to_numpy()
    out["restorer"] = INPUT_LABEL
    return out


# --- public tables ---------------------------------------------------------------------------
def summary_table(
    frame: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    by: Sequence[str] = ("restorer", "degradation", "severity"),
    n_boot: int | None = None,
    seed: int | None = None,
    ci: float | None = None,
    support: str | None = None,
    restorers: Sequence[str] | None = None,
    settings: StatsSettings | None = None,
) -> pd.DataFrame:
    """Mean of each metric per group with a bootstrap confidence interval over images.

    Parameters
    ----------
    frame : DataFrame
        Results table (:func:`restorelab.results.load_results`); failed rows are left out
        and, on common support, so are cells some compared restorer did not finish.
    metrics : str or sequence of str, optional
        Metric columns (each needs an ``input_<metric>`` twin). Default: all of them.
    by : sequence of str
        Grouping columns; ``()`` pools everything into one group.
    n_boot, seed, ci, support
        Override the fields of ``settings`` (default :data:`DEFAULT_SETTINGS`).
    restorers : sequence of str, optional
        The compared restorers (default: every restorer with a finished cell).
    settings : StatsSettings, optional

    Returns
    -------
    DataFrame
        One row per group and metric: ``*by``, ``metric``, ``mean``, ``ci_low``, ``ci_high``,
        ``n`` (images), ``input_mean`` (mean of the degraded input's score, same cells),
        ``n_cells``, ``support`` (``"common cells"`` or ``"own cells"``).

    Notes
    -----
    Within a group each image's rows (its seeds, or several degradations when ``by`` omits
    ``degradation``) are averaged first; ``mean`` is the mean of those per-image means and the
    interval resamples images. On common support a cell whose score is NaN for one restorer
    is left out for all of them.

    Examples
    --------
    >>> frame = pd.DataFrame({"image_id": list("abcd"), "restorer": "tv", "degradation": "blur",
    ...                       "severity": 1, "seed": 0, "psnr": [30.0, 31.0, 32.0, 33.0],
    ...                       "input_psnr": 28.0})
    >>> summary_table(frame, "psnr", n_boot=500)[["metric", "mean", "n", "input_mean"]]
      metric  mean  n  input_mean
    0   psnr  31.5  4        28.0
    """
    settings = make_settings(settings, n_boot=n_boot, seed=seed, ci=ci, support=support)
    by = list(by)
    rows, metrics = _supported(frame, metrics, ["image_id", *by], settings, restorers)
    return _summarise(rows, metrics, by, settings)


def _summarise(
    rows: pd.DataFrame, metrics: Sequence[str], by: list[str], settings: StatsSettings
) -> pd.DataFrame:
    records, samples = [], []
    for order, m in enumerate(metrics):
        part = _metric_support(rows, m, settings.support)
        keys, means, sizes, n_cells, values = _image_groups(part, by, [m, f"input_{m}"])
        samples += values[m]
        for i, key in enumerate(keys):
            records.append(
                {
                    **dict(zip(by, key, strict=True)),
                    "metric": m,
                    "mean": means[m].iloc[i],
                    "n": int(sizes[i]),
                    "input_mean": means[f"input_{m}"].iloc[i],
                    "n_cells": int(n_cells[i]),
                    "_order": order,
                }
            )
    low, high = _bootstrap_intervals(
        samples, n_boot=settings.n_boot, seed=settings.seed, ci=settings.ci
    )
    columns = [*by, "metric", "mean", "ci_low", "ci_high", "n", "input_mean", "n_cells", "support"]
    if not records:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(records)
    table["ci_low"], table["ci_high"] = low, high
    table["support"] = settings.support_label
    table = table.sort_values([*by, "_order"], kind="stable").reset_index(drop=True)
    return table[columns]


def leaderboard(
    frame: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    higher_is_better: Directions | None = None,
    restorers: Sequence[str] | None = None,
    include_input: bool = True,
    settings: StatsSettings | None = None,
    support: str | None = None,
) -> pd.DataFrame:
    """Each restorer's mean per metric over all cells of ``frame``, with CI and gain.

    Parameters
    ----------
    frame : DataFrame
        Results table (filter degradations / severities first for a narrower board).
    metrics : str or sequence of str, optional
        Default: all metrics of ``frame``.
    higher_is_better : mapping, optional
        Directions (``run.json`` ``metrics`` entry or ``{name: bool}``); else the registry.
    restorers : sequence of str, optional
        The compared restorers (default: all with a finished cell).
    include_input : bool
        Add the degraded input as a row labelled :data:`INPUT_LABEL` (common support only).
    settings, support
        See :class:`StatsSettings`.

    Returns
    -------
    DataFrame
        One row per restorer × metric: ``restorer``, ``metric``, ``higher_is_better``,
        ``mean``, ``ci_low``, ``ci_high``, ``input_mean``, ``delta`` (mean of restored −
        input, raw sign), ``delta_ci_low``, ``delta_ci_high``, ``n_images``, ``n_cells``,
        ``finished``, ``planned`` (cells of the run), ``rank`` (1 = best by the metric's
        direction; the input row is ranked too), ``support``. Rows are ordered by the first
        metric, best first.
    """
    settings = make_settings(settings, support=support)
    rows, metrics = _supported(frame, metrics, [*CELL_COLUMNS, "restorer"], settings, restorers)
    directions = resolve_directions(metrics, higher_is_better)
    columns = ["restorer", "metric", "higher_is_better", "mean", "ci_low", "ci_high",
               "input_mean", "delta", "delta_ci_low", "delta_ci_high", "n_images", "n_cells",
               "finished", "planned", "rank", "support"]  # fmt: skip
    if rows.empty:
        return pd.DataFrame(columns=columns)
    work = rows.copy()
    for m in metrics:
        work[f"_delta_{m}"] = work[m] - work[f"input_{m}"]
    parts = [work]
    if include_input and settings.support == "common":
        inputs = _input_rows(work, metrics)
        for m in metrics:
            inputs[f"_delta_{m}"] = 0.0
        parts.append(inputs)
    work = pd.concat(parts, ignore_index=True)
    records, samples = [], []
    for m in metrics:
        part = _metric_support(work[work["restorer"] != INPUT_LABEL], m, settings.support)
        if include_input and settings.support == "common":
            cells = _cells_index(part)
            inputs = work[work["restorer"] == INPUT_LABEL]
            part = pd.concat([part, inputs[_cells_index(inputs).isin(cells)]])
        wanted = [m, f"input_{m}", f"_delta_{m}"]
        keys, means, sizes, n_cells, values = _image_groups(part, ["restorer"], wanted)
        for i, (restorer,) in enumerate(keys):
            samples += [values[m][i], values[f"_delta_{m}"][i]]
            records.append(
                {
                    "restorer": str(restorer),
                    "metric": m,
                    "higher_is_better": directions[m],
                    "mean": means[m].iloc[i],
                    "input_mean": means[f"input_{m}"].iloc[i],
                    "delta": means[f"_delta_{m}"].iloc[i],
                    "n_images": int(sizes[i]),
                    "n_cells": int(n_cells[i]),
                }
            )
    low, high = _bootstrap_intervals(
        samples, n_boot=settings.n_boot, seed=settings.seed, ci=settings.ci
    )
    table = pd.DataFrame(records)
    table["ci_low"], table["ci_high"] = low[0::2], high[0::2]
    table["delta_ci_low"], table["delta_ci_high"] = low[1::2], high[1::2]
    cover = coverage(frame).set_index("restorer")
    table["finished"] = table["restorer"].map(cover["finished"]).astype("Int64")
    table["planned"] = table["restorer"].map(cover["planned"]).astype("Int64")
    table["rank"] = 0
    for m in metrics:
        sel = table["metric"] == m
        table.loc[sel, "rank"] = (
            table.loc[sel, "mean"].rank(ascending=not directions[m], method="min").astype(int)
        )
    table["support"] = settings.support_label
    first = metrics[0]
    ranked = table[table["metric"] == first]
    ranked = ranked.assign(_input=ranked["restorer"] == INPUT_LABEL)  # ties: restorers first
    order = ranked.sort_values(
        ["mean", "_input"], ascending=[not directions[first], True], kind="stable"
    )["restorer"]
    position = {r: i for i, r in enumerate(order)}
    table["_pos"] = table["restorer"].map(position).fillna(len(position))
    table["_m"] = table["metric"].map({m: i for i, m in enumerate(metrics)})
    table = table.sort_values(["_pos", "_m"], kind="stable").reset_index(drop=True)
    return table[columns]


def severity_curves(
    frame: pd.DataFrame,
    metric: str,
    *,
    restorers: Sequence[str] | None = None,
    include_input: bool = True,
    settings: StatsSettings | None = None,
) -> pd.DataFrame:
    """Mean and CI of one metric per degradation × severity × restorer, in long form.

    Returns
    -------
    DataFrame
        ``degradation``, ``severity``, ``restorer`` (the degraded input as
        :data:`INPUT_LABEL` when ``include_input``), ``mean``, ``ci_low``, ``ci_high``, ``n``
        (images), ``support``; the numbers of :func:`summary_table` on the same settings.
    """
    settings = make_settings(settings)
    by = ["restorer", "degradation", "severity"]
    rows, metrics = _supported(frame, metric, [*CELL_COLUMNS, "restorer"], settings, restorers)
    m = metrics[0]
    table = _summarise(rows, [m], by, settings)
    if include_input and settings.support == "common" and not rows.empty:
        cells = _cells_index(_metric_support(rows, m, settings.support))
        inputs = _input_rows(rows, [m])
        inputs = inputs[_cells_index(inputs).isin(cells)]
        table = pd.concat([_summarise(inputs, [m], by, settings), table], ignore_index=True)
    columns = ["degradation", "severity", "restorer", "mean", "ci_low", "ci_high", "n", "support"]
    return (
        table[columns]
        .sort_values(["degradation", "severity"], kind="stable")
        .reset_index(drop=True)
    )


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test reaches with ``n`` pairs
    (``2 / 2**n``: 0.25 for 3 images, 0.0625 for 5, 0.031 for 6); NaN for n = 0."""
    return 2.0 ** (1 - n) if n > 0 else math.nan


def small_sample_note(n: int, ci: float = 0.95) -> str:
    """A warning when ``n`` images cannot reach significance at level ``1 − ci``, else ""."""
    floor = min_wilcoxon_p(n)
    if n == 0 or floor <= 1 - ci + 1e-12:
        return ""
    return f"{n} images: p cannot go below {floor:.3g} (needs ≥ {_images_needed(ci)} images)"


def _images_needed(ci: float) -> int:
    return next(n for n in range(1, 64) if min_wilcoxon_p(n) <= 1 - ci + 1e-12)


def _wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p; 1.0 when every difference is zero, NaN without data."""
    if len(diffs) == 0:
        return math.nan
    if not np.any(diffs != 0):
        return 1.0
    with warnings.catch_warnings():  # small-sample / zero-handling notices, not user errors
        warnings.simplefilter("ignore", category=UserWarning)
        from scipy import stats as scipy_stats  # 0.3 s to import: only paired tests need it

        return float(scipy_stats.wilcoxon(diffs).pvalue)


def paired_comparison(
    frame: pd.DataFrame,
    a: str,
    b: str,
    metrics: str | Sequence[str] | None = None,
    *,
    by: Sequence[str] = ("degradation", "severity"),
    higher_is_better: Directions | None = None,
    tie_tolerance: Mapping[str, float] | float | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
    ci: float | None = None,
    overall: bool = True,
    settings: StatsSettings | None = None,
) -> pd.DataFrame:
    """Restorer ``a`` against ``b`` on the cells both finished.

    Parameters
    ----------
    frame : DataFrame
        Results table; failed rows are ignored.
    a, b : str
        Restorer labels (the ``restorer`` column).
    metrics : str or sequence of str, optional
        Metrics to compare. Default: all.
    by : sequence of str
        Grouping columns, a subset of ``degradation``, ``severity``, ``seed``.
    higher_is_better : mapping, optional
        Direction per metric (``{name: bool}`` or a ``run.json`` ``metrics`` entry); metrics
        not given are looked up in the metric registry.
    tie_tolerance : mapping or float, optional
        ``|a − b| <= tolerance`` counts as a tie. Default: the settings' tolerances
        (:data:`DEFAULT_TIE_TOLERANCE`); a mapping overrides entries, a float applies to all.
    n_boot, seed, ci
        Override the fields of ``settings``.
    overall : bool
        Append one pooled row per metric (all cells), marked ``overall=True`` with missing
        ``by`` values.
    settings : StatsSettings, optional

    Returns
    -------
    DataFrame
        One row per group and metric: ``*by``, ``overall``, ``metric``, ``higher_is_better``,
        ``a``, ``b``, ``mean_diff`` (mean of a − b), ``ci_low``, ``ci_high``, ``p_value``,
        ``min_p`` (smallest p reachable with these images), ``wins``, ``ties``, ``losses``,
        ``n_images``, ``n_cells``, ``note`` (small-sample warning, else "").

    Notes
    -----
    The two restorers are inner-joined on (image_id, degradation, severity, seed); duplicate
    rows of a restorer in one cell are averaged. The differences of each image are averaged,
    and both the bootstrap interval and the Wilcoxon signed-rank test (two-sided) run on those
    per-image differences; ``p_value`` is 1 when all of them are zero. ``wins``/``ties``/
    ``losses`` count *cells* and are oriented by the metric's direction: a win means ``a`` is
    better by more than the tie tolerance, whichever way "better" points.
    """
    settings = make_settings(settings, n_boot=n_boot, seed=seed, ci=ci)
    by = list(by)
    frame_ok, metrics = _check_frame(frame, metrics, [*CELL_COLUMNS, "restorer"])
    bad_by = [c for c in by if c not in CELL_COLUMNS[1:]]
    if bad_by:
        raise ValueError(f"by must name cell columns ({', '.join(CELL_COLUMNS[1:])}), got {bad_by}")
    _check_restorer(frame_ok, a)
    _check_restorer(frame_ok, b)
    if a == b:
        raise ValueError(f"compare two different restorers, got {a!r} twice")
    directions = resolve_directions(metrics, higher_is_better)
    tolerance = _resolve_tolerances(metrics, settings, tie_tolerance)

    cells = list(CELL_COLUMNS)
    sides = [
        frame_ok[frame_ok["restorer"] == name].groupby(cells, observed=True)[metrics].mean()
        for name in (a, b)
    ]
    joined = sides[0].add_suffix("_a").join(sides[1].add_suffix("_b"), how="inner")
    if joined.empty:
        raise ValueError(
            f"restorers {a!r} and {b!r} share no finished cells (image, degradation, ...)"
        )
    diffs = pd.DataFrame({m: joined[f"{m}_a"] - joined[f"{m}_b"] for m in metrics}).reset_index()

    groups = _groups(diffs, by)
    images = diffs.groupby([*by, "image_id"], observed=True, sort=True)[metrics].mean()
    if by:  # per-image means of every group at once, in the groups' (sorted) order
        image_groups = [g for _, g in images.groupby(level=by, sort=True, observed=True)]
    else:
        image_groups = [images]
    keyed = [
        (dict(zip(by, key, strict=True)), False, g, ig)
        for (key, g), ig in zip(groups, image_groups, strict=True)
    ]
    if overall:
        keyed.append(({c: None for c in by}, True, diffs, _per_image(diffs, metrics)))
    rows, samples = [], []
    for labels, is_overall, group, per_images in keyed:
        for m in metrics:
            d = group[m].dropna().to_numpy(dtype=float)
            sign = 1.0 if directions[m] else -1.0
            per_image = per_images[m].dropna().to_numpy(dtype=float)
            samples.append(per_image)
            rows.append(
                {
                    **labels,
                    "overall": is_overall,
                    "metric": m,
                    "higher_is_better": directions[m],
                    "a": a,
                    "b": b,
                    "mean_diff": per_image.mean() if len(per_image) else math.nan,
                    "p_value": _wilcoxon_p(per_image),
                    "min_p": min_wilcoxon_p(len(per_image)),
                    "wins": int(np.sum(sign * d > tolerance[m])),
                    "ties": int(np.sum(np.abs(d) <= tolerance[m])),
                    "losses": int(np.sum(sign * d < -tolerance[m])),
                    "n_images": len(per_image),
                    "n_cells": len(d),
                    "note": small_sample_note(len(per_image), settings.ci),
                }
            )
    low, high = _bootstrap_intervals(
        samples, n_boot=settings.n_boot, seed=settings.seed, ci=settings.ci
    )
    table = pd.DataFrame(rows)
    at = table.columns.get_loc("mean_diff") + 1
    table.insert(at, "ci_low", low)
    table.insert(at + 1, "ci_high", high)
    if "severity" in by:
        table["severity"] = table["severity"].astype("Int64")
    if "seed" in by:
        table["seed"] = table["seed"].astype("Int64")
    return table


def severity_gains(
    frame: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    higher_is_better: Directions | None = None,
    restorers: Sequence[str] | None = None,
    settings: StatsSettings | None = None,
) -> pd.DataFrame:
    """Gain over the degraded input per restorer × degradation × severity × metric, with CI.

    Returns
    -------
    DataFrame
        ``restorer``, ``degradation``, ``severity``, ``metric``, ``gain`` (mean over images of
        restored − input, sign flipped for lower-is-better metrics so that positive always
        means improvement), ``ci_low``, ``ci_high``, ``mean`` (restored score), ``input_mean``,
        ``n_images``, ``support``.
    """
    settings = make_settings(settings)
    rows, metrics = _supported(frame, metrics, [*CELL_COLUMNS, "restorer"], settings, restorers)
    directions = resolve_directions(metrics, higher_is_better)
    keys = ["restorer", "degradation", "severity"]
    records, samples = [], []
    for m in metrics:
        part = _metric_support(rows, m, settings.support).dropna(subset=[f"input_{m}"])
        sign = 1.0 if directions[m] else -1.0
        part = part.assign(_gain=sign * (part[m] - part[f"input_{m}"]))
        groups, means, sizes, _, values = _image_groups(part, keys, [m, f"input_{m}", "_gain"])
        samples += values["_gain"]
        for i, key in enumerate(groups):
            records.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "metric": m,
                    "gain": means["_gain"].iloc[i],
                    "mean": means[m].iloc[i],
                    "input_mean": means[f"input_{m}"].iloc[i],
                    "n_images": int(sizes[i]),
                }
            )
    low, high = _bootstrap_intervals(
        samples, n_boot=settings.n_boot, seed=settings.seed, ci=settings.ci
    )
    columns = [*keys, "metric", "gain", "ci_low", "ci_high", "mean", "input_mean", "n_images",
               "support"]  # fmt: skip
    if not records:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(records)
    table["ci_low"], table["ci_high"] = low, high
    table["support"] = settings.support_label
    return table[columns]


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}" if np.isfinite(value) else "—"


def breakdown_severity(
    frame: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    higher_is_better: Directions | None = None,
    threshold: Mapping[str, float] | float | None = None,
    tie_tolerance: Mapping[str, float] | float | None = None,
    rule: str = "ci",
    restorers: Sequence[str] | None = None,
    settings: StatsSettings | None = None,
) -> pd.DataFrame:
    """The first severity at which each restorer stops helping, per degradation and metric.

    Parameters
    ----------
    frame : DataFrame
        Results table; failed rows are ignored, cells follow the settings' support.
    metrics : str or sequence of str, optional
        Metrics to examine. Default: all.
    higher_is_better : mapping, optional
        Direction per metric, as in :func:`paired_comparison`.
    threshold : mapping or float, optional
        A quality floor: the restorer also breaks down where its mean restored score is worse
        than this (below it when higher is better, above it otherwise), e.g.
        ``{"psnr": 20}``. A float is allowed with a single metric only.
    tie_tolerance : mapping or float, optional
        Gains at most this large count as no gain (default: the settings' tolerances, e.g.
        0.01 dB for PSNR).
    rule : {"ci", "mean"}
        ``"ci"`` (default): breaks where a gain ≤ tolerance lies within the gain's confidence
        interval (its lower end is ≤ tolerance); ``"mean"``: only where the mean gain is.
    restorers, settings
        As in :func:`summary_table`.

    Returns
    -------
    DataFrame
        One row per restorer × degradation × metric: ``restorer``, ``degradation``,
        ``metric``, ``breaks_at`` (first failing severity; ``<NA>`` when it never fails within
        the grid), ``reason`` (``"no gain (+0.00)"``, ``"gain not significant (+0.12, CI low
        -0.05)"`` and/or ``"psnr < 20"``; empty when it never fails), ``gains`` (mean gain at
        each severity, e.g. ``"1:+2.00 2:+1.00 3:+0.00"``, two decimals for metrics on a scale
        of 10 or more, three otherwise), ``n_images``, ``support``. The gains with their
        intervals are :func:`severity_gains`.
    """
    settings = make_settings(settings)
    if rule not in ("ci", "mean"):
        raise ValueError(f"rule must be 'ci' or 'mean', got {rule!r}")
    _, metrics = _check_frame(frame, metrics, [*CELL_COLUMNS, "restorer"])
    directions = resolve_directions(metrics, higher_is_better)
    tolerances = _resolve_tolerances(metrics, settings, tie_tolerance)
    if threshold is None:
        floors: dict[str, float] = {}
    elif isinstance(threshold, Mapping):
        unknown = [m for m in threshold if m not in metrics]
        if unknown:
            raise ValueError(f"threshold for unknown metric(s) {unknown}; valid: {metrics}")
        floors = {m: float(v) for m, v in threshold.items()}
    else:
        if len(metrics) != 1:
            raise ValueError(
                f"a single threshold needs a single metric, got {metrics}; "
                "pass a mapping such as {'psnr': 20}"
            )
        floors = {metrics[0]: float(threshold)}
    gains = severity_gains(
        frame, metrics, higher_is_better=directions, restorers=restorers, settings=settings
    )
    rows = []
    columns = ["restorer", "degradation", "metric", "breaks_at", "reason", "gains", "n_images",
               "support"]  # fmt: skip
    for (restorer, degradation, m), group in gains.groupby(
        ["restorer", "degradation", "metric"], sort=True, observed=True
    ):
        group = group.sort_values("severity")
        sign = 1.0 if directions[m] else -1.0
        digits = _decimals(group["mean"])
        breaks_at, reason, text = None, "", []
        for row in group.itertuples(index=False):
            text.append(f"{int(row.severity)}:{_signed(row.gain, digits)}")
            if breaks_at is not None:
                continue
            why = []
            if row.gain <= tolerances[m]:
                why.append(f"no gain ({_signed(row.gain, digits)})")
            elif rule == "ci" and row.ci_low <= tolerances[m]:
                why.append(
                    f"gain not significant ({_signed(row.gain, digits)}, CI low "
                    f"{_signed(row.ci_low, digits)})"
                )
            if m in floors and sign * (row.mean - floors[m]) < 0:
                why.append(f"{m} {'<' if directions[m] else '>'} {floors[m]:g}")
            if why:
                breaks_at, reason = int(row.severity), "; ".join(why)
        rows.append(
            {
                "restorer": restorer,
                "degradation": degradation,
                "metric": m,
                "breaks_at": breaks_at,
                "reason": reason,
                "gains": " ".join(text),
                "n_images": int(group["n_images"].max()),
                "support": settings.support_label,
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    table["breaks_at"] = table["breaks_at"].astype("Int64")
    return table


# --- run-folder report -----------------------------------------------------------------------
def load_run_table(
    run_dir: str | os.PathLike, *, skip_damaged: bool = False
) -> tuple[pd.DataFrame, dict]:
    """All result rows of a run folder (failed rows included) and its ``run.json``.

    A damaged or foreign result part raises :class:`~restorelab.results.DamagedPartsError`
    naming it, unless ``skip_damaged`` (then it is left out with a warning).
    """
    return load_results(run_dir, skip_damaged=skip_damaged), read_run_info(run_dir)


def run_fingerprint(run_dir: str | os.PathLike, settings: StatsSettings | None = None) -> str:
    """A key for caching a run's tables: changes when a result part or ``run.json`` is
    added, removed or rewritten, or when the settings change (16 hex digits)."""
    import hashlib

    from restorelab.results import RUN_FILE, ResultsStore

    digest = hashlib.sha256(repr(settings or DEFAULT_SETTINGS).encode())
    paths = [*ResultsStore(run_dir).part_files(), Path(run_dir) / RUN_FILE]
    for path in sorted(paths):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@dataclass
class Report:
    """The statistics tables of one run (see :func:`build_report`)."""

    summary: pd.DataFrame
    breakdown: pd.DataFrame
    paired: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    leaderboard: pd.DataFrame = field(default_factory=pd.DataFrame)
    coverage: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    gains: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: StatsSettings = DEFAULT_SETTINGS
    kind: str = "grid"
    support: str = ""
    title: str = ""
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Name → table: leaderboard, summary, gains, breakdown, coverage, failures and
        ``paired_<a>_vs_<b>`` per pair."""
        tables = {
            "leaderboard": self.leaderboard,
            "summary": self.summary,
            "gains": self.gains,
            "breakdown": self.breakdown,
            "coverage": self.coverage,
            "failures": self.failures,
        }
        return tables | {_paired_name(a, b): t for (a, b), t in self.paired.items()}

    def meta(self) -> dict:
        """Settings, kind, directions, support line and title (``report/report.json``)."""
        return {
            "format": "restorelab-report/2",
            "kind": self.kind,
            "title": self.title,
            "support": self.support,
            "notes": list(self.notes),
            "settings": self.settings.to_dict(),
            "higher_is_better": self.higher_is_better,
            "pairs": [list(p) for p in self.paired],
        }

    def write(self, run_dir: str | os.PathLike) -> dict[str, Path]:
        """Store the tables as Parquet under ``RUN_DIR/report/`` (and ``report.json``);
        returns name → path. Paired tables of earlier reports are removed."""
        folder = Path(run_dir) / REPORT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tables = self.tables()
        for stale in folder.glob("paired_*.parquet"):
            if stale.stem not in tables:
                stale.unlink()
        paths = {}
        for name, table in tables.items():
            path = folder / f"{name}.parquet"
            tmp = folder / f".{name}.parquet.tmp{os.getpid()}"
            table.to_parquet(tmp, index=False)
            os.replace(tmp, path)
            paths[name] = path
        meta = folder / "report.json"
        tmp = folder / f".report.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(self.meta(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, meta)
        return paths


def _paired_name(a: str, b: str) -> str:
    """``paired_<a>_vs_<b>``, cut to 180 characters plus a hash of the labels when longer
    (labels of restorers with file paths in their options exceed file-name limits); the
    labels themselves are read back from the table's ``a`` and ``b`` columns."""

    def clean(label: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", label)

    name = f"paired_{clean(a)}_vs_{clean(b)}"
    if len(name) > 180:
        digest = hashlib.sha256(f"{a}\0{b}".encode()).hexdigest()[:12]
        name = f"{name[:167]}-{digest}"
    return name


def _pairs(vs) -> list[tuple[str, str]]:
    if vs is None:
        return []
    if len(vs) == 2 and all(isinstance(v, str) for v in vs):
        return [(vs[0], vs[1])]
    pairs = [tuple(p) for p in vs]
    bad = [p for p in pairs if len(p) != 2 or not all(isinstance(v, str) for v in p)]
    if bad:
        raise ValueError(f"vs must be a pair (A, B) or a list of pairs, got {vs!r}")
    return pairs


def _run_title(run_info: Mapping, kind: str, run_dir: str) -> str:
    if not run_dir and not run_info:
        return "restorelab report"
    run_dir = run_dir or "(results table)"
    if kind == "paired":
        pairs = run_info.get("pairs", {})
        where = f"{pairs.get('lq_dir', '?')} vs {pairs.get('gt_dir', '?')}" if pairs else ""
        return f"run {run_dir} · paired test set {where}".rstrip()
    grid = run_info.get("grid", {}) or {}
    return f"run {run_dir} · grid {grid.get('name', '?')}"


def build_report(
    frame: pd.DataFrame,
    run_info: Mapping | None = None,
    *,
    vs: Sequence[str] | Sequence[Sequence[str]] | None = None,
    metrics: str | Sequence[str] | None = None,
    threshold: Mapping[str, float] | float | None = None,
    settings: StatsSettings | None = None,
    run_dir: str = "",
) -> Report:
    """All statistics tables of a results table (the report of ``restorelab report``).

    Parameters
    ----------
    frame : DataFrame
        Results table with its failed rows (:func:`load_run_table`).
    run_info : mapping, optional
        The run's ``run.json``: metric directions and whether it is a paired test set.
    vs : pair or list of pairs of str, optional
        Restorers to compare with :func:`paired_comparison`.
    metrics : str or sequence of str, optional
        Default: all metrics of the run.
    threshold : mapping or float, optional
        Passed to :func:`breakdown_severity`.
    settings : StatsSettings, optional
        Default :data:`DEFAULT_SETTINGS`.
    """
    settings = settings or DEFAULT_SETTINGS
    run_info = dict(run_info or {})
    if frame.empty:
        raise ValueError(f"no results in {run_dir or 'the table'}; run `restorelab bench` first")
    pairs = _pairs(vs)
    _, metrics = _check_frame(frame, metrics, [*CELL_COLUMNS, "restorer"], allow_empty=True)
    labels = set(frame["restorer"].astype(str).unique())
    finished = set(finished_rows(frame)["restorer"].astype(str).unique())
    for a, b in pairs:
        for name in (a, b):
            if name not in labels:
                raise ValueError(f"unknown restorer {name!r}; valid: {', '.join(sorted(labels))}")
            if name not in finished:
                raise ValueError(f"restorer {name!r} finished no cell; nothing to compare")
    directions = metric_directions(run_info, metrics)
    kind = "paired" if is_paired_run(frame, run_info) else "grid"
    report = Report(
        summary=pd.DataFrame(),
        breakdown=pd.DataFrame(),
        higher_is_better=directions,
        coverage=coverage(frame),
        failures=failures(frame),
        settings=settings,
        kind=kind,
        support=support_note(frame, settings),
        title=_run_title(run_info, kind, run_dir),
    )
    report.notes = _label_notes(frame)
    if not finished:
        return report
    report.leaderboard = leaderboard(frame, metrics, higher_is_better=directions, settings=settings)
    report.summary = summary_table(frame, metrics, settings=settings)
    report.gains = severity_gains(frame, metrics, higher_is_better=directions, settings=settings)
    if kind == "grid":
        report.breakdown = breakdown_severity(
            frame, metrics, higher_is_better=directions, threshold=threshold, settings=settings
        )
    by = ("degradation", "severity") if kind == "grid" else ()
    report.paired = {
        (a, b): paired_comparison(
            frame,
            a,
            b,
            metrics,
            by=by,
            overall=bool(by),
            higher_is_better=directions,
            settings=settings,
        )
        for a, b in pairs
    }
    return report


def _label_notes(frame: pd.DataFrame) -> list[str]:
    """Warnings about labels that stand for several restorer configurations."""
    if "config_hash" not in frame.columns:
        return []
    counts = frame.groupby("restorer", observed=True)["config_hash"].nunique()
    return [
        f"note: {name} stands for {n} configurations (config_hash "
        + ", ".join(sorted(map(str, frame.loc[frame["restorer"] == name, "config_hash"].unique())))
        + "); their rows are averaged per cell. Give each its own label (cmd[name=...]:...)"
        for name, n in counts.items()
        if n > 1
    ]


def compute_report(
    run_dir: str | os.PathLike,
    *,
    vs: Sequence[str] | Sequence[Sequence[str]] | None = None,
    metrics: str | Sequence[str] | None = None,
    threshold: Mapping[str, float] | float | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
    settings: StatsSettings | None = None,
    support: str | None = None,
    skip_damaged: bool = False,
) -> Report:
    """All statistics tables of a run folder (:func:`build_report` on its results).

    ``n_boot``, ``seed`` and ``support`` override the fields of ``settings``
    (default :data:`DEFAULT_SETTINGS`). Directions come from the run's ``run.json``.
    ``skip_damaged`` leaves damaged result parts out (see :func:`load_run_table`).
    """
    settings = make_settings(settings, n_boot=n_boot, seed=seed, support=support)
    frame, info = load_run_table(run_dir, skip_damaged=skip_damaged)
    return build_report(
        frame, info, vs=vs, metrics=metrics, threshold=threshold, settings=settings,
        run_dir=str(run_dir),
    )  # fmt: skip


def write_report(
    run_dir: str | os.PathLike,
    *,
    vs: Sequence[str] | Sequence[Sequence[str]] | None = None,
    metrics: str | Sequence[str] | None = None,
    threshold: Mapping[str, float] | float | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
    settings: StatsSettings | None = None,
    support: str | None = None,
) -> dict[str, Path]:
    """Compute the report of a run folder and store it under ``RUN_DIR/report/``.

    Parameters are those of :func:`compute_report`.

    Returns
    -------
    dict of str to Path
        Table name (see :meth:`Report.tables`) → ``report/<name>.parquet``.
    """
    report = compute_report(
        run_dir, vs=vs, metrics=metrics, threshold=threshold, n_boot=n_boot, seed=seed,
        settings=settings, support=support,
    )  # fmt: skip
    return report.write(run_dir)


def load_report(run_dir: str | os.PathLike) -> Report:
    """Read back the tables :func:`write_report` stored under ``RUN_DIR/report/``."""
    folder = Path(run_dir) / REPORT_DIR
    if not (folder / "summary.parquet").is_file():
        raise FileNotFoundError(
            f"no report in {folder}; make one with `restorelab report {run_dir}`"
        )

    def read(name: str) -> pd.DataFrame:
        path = folder / f"{name}.parquet"
        return pd.read_parquet(path) if path.is_file() else pd.DataFrame()

    meta_path = folder / "report.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    paired = {}
    for path in sorted(folder.glob("paired_*.parquet")):
        table = pd.read_parquet(path)
        if not table.empty:
            paired[(str(table["a"].iloc[0]), str(table["b"].iloc[0]))] = table
    summary = read("summary")
    directions = meta.get("higher_is_better") or metric_directions(
        read_run_info(run_dir), list(dict.fromkeys(summary.get("metric", [])))
    )
    stored = dict(meta.get("settings") or {})
    tolerance = stored.pop("tie_tolerance", {}) or {}
    settings = StatsSettings(
        **{k: v for k, v in stored.items() if k in ("n_boot", "ci", "seed", "support")},
        tie_tolerance=tuple(sorted(tolerance.items())),
    )
    return Report(
        summary=summary,
        breakdown=read("breakdown"),
        paired=paired,
        higher_is_better=dict(directions),
        leaderboard=read("leaderboard"),
        coverage=read("coverage"),
        failures=read("failures"),
        gains=read("gains"),
        settings=settings,
        kind=meta.get("kind", "grid"),
        support=meta.get("support", ""),
        title=meta.get("title", ""),
        notes=list(meta.get("notes", [])),
    )


# --- rendering -------------------------------------------------------------------------------
def _decimals(values: Iterable[float]) -> int:
    finite = [abs(v) for v in values if v is not None and not pd.isna(v) and np.isfinite(v)]
    return 2 if finite and max(finite) >= 10 else 3


def _cell(mean: float, lo: float, hi: float, digits: int, signed: bool = False) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    if pd.isna(mean) or not np.isfinite(mean):
        return "—"
    if pd.isna(lo) or pd.isna(hi):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def decimals(values: Iterable[float]) -> int:
    """Decimals the report prints for a column: 2 on a scale of 10 or more (dB), else 3."""
    return _decimals(values)


def format_interval(
    mean: float, low: float, high: float, digits: int, *, signed: bool = False
) -> str:
    """``"26.00 [25.12, 27.03]"`` as in the report (``"—"`` for a missing mean)."""
    return _cell(mean, low, high, digits, signed)


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if not pd.isna(value) and np.isfinite(value) else "—"


def _severity(value: object) -> str:
    return "never" if pd.isna(value) else str(int(value))


class _Labels:
    """Restorer labels cut to ``limit`` characters for text tables, with a legend."""

    def __init__(self, limit: int = 28) -> None:
        self.limit = limit
        self.shortened: dict[str, str] = {}

    def __call__(self, label: str) -> str:
        label = str(label)
        if len(label) <= self.limit:
            return label
        if label not in self.shortened:
            short = label[: self.limit - 3] + "…"
            taken = set(self.shortened.values())
            n = 2
            while short in taken:
                short = label[: self.limit - 3 - len(str(n))] + f"…{n}"
                n += 1
            self.shortened[label] = short
        return self.shortened[label]

    def legend(self) -> list[str]:
        if not self.shortened:
            return []
        lines = ["shortened labels (give a short one with cmd[name=NAME]:…):"]
        return lines + [f"  {short} = {full}" for full, short in self.shortened.items()]


def _text_block(header: list[str], body: list[list[str]], width: int = 100) -> list[str]:
    """Aligned columns; columns after the first are split into several blocks when the
    table would be wider than ``width`` (the first column is repeated in each)."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    chunks: list[list[int]] = [[]]
    used = widths[0]
    for i in range(1, len(header)):
        if chunks[-1] and used + 2 + widths[i] > width:
            chunks.append([])
            used = widths[0]
        chunks[-1].append(i)
        used += 2 + widths[i]
    lines: list[str] = []
    for k, chunk in enumerate(chunks):
        if k:
            lines.append("")
        for row in [header, *body]:
            cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in chunk]
            lines.append("  ".join(cells).rstrip())
    return lines


def _md_block(header: list[str], body: list[list[str]]) -> list[str]:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _arrow(better: bool) -> str:
    return "↑" if better else "↓"


def _sections(report: Report, labels: _Labels) -> list[tuple[str, list[str], list[list[str]]]]:
    """(heading, header, body) of every table of the report, or (line, [], []) for notes."""
    pct = f"{report.settings.ci:.0%}"
    paired_run = report.kind == "paired"
    own = report.settings.support == "own"
    own_note = " · OWN cells per restorer (not comparable)" if own else ""
    out: list[tuple[str, list[str], list[list[str]]]] = []
    out += [(note, [], []) for note in report.notes]
    cover = report.coverage
    if not cover.empty:
        body = [
            [labels(r.restorer), f"{r.finished}/{r.planned}", str(r.failed), str(r.missing),
             str(r.common), r.status]
            for r in cover.itertuples(index=False)
        ]  # fmt: skip
        out.append(
            (
                "coverage: finished / planned cells per restorer",
                ["restorer", "finished", "failed", "not run", "common", "status"],
                body,
            )
        )
    fails = report.failures
    if not fails.empty:
        lines = [
            [f"{labels(r.restorer)}: {_plural(r.cells, 'cell')} ({_plural(r.images, 'image')}) · "
             f"{r.reason} · e.g. {r.example}"]
            for r in fails.itertuples(index=False)
        ]  # fmt: skip
        out.append(("failed cells by restorer and reason", [], lines))
        dead = cover[cover["status"] == "no finished cell"]["restorer"] if not cover.empty else []
        for name in dead:
            out.append(
                (f"note: {name} finished no cell and is left out of every table below", [], [])
            )
    board = report.leaderboard
    if not board.empty:
        metrics = list(dict.fromkeys(board["metric"]))
        where = "the paired test set" if paired_run else "all degradations and severities"
        header = ["restorer"]
        for m in metrics:
            header += [f"{m} {_arrow(report.higher_is_better.get(m, True))}", f"Δ {m}"]
        header.append("cells")
        body = []
        for restorer, group in board.groupby("restorer", sort=False):
            row = [labels(restorer)]
            rows = group.set_index("metric")
            for m in metrics:
                digits = _decimals(board.loc[board["metric"] == m, "mean"])
                if m in rows.index:
                    r = rows.loc[m]
                    row.append(_cell(r["mean"], r["ci_low"], r["ci_high"], digits))
                    row.append(
                        "—" if restorer == INPUT_LABEL
                        else _cell(r["delta"], r["delta_ci_low"], r["delta_ci_high"], digits,
                                   signed=True)
                    )  # fmt: skip
                else:
                    row += ["—", "—"]
            row.append(str(int(group["n_cells"].max())))
            body.append(row)
        out.append(
            (
                f"leaderboard · {where} · mean [{pct} CI] · Δ = restored − input{own_note}",
                header,
                body,
            )
        )
    summary = report.summary
    if not summary.empty and not paired_run:
        for (degradation, metric), block in summary.groupby(["degradation", "metric"], sort=True):
            better = report.higher_is_better.get(metric, True)
            severities = sorted(block["severity"].unique())
            digits = _decimals(block["mean"])
            inputs = block.groupby("severity")["input_mean"].mean()
            body = [[INPUT_LABEL, *[_number(inputs.get(s, np.nan), digits) for s in severities]]]
            if own:  # each restorer's input differs: its Δ is in the leaderboard
                body = []
            order = block.groupby("restorer")["mean"].mean().sort_values(ascending=not better)
            for restorer in order.index:
                rows = block[block["restorer"] == restorer].set_index("severity")
                body.append(
                    [labels(restorer)]
                    + [
                        _cell(*rows.loc[s, ["mean", "ci_low", "ci_high"]], digits)
                        if s in rows.index
                        else "—"
                        for s in severities
                    ]
                )
            arrow = "higher is better" if better else "lower is better"
            out.append(
                (
                    f"{degradation} · {metric} ({_arrow(better)} {arrow}) · mean [{pct} CI]"
                    f"{own_note}",
                    ["restorer", *[f"severity {int(s)}" for s in severities]],
                    body,
                )
            )
    for (a, b), table in report.paired.items():
        for metric, block in table.groupby("metric", sort=False):
            digits = _decimals(block["mean_diff"]) + 1
            body = []
            for row in block.itertuples(index=False):
                if paired_run:
                    where = "all pairs"
                elif row.overall:
                    where = "all cells"
                else:
                    where = f"{row.degradation} {int(row.severity)}"
                body.append(
                    [
                        where,
                        _cell(row.mean_diff, row.ci_low, row.ci_high, digits, signed=True),
                        f"{row.p_value:.3g}" if not pd.isna(row.p_value) else "—",
                        f"{row.wins}/{row.ties}/{row.losses}",
                        str(row.n_images),
                    ]
                )
            better = _arrow(bool(block["higher_is_better"].iloc[0]))
            out.append(
                (
                    f"{labels(a)} vs {labels(b)} · {metric} {better} · a − b [{pct} CI], "
                    f"Wilcoxon p, wins/ties/losses of a",
                    [metric, "a − b", "p", "W/T/L", "images"],
                    body,
                )
            )
            for note in dict.fromkeys(n for n in block["note"] if n):
                out.append((f"note: {note}", [], []))
    breakdown = report.breakdown
    if paired_run:
        out.append(("breakdown: not applicable to a paired test set (one level); see Δ", [], []))
    elif not breakdown.empty:
        body = [
            [labels(r.restorer), str(r.degradation), str(r.metric), _severity(r.breaks_at),
             r.reason or "—"]
            for r in breakdown.itertuples(index=False)
        ]  # fmt: skip
        out.append(
            (
                f"breakdown: first severity where the gain over the input is ≤ 0 within its "
                f"{pct} CI",
                ["restorer", "degradation", "metric", "breaks at", "reason"],
                body,
            )
        )
        gains = report.gains
        for metric, block in gains.groupby("metric", sort=False):
            severities = sorted(block["severity"].unique())
            digits = _decimals(block["mean"])
            body = []
            for (restorer, degradation), group in block.groupby(
                ["restorer", "degradation"], sort=True
            ):
                values = group.set_index("severity")["gain"]
                body.append(
                    [f"{labels(restorer)} · {degradation}"]
                    + [_signed(values.get(s, np.nan), digits) for s in severities]
                )
            out.append(
                (
                    f"gain over the input by severity · {metric} (+ = better)",
                    ["restorer · degradation", *[f"sev {int(s)}" for s in severities]],
                    body,
                )
            )
    return out


def _csv(report: Report) -> str:
    frames = []
    for name, table in report.tables().items():
        if table.empty:
            continue
        kind = "paired" if name.startswith("paired_") else name
        frames.append(table.assign(table=kind).pipe(lambda t: t[["table", *t.columns[:-1]]]))
    if not frames:
        return "table\n"
    return pd.concat(frames, ignore_index=True).to_csv(index=False)


def _json(report: Report) -> str:
    tables = {}
    for name, table in report.tables().items():
        tables[name] = json.loads(table.to_json(orient="records", double_precision=15))
    return json.dumps({**report.meta(), "tables": tables}, indent=2, ensure_ascii=False) + "\n"


def format_report(
    report: Report | str | os.PathLike,
    *,
    ci: float | None = None,
    fmt: str = "text",
    width: int = 100,
) -> str:
    """Render a report as ``text`` (terminal, at most ``width`` columns), ``markdown``,
    ``csv`` (every table in long form, first column ``table``) or ``json``.

    Parameters
    ----------
    report : Report or path
        A :class:`Report`, or a run folder whose ``report/`` :func:`write_report` filled.
    ci : float, optional
        Deprecated; the coverage is the report's own setting.
    fmt : {"text", "markdown", "csv", "json"}
    width : int
        Widest text line; wider tables are split into several blocks.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not isinstance(report, Report):
        report = load_report(report)
    if ci is not None and ci != report.settings.ci:
        report = replace(report, settings=replace(report.settings, ci=ci))
    if fmt == "csv":
        return _csv(report)
    if fmt == "json":
        return _json(report)
    s = report.settings
    labels = _Labels(28 if fmt == "text" else 10_000)
    intro = [
        report.title,
        f"statistics: mean over images, {s.ci:.0%} percentile bootstrap CI ({s.n_boot} "
        f"resamples, seed {s.seed}); paired tests: Wilcoxon signed-rank on per-image "
        "differences",
        report.support,
    ]
    sections = _sections(report, labels)
    out: list[str] = []
    if fmt == "markdown":
        out += [f"# {intro[0]}" if intro[0] else "# restorelab report", ""]
        out += [line for line in intro[1:] if line] + [""]
        for heading, header, body in sections:
            if not header and body:
                out += [f"## {heading}", "", *[f"- {row[0]}" for row in body], ""]
                continue
            if not header:
                out += [f"*{heading}*", ""]
                continue
            out += [f"## {heading}", "", *_md_block(header, body), ""]
        return "\n".join(out).rstrip() + "\n"
    import textwrap

    for line in intro:
        out += textwrap.wrap(line, width) if line else []
    out.append("")
    for heading, header, body in sections:
        if not header and body:
            out.append(f"== {heading} ==")
            for row in body:
                out += textwrap.wrap(row[0], width, subsequent_indent="    ")
            out.append("")
            continue
        if not header:
            out += [*textwrap.wrap(heading, width, subsequent_indent="  "), ""]
            continue
        out += textwrap.wrap(f"== {heading} ==", width, subsequent_indent="   ")
        out += [*_text_block(header, body, width), ""]
    for line in labels.legend():
        out += textwrap.wrap(line, width, subsequent_indent="      ") if line else [""]
    return "\n".join(line[:width] if len(line) > width else line for line in out).rstrip() + "\n"
