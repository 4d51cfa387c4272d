"""Statistics on benchmark results: bootstrap CIs, paired comparisons and breakdown severities.

Pure functions on the results table of :func:`restorelab.results.load_results` (one row per
image × degradation × severity × seed × restorer, with metric columns such as ``psnr`` and the
degraded input's ``input_psnr``), plus :func:`write_report` / :func:`format_report`, which
compute all tables for a run folder, store them as Parquet under ``RUN_DIR/report/`` and
render them for the terminal.

The unit of replication is the *image*: cells of one image (its seeds, and in pooled rows its
degradations and severities) are averaged first, then images are resampled with replacement
(percentile bootstrap). Randomness comes only from the ``seed`` argument; each group size draws
its own index matrix from ``numpy.random.default_rng([seed, size])``, so a group's interval does
not depend on which other groups are in the table.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from restorelab.results import load_results, read_run_info

#: Columns that identify one cell (an image under one degradation setting).
CELL_COLUMNS = ("image_id", "degradation", "severity", "seed")

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

Directions = Mapping[str, bool | Mapping[str, object]]


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


def _check_frame(
    frame: pd.DataFrame, metrics: str | Iterable[str] | None, columns: Iterable[str]
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
    if "error" in frame.columns:
        frame = frame[frame["error"].fillna("").astype(str) == ""]
    if frame.empty:
        raise ValueError("frame has no rows without errors")
    return frame, list(dict.fromkeys(chosen))


def _check_bootstrap(n_boot: int, seed: int, ci: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie strictly between 0 and 1 (e.g. 0.95), got {ci!r}")


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
        Metric names.
    higher_is_better : mapping, optional
        ``{metric: bool}``, or a run's ``run.json`` ``metrics`` entry
        (``{metric: {"higher_is_better": bool, ...}}``). Metrics not given here are looked up
        in the metric registry.

    Returns
    -------
    dict of str to bool

    Raises
    ------
    ValueError
        When a metric is neither given nor registered.
    """
    from restorelab.benchmark.metrics import METRICS

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
        elif m.split(":")[0] in METRICS:  # a name, or a label such as "lpips:net=vgg"
            result[m] = bool(METRICS.get(m.split(":")[0]).higher_is_better)
        else:
            raise ValueError(
                f"direction of metric {m!r} is unknown (not a registered metric); "
                f"pass higher_is_better={{{m!r}: True or False}}"
            )
    return result


def _tolerances(metrics: Iterable[str], tie_tolerance: Mapping[str, float] | float | None):
    if tie_tolerance is None or isinstance(tie_tolerance, Mapping):
        given = {**DEFAULT_TIE_TOLERANCE, **dict(tie_tolerance or {})}
        result = {m: float(given.get(m, given.get(m.split(":")[0], 0.0))) for m in metrics}
    else:
        result = {m: float(tie_tolerance) for m in metrics}
    bad = {m: t for m, t in result.items() if not t >= 0}
    if bad:
        raise ValueError(f"tie tolerances must be >= 0, got {bad}")
    return result


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
        stacked = np.stack([samples[i] for i in members])  # (groups, size)
        means = stacked[:, index].mean(axis=-1)  # (groups, n_boot)
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


# --- public tables ---------------------------------------------------------------------------
def summary_table(
    frame: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    by: Sequence[str] = ("restorer", "degradation", "severity"),
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Mean of each metric per group with a bootstrap confidence interval over images.

    Parameters
    ----------
    frame : DataFrame
        Results table (:func:`restorelab.results.load_results`); rows with a non-empty
        ``error`` are ignored.
    metrics : str or sequence of str, optional
        Metric columns (each needs an ``input_<metric>`` twin). Default: all of them.
    by : sequence of str
        Grouping columns; ``()`` pools everything into one group.
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling; equal seeds give equal tables.
    ci : float
        Coverage of the interval (0.95 → 2.5th and 97.5th percentiles).

    Returns
    -------
    DataFrame
        One row per group and metric: ``*by``, ``metric``, ``mean``, ``ci_low``, ``ci_high``,
        ``n`` (images), ``input_mean`` (mean of the degraded input's score, same images).

    Notes
    -----
    Within a group each image's rows (its seeds, or several degradations when ``by`` omits
    ``degradation``) are averaged first; ``mean`` is the mean of those per-image means and the
    interval resamples images. NaN scores are left out per metric.

    Examples
    --------
    >>> frame = pd.DataFrame({"image_id": list("abcd"), "restorer": "tv", "degradation": "blur",
    ...                       "severity": 1, "seed": 0, "psnr": [30.0, 31.0, 32.0, 33.0],
    ...                       "input_psnr": 28.0})
    >>> summary_table(frame, "psnr", n_boot=500)[["metric", "mean", "n", "input_mean"]]
      metric  mean  n  input_mean
    0   psnr  31.5  4        28.0
    """
    by = list(by)
    frame, metrics = _check_frame(frame, metrics, ["image_id", *by])
    _check_bootstrap(n_boot, seed, ci)
    rows, samples = [], []
    for key, group in _groups(frame, by):
        images = _per_image(group, [*metrics, *[f"input_{m}" for m in metrics]])
        for m in metrics:
            both = images[[m, f"input_{m}"]].dropna(subset=[m])
            values = both[m].to_numpy(dtype=float)
            samples.append(values)
            rows.append(
                {
                    **dict(zip(by, key, strict=True)),
                    "metric": m,
                    "mean": values.mean() if len(values) else math.nan,
                    "n": len(values),
                    "input_mean": both[f"input_{m}"].mean(),
                }
            )
    low, high = _bootstrap_intervals(samples, n_boot=n_boot, seed=seed, ci=ci)
    table = pd.DataFrame(rows, columns=[*by, "metric", "mean", "n", "input_mean"])
    table.insert(len(by) + 2, "ci_low", low)
    table.insert(len(by) + 3, "ci_high", high)
    return table


def _wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p; 1.0 when every difference is zero, NaN without data."""
    if len(diffs) == 0:
        return math.nan
    if not np.any(diffs != 0):
        return 1.0
    with warnings.catch_warnings():  # small-sample / zero-handling notices, not user errors
        warnings.simplefilter("ignore", category=UserWarning)
        return float(_scipy_stats.wilcoxon(diffs).pvalue)


def paired_comparison(
    frame: pd.DataFrame,
    a: str,
    b: str,
    metrics: str | Sequence[str] | None = None,
    *,
    by: Sequence[str] = ("degradation", "severity"),
    higher_is_better: Directions | None = None,
    tie_tolerance: Mapping[str, float] | float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    overall: bool = True,
) -> pd.DataFrame:
    """Restorer ``a`` against ``b`` on the cells both were run on.

    Parameters
    ----------
    frame : DataFrame
        Results table; rows with a non-empty ``error`` are ignored.
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
        ``|a − b| <= tolerance`` counts as a tie. Default :data:`DEFAULT_TIE_TOLERANCE`
        (0.01 dB for psnr, 1e-4 for ssim, exact equality otherwise); a mapping overrides
        entries of it, a float applies to every metric.
    n_boot, seed, ci
        Bootstrap settings as in :func:`summary_table`.
    overall : bool
        Append one pooled row per metric (all cells), marked ``overall=True`` with missing
        ``by`` values.

    Returns
    -------
    DataFrame
        One row per group and metric: ``*by``, ``overall``, ``metric``, ``higher_is_better``,
        ``a``, ``b``, ``mean_diff`` (mean of a − b), ``ci_low``, ``ci_high``, ``p_value``,
        ``wins``, ``ties``, ``losses``, ``n_images``, ``n_cells``.

    Notes
    -----
    The two restorers are inner-joined on (image_id, degradation, severity, seed); duplicate
    rows of a restorer in one cell (several configs under one label) are averaged. The
    differences of each image are averaged, and both the bootstrap interval and the Wilcoxon
    signed-rank test (``scipy.stats.wilcoxon``, two-sided) run on those per-image differences;
    ``p_value`` is 1 when all of them are zero. ``wins``/``ties``/``losses`` count *cells* and
    are oriented by the metric's direction: a win means ``a`` is better by more than the tie
    tolerance, whichever way "better" points.
    """
    by = list(by)
    frame, metrics = _check_frame(frame, metrics, [*CELL_COLUMNS, "restorer"])
    bad_by = [c for c in by if c not in CELL_COLUMNS[1:]]
    if bad_by:
        raise ValueError(f"by must name cell columns ({', '.join(CELL_COLUMNS[1:])}), got {bad_by}")
    _check_restorer(frame, a)
    _check_restorer(frame, b)
    if a == b:
        raise ValueError(f"compare two different restorers, got {a!r} twice")
    _check_bootstrap(n_boot, seed, ci)
    directions = resolve_directions(metrics, higher_is_better)
    tolerance = _tolerances(metrics, tie_tolerance)

    cells = list(CELL_COLUMNS)
    sides = [
        frame[frame["restorer"] == name].groupby(cells, observed=True)[metrics].mean()
        for name in (a, b)
    ]
    joined = sides[0].add_suffix("_a").join(sides[1].add_suffix("_b"), how="inner")
    if joined.empty:
        raise ValueError(f"restorers {a!r} and {b!r} share no cells (image, degradation, ...)")
    diffs = pd.DataFrame({m: joined[f"{m}_a"] - joined[f"{m}_b"] for m in metrics}).reset_index()

    keyed = [(dict(zip(by, key, strict=True)), False, g) for key, g in _groups(diffs, by)]
    if overall:
        keyed.append(({c: None for c in by}, True, diffs))
    rows, samples = [], []
    for labels, is_overall, group in keyed:
        for m in metrics:
            cell = group[["image_id", m]].dropna()
            d = cell[m].to_numpy(dtype=float)
            sign = 1.0 if directions[m] else -1.0
            per_image = _per_image(cell, [m])[m].to_numpy(dtype=float)
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
                    "wins": int(np.sum(sign * d > tolerance[m])),
                    "ties": int(np.sum(np.abs(d) <= tolerance[m])),
                    "losses": int(np.sum(sign * d < -tolerance[m])),
                    "n_images": len(per_image),
                    "n_cells": len(d),
                }
            )
    low, high = _bootstrap_intervals(samples, n_boot=n_boot, seed=seed, ci=ci)
    table = pd.DataFrame(rows)
    at = table.columns.get_loc("mean_diff") + 1
    table.insert(at, "ci_low", low)
    table.insert(at + 1, "ci_high", high)
    if "severity" in by:
        table["severity"] = table["severity"].astype("Int64")
    if "seed" in by:
        table["seed"] = table["seed"].astype("Int64")
    return table


def breakdown_severity(
    frame: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    higher_is_better: Directions | None = None,
    threshold: Mapping[str, float] | float | None = None,
    tie_tolerance: Mapping[str, float] | float | None = None,
) -> pd.DataFrame:
    """The first severity at which each restorer stops helping, per degradation and metric.

    Parameters
    ----------
    frame : DataFrame
        Results table; rows with a non-empty ``error`` are ignored.
    metrics : str or sequence of str, optional
        Metrics to examine. Default: all.
    higher_is_better : mapping, optional
        Direction per metric, as in :func:`paired_comparison`.
    threshold : mapping or float, optional
        A quality floor: the restorer also breaks down where its mean restored score is worse
        than this (below it when higher is better, above it otherwise), e.g.
        ``{"psnr": 20}``. A float is allowed with a single metric only.
    tie_tolerance : mapping or float, optional
        Mean gains at most this large count as no gain (default
        :data:`DEFAULT_TIE_TOLERANCE`: a restorer that adds 0.001 dB has stopped helping).

    Returns
    -------
    DataFrame
        One row per restorer × degradation × metric: ``restorer``, ``degradation``,
        ``metric``, ``breaks_at`` (first failing severity; ``<NA>`` when it never fails within
        the grid), ``reason`` (``"no gain"`` and/or ``"psnr < 20"``, empty when it never
        fails), ``gains`` (mean gain over the input at each severity, e.g.
        ``"1:+2.00 2:+1.00 3:+0.00 4:-1.00"``, two decimals for metrics on a scale of 10 or
        more, three otherwise), ``n_images``.

    Notes
    -----
    The gain at a severity is the mean over images of (restored − input), each image first
    averaged over its seeds, with its sign flipped for lower-is-better metrics so that a
    positive gain always means improvement. The restorer breaks down at the first severity
    where that gain is within the tie tolerance (<= 0.01 dB for PSNR), or where the threshold
    is crossed.
    """
    frame, metrics = _check_frame(frame, metrics, [*CELL_COLUMNS, "restorer"])
    directions = resolve_directions(metrics, higher_is_better)
    tolerances = _tolerances(metrics, tie_tolerance)
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

    rows = []
    keys = ["restorer", "degradation", "severity"]
    for (restorer, degradation), group in frame.groupby(keys[:2], sort=True, observed=True):
        for m in metrics:
            part = group[[*keys, "image_id", m, f"input_{m}"]].dropna(subset=[m, f"input_{m}"])
            part = part.assign(_gain=part[m] - part[f"input_{m}"])
            images = part.groupby(["severity", "image_id"], observed=True)[[m, "_gain"]].mean()
            levels = images.groupby(level="severity").mean().sort_index()
            sign = 1.0 if directions[m] else -1.0
            digits = _decimals(levels[m]) if len(levels) else 2
            breaks_at, reason, gains = None, "", []
            for severity, (score, gain) in levels[[m, "_gain"]].iterrows():
                gain *= sign
                gains.append(f"{int(severity)}:{gain:+.{digits}f}")
                if breaks_at is not None:
                    continue
                why = ["no gain"] if gain <= tolerances[m] else []
                if m in floors and sign * (score - floors[m]) < 0:
                    why.append(f"{m} {'<' if directions[m] else '>'} {floors[m]:g}")
                if why:
                    breaks_at, reason = int(severity), "; ".join(why)
            rows.append(
                {
                    "restorer": restorer,
                    "degradation": degradation,
                    "metric": m,
                    "breaks_at": breaks_at,
                    "reason": reason,
                    "gains": " ".join(gains),
                    "n_images": part["image_id"].nunique(),
                }
            )
    table = pd.DataFrame(
        rows,
        columns=["restorer", "degradation", "metric", "breaks_at", "reason", "gains", "n_images"],
    )
    table["breaks_at"] = table["breaks_at"].astype("Int64")
    return table


# --- run-folder report -----------------------------------------------------------------------
@dataclass
class Report:
    """The statistics tables of one run (see :func:`compute_report`)."""

    summary: pd.DataFrame
    breakdown: pd.DataFrame
    paired: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)

    def write(self, run_dir: str | os.PathLike) -> dict[str, Path]:
        """Store the tables as Parquet under ``RUN_DIR/report/``; returns name → path.

        Names: ``summary``, ``breakdown`` and ``paired_<a>_vs_<b>`` per pair. The folder is
        derived data: paired tables from earlier reports are removed.
        """
        folder = Path(run_dir) / REPORT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tables = {"summary": self.summary, "breakdown": self.breakdown}
        tables |= {_paired_name(a, b): t for (a, b), t in self.paired.items()}
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


def compute_report(
    run_dir: str | os.PathLike,
    *,
    vs: Sequence[str] | Sequence[Sequence[str]] | None = None,
    metrics: str | Sequence[str] | None = None,
    threshold: Mapping[str, float] | float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    skip_damaged: bool = False,
) -> Report:
    """All statistics tables of a run folder.

    Parameters
    ----------
    run_dir : path
        Run folder of ``restorelab bench``.
    vs : pair or list of pairs of str, optional
        Restorers to compare with :func:`paired_comparison`, e.g. ``("tv", "identity")`` or
        ``[("tv", "identity"), ("wavelet", "identity")]``. Default: none.
    metrics : str or sequence of str, optional
        Default: all metrics of the run.
    threshold : mapping or float, optional
        Passed to :func:`breakdown_severity`.
    n_boot, seed
        Bootstrap settings.
    skip_damaged : bool
        Leave out result parts that cannot be read or are foreign (with a warning) instead
        of raising :class:`restorelab.results.DamagedPartsError`.

    Returns
    -------
    Report
        Directions come from the run's ``run.json`` (the registry where it has none).
    """
    frame = load_results(run_dir, skip_damaged=skip_damaged)
    if frame.empty:
        raise ValueError(f"no results in {run_dir}; run `restorelab bench ... --out {run_dir}`")
    pairs = _pairs(vs)
    frame, metrics = _check_frame(frame, metrics, [*CELL_COLUMNS, "restorer"])
    for a, b in pairs:
        _check_restorer(frame, a)
        _check_restorer(frame, b)
    directions = resolve_directions(metrics, read_run_info(run_dir).get("metrics", {}))
    common = {"n_boot": n_boot, "seed": seed}
    return Report(
        summary=summary_table(frame, metrics, **common),
        breakdown=breakdown_severity(
            frame, metrics, higher_is_better=directions, threshold=threshold
        ),
        paired={
            (a, b): paired_comparison(frame, a, b, metrics, higher_is_better=directions, **common)
            for a, b in pairs
        },
        higher_is_better=directions,
    )


def write_report(
    run_dir: str | os.PathLike,
    *,
    vs: Sequence[str] | Sequence[Sequence[str]] | None = None,
    metrics: str | Sequence[str] | None = None,
    threshold: Mapping[str, float] | float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    skip_damaged: bool = False,
) -> dict[str, Path]:
    """Compute the report of a run folder and store it under ``RUN_DIR/report/``.

    Parameters are those of :func:`compute_report`.

    Returns
    -------
    dict of str to Path
        ``summary`` → ``report/summary.parquet``, ``breakdown`` → ``report/breakdown.parquet``
        and ``paired_<A>_vs_<B>`` → ``report/paired_<A>_vs_<B>.parquet`` per pair.
    """
    report = compute_report(
        run_dir,
        vs=vs,
        metrics=metrics,
        threshold=threshold,
        n_boot=n_boot,
        seed=seed,
        skip_damaged=skip_damaged,
    )
    return report.write(run_dir)


def load_report(run_dir: str | os.PathLike) -> Report:
    """Read back the tables :func:`write_report` stored under ``RUN_DIR/report/``."""
    folder = Path(run_dir) / REPORT_DIR
    if not (folder / "summary.parquet").is_file():
        raise FileNotFoundError(
            f"no report in {folder}; make one with restorelab.benchmark.stats.write_report"
        )
    paired = {}
    for path in sorted(folder.glob("paired_*.parquet")):
        table = pd.read_parquet(path)
        if not table.empty:
            paired[(str(table["a"].iloc[0]), str(table["b"].iloc[0]))] = table
    summary = pd.read_parquet(folder / "summary.parquet")
    directions = {
        m: bool(v.get("higher_is_better", True))
        for m, v in read_run_info(run_dir).get("metrics", {}).items()
    }
    return Report(
        summary=summary,
        breakdown=pd.read_parquet(folder / "breakdown.parquet"),
        paired=paired,
        higher_is_better=directions,
    )


# --- terminal rendering ----------------------------------------------------------------------
def _decimals(values: Iterable[float]) -> int:
    finite = [abs(v) for v in values if v is not None and np.isfinite(v)]
    return 2 if finite and max(finite) >= 10 else 3


def _cell(mean: float, lo: float, hi: float, digits: int, signed: bool = False) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    if not np.isfinite(mean):
        return "—"
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if np.isfinite(value) else "—"


def _severity(value: object) -> str:
    return "—" if pd.isna(value) else str(int(value))


def _block(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    return lines


def format_report(report: Report | str | os.PathLike, *, ci: float = 0.95) -> str:
    """Plain-text rendering of a report for the terminal.

    Parameters
    ----------
    report : Report or path
        A :class:`Report`, or a run folder whose ``report/`` :func:`write_report` filled.
    ci : float
        Coverage the intervals were computed with (only for the headings).

    Returns
    -------
    str
        One block per degradation and metric (restorer rows, one ``mean [lo, hi]`` column per
        severity, the degraded input first), then the paired comparisons and the breakdown
        severities.
    """
    if not isinstance(report, Report):
        report = load_report(report)
    pct = f"{ci:.0%}"
    out: list[str] = []
    summary = report.summary
    directions = report.higher_is_better
    for (degradation, metric), block in summary.groupby(["degradation", "metric"], sort=True):
        better = directions.get(metric, True)
        arrow = "↑ higher is better" if better else "↓ lower is better"
        out.append(f"== {degradation} · {metric} ({arrow}) · mean [{pct} CI] over images ==")
        severities = sorted(block["severity"].unique())
        digits = _decimals(block["mean"])
        inputs = block.groupby("severity")["input_mean"].mean()
        body = [["(degraded input)", *[_number(inputs.get(s, np.nan), digits) for s in severities]]]
        order = block.groupby("restorer")["mean"].mean().sort_values(ascending=not better).index
        for restorer in order:
            rows = block[block["restorer"] == restorer].set_index("severity")
            cells = [
                _cell(*rows.loc[s, ["mean", "ci_low", "ci_high"]], digits)
                if s in rows.index
                else "—"
                for s in severities
            ]
            body.append([str(restorer), *cells])
        out += [*_block(["restorer", *[f"severity {s}" for s in severities]], body), ""]

    for (a, b), table in report.paired.items():
        out.append(f"== {a} vs {b}: mean difference a − b [{pct} CI], Wilcoxon p, W/T/L for {a} ==")
        for metric, block in table.groupby("metric", sort=False):
            digits = _decimals(block["mean_diff"])
            body = []
            for row in block.itertuples(index=False):
                where = (
                    "all cells"
                    if row.overall
                    else " ".join(
                        str(getattr(row, c)) for c in ("degradation", "severity") if hasattr(row, c)
                    )
                )
                body.append(
                    [
                        where,
                        _cell(row.mean_diff, row.ci_low, row.ci_high, digits, signed=True),
                        f"{row.p_value:.3g}",
                        f"{row.wins}/{row.ties}/{row.losses}",
                    ]
                )
            out += [*_block([metric, "a − b", "p", "W/T/L"], body), ""]

    breakdown = report.breakdown
    if not breakdown.empty:
        out.append("== breakdown: first severity where the restorer stops helping (— = never) ==")
        wide = breakdown.set_index(["restorer", "degradation", "metric"])["breaks_at"]
        wide = wide.unstack("metric")
        metrics = list(dict.fromkeys(breakdown["metric"]))
        body = [
            [str(r), str(d), *[_severity(wide.loc[(r, d), m]) for m in metrics]]
            for r, d in wide.index
        ]
        out += _block(["restorer", "degradation", *metrics], body)
    return "\n".join(out).rstrip() + "\n"
