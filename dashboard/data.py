"""Pure table functions behind the dashboard (no Streamlit here, so they are testable)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

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
