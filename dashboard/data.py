"""Pure table functions behind the dashboard (no Streamlit here, so they are testable)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from restorelab.benchmark.stats import breakdown_severity, paired_comparison, summary_table
from restorelab.results import load_results, read_run_info

#: Label of the pseudo-restorer that stands for the degraded input itself.
INPUT_LABEL = "(degraded input)"


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns present in a results table (those that also have an ``input_`` twin)."""
    return [
        c[len("input_") :]
        for c in frame.columns
        if c.startswith("input_") and c[len("input_") :] in frame.columns
    ]


def load_run(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Results (rows without errors) and ``run.json`` of a run folder."""
    frame = load_results(run_dir)
    if "error" in frame.columns:
        frame = frame[frame["error"].fillna("") == ""]
    return frame.reset_index(drop=True), read_run_info(run_dir)


def error_rows(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Rows whose restorer or degradation failed, with the error text."""
    frame = load_results(run_dir)
    if "error" not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame["error"].fillna("") != ""].reset_index(drop=True)


def with_input_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` plus one row per cell for the degraded input, labelled :data:`INPUT_LABEL`."""
    metrics = metric_columns(frame)
    if frame.empty or not metrics:
        return frame
    cells = ["image_id", "degradation", "severity", "seed"]
    inputs = frame.drop_duplicates(subset=cells)[cells + [f"input_{m}" for m in metrics]]
    inputs = inputs.rename(columns={f"input_{m}": m for m in metrics})
    inputs["restorer"] = INPUT_LABEL
    return pd.concat([frame, inputs], ignore_index=True)


def filter_rows(
    frame: pd.DataFrame,
    degradations: list[str] | None = None,
    severities: list[int] | None = None,
) -> pd.DataFrame:
    """Rows of the chosen degradations and severities (None or empty keeps all)."""
    if degradations:
        frame = frame[frame["degradation"].isin(degradations)]
    if severities:
        frame = frame[frame["severity"].isin(severities)]
    return frame


def leaderboard(frame: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean of each metric per restorer, its gain over the degraded input, and the row count.

    Columns: ``<metric>`` (mean), ``Δ<metric>`` (mean of restored − input) per metric, then
    ``n`` (rows) and ``seconds`` (mean restorer time). Sorted by the first metric, best first.
    """
    metrics = metrics or metric_columns(frame)
    if frame.empty:
        return pd.DataFrame(columns=["restorer", *metrics, "n"])
    work = frame.copy()
    for m in metrics:
        work[f"Δ{m}"] = work[m] - work[f"input_{m}"]
    agg = {m: "mean" for m in metrics} | {f"Δ{m}": "mean" for m in metrics}
    agg["seconds"] = "mean"
    table = work.groupby("restorer").agg(agg)
    table["n"] = work.groupby("restorer").size()
    table = table[[*metrics, *[f"Δ{m}" for m in metrics], "n", "seconds"]]
    return table.sort_values(metrics[0], ascending=False).reset_index()


def severity_curves(frame: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """Per degradation: a table indexed by severity, one column per restorer (plus the input)."""
    curves = {}
    data = with_input_rows(frame)
    for degradation, group in data.groupby("degradation"):
        table = group.pivot_table(
            index="severity", columns="restorer", values=metric, aggfunc="mean"
        )
        curves[str(degradation)] = table.sort_index()
    return curves


def curation_report(run_info: dict) -> tuple[dict, pd.DataFrame] | None:
    """The curation summary and rejected-files table of the run's corpus, if it was curated."""
    corpus = run_info.get("corpus")
    if not corpus:
        return None
    summary_path = Path(corpus) / "curation.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    rejected_path = Path(corpus) / "rejected.csv"
    rejected = pd.read_csv(rejected_path) if rejected_path.is_file() else pd.DataFrame()
    return summary, rejected


# --- statistics views (bootstrap CIs, breakdown, paired) ---------------------------------------
def _fmt(value: float, digits: int) -> str:
    return "—" if pd.isna(value) else f"{value:.{digits}f}"


def _digits(values: pd.Series) -> int:
    finite = values.abs().dropna()
    return 2 if not finite.empty and finite.max() >= 10 else 4


def leaderboard_ci(
    frame: pd.DataFrame,
    metrics: list[str] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """:func:`leaderboard` with a bootstrap CI over images beside each metric's mean.

    The interval comes from :func:`restorelab.benchmark.stats.summary_table` grouped by
    restorer only (each image averaged over the selected cells first); it is shown as a
    ``"lo – hi"`` string in a ``<metric> 95% CI`` column right after the metric.
    """
    board = leaderboard(frame, metrics)
    if frame.empty or board.empty:
        return board
    metrics = metrics or metric_columns(frame)
    table = summary_table(frame, metrics, by=("restorer",), n_boot=n_boot, seed=seed, ci=ci)
    label = f"{ci:.0%} CI"
    for m in metrics:
        rows = table[table["metric"] == m].set_index("restorer")
        digits = _digits(rows["mean"])
        text = {
            r: f"{_fmt(rows.loc[r, 'ci_low'], digits)} – {_fmt(rows.loc[r, 'ci_high'], digits)}"
            for r in rows.index
        }
        board.insert(board.columns.get_loc(m) + 1, f"{m} {label}", board["restorer"].map(text))
    return board


def breakdown_view(
    frame: pd.DataFrame,
    metrics: list[str] | None = None,
    *,
    higher_is_better: dict | None = None,
    threshold: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Restorer × degradation → first failing severity per metric, and the gains behind it.

    Columns: ``restorer``, ``degradation``, then per metric ``<metric> breaks at`` (a severity,
    or ``"never"`` within the grid) and ``<metric> gain by severity``
    (e.g. ``"1:+2.00 2:+1.00 3:-0.50"``).
    See :func:`restorelab.benchmark.stats.breakdown_severity`.
    """
    if frame.empty:
        return pd.DataFrame(columns=["restorer", "degradation"])
    metrics = metrics or metric_columns(frame)
    table = breakdown_severity(
        frame, metrics, higher_is_better=higher_is_better, threshold=threshold
    )
    view = table[["restorer", "degradation"]].drop_duplicates().reset_index(drop=True)
    for m in metrics:
        part = table[table["metric"] == m].drop(columns="metric")
        part = part.assign(
            breaks=part["breaks_at"].map(lambda s: "never" if pd.isna(s) else str(int(s)))
        )
        part = part.rename(columns={"breaks": f"{m} breaks at", "gains": f"{m} gain by severity"})
        view = view.merge(
            part[["restorer", "degradation", f"{m} breaks at", f"{m} gain by severity"]],
            on=["restorer", "degradation"],
            how="left",
        )
    return view


def paired_view(
    frame: pd.DataFrame,
    a: str,
    b: str,
    metrics: list[str] | None = None,
    *,
    higher_is_better: dict | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Restorer ``a`` against ``b`` per degradation × severity, plus an "all" row per metric.

    Columns: ``metric``, ``degradation``, ``severity``, ``a − b`` (mean difference),
    ``95% CI``, ``p`` (Wilcoxon signed-rank), ``W/T/L`` (cells where ``a`` is better / tied /
    worse). See :func:`restorelab.benchmark.stats.paired_comparison`.
    """
    metrics = metrics or metric_columns(frame)
    table = paired_comparison(
        frame, a, b, metrics, higher_is_better=higher_is_better, n_boot=n_boot, seed=seed
    )
    rows = []
    for metric, group in table.groupby("metric", sort=False):
        digits = _digits(group["mean_diff"]) + 1
        for row in group.itertuples(index=False):
            rows.append(
                {
                    "metric": metric,
                    "degradation": "all" if row.overall else str(row.degradation),
                    "severity": "all" if row.overall else str(row.severity),
                    "a − b": row.mean_diff,
                    "95% CI": f"{_fmt(row.ci_low, digits)} – {_fmt(row.ci_high, digits)}",
                    "p": row.p_value,
                    "W/T/L": f"{row.wins}/{row.ties}/{row.losses}",
                }
            )
    return pd.DataFrame(rows)
