"""The restorelab Streamlit dashboard: ``restorelab dashboard RUN_DIR``.

The run folder comes from the command line (``streamlit run app.py -- RUN_DIR``) or from the
``RESTORELAB_RUN_DIR`` environment variable, and can be changed in the sidebar.
"""

from __future__ import annotations

import os
import sys

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from restorelab.benchmark.stats import resolve_directions
from restorelab.dashboard.data import (
    INPUT_LABEL,
    breakdown_view,
    curation_report,
    error_rows,
    filter_rows,
    leaderboard_ci,
    load_run,
    metric_columns,
    paired_view,
    severity_curves,
)

#: Bootstrap resamples in the UI (the `restorelab report` tables use 2000).
UI_N_BOOT = 1000


def _default_run_dir() -> str:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    return os.environ.get("RESTORELAB_RUN_DIR") or (args[0] if args else "")


@st.cache_data(show_spinner="Loading results…")
def _load(run_dir: str, _mtime: float) -> tuple:
    return load_run(run_dir)


def _subset(run_dir: str, mtime: float, degradations: tuple, severities: tuple) -> tuple:
    frame, info = _load(run_dir, mtime)
    return filter_rows(frame, list(degradations), list(severities)), info


@st.cache_data(show_spinner="Bootstrapping confidence intervals…")
def _board(run_dir: str, mtime: float, degradations: tuple, severities: tuple) -> pd.DataFrame:
    subset, _ = _subset(run_dir, mtime, degradations, severities)
    return leaderboard_ci(subset, metric_columns(subset), n_boot=UI_N_BOOT)


@st.cache_data(show_spinner="Finding breakdown severities…")
def _breakdown(run_dir: str, mtime: float, degradations: tuple) -> pd.DataFrame:
    subset, info = _subset(run_dir, mtime, degradations, ())
    metrics = metric_columns(subset)
    directions = resolve_directions(metrics, info.get("metrics", {}))
    return breakdown_view(subset, metrics, higher_is_better=directions)


@st.cache_data(show_spinner="Comparing restorers…")
def _paired(
    run_dir: str, mtime: float, degradations: tuple, severities: tuple, a: str, b: str
) -> pd.DataFrame:
    subset, info = _subset(run_dir, mtime, degradations, severities)
    metrics = metric_columns(subset)
    directions = resolve_directions(metrics, info.get("metrics", {}))
    return paired_view(subset, a, b, metrics, higher_is_better=directions, n_boot=UI_N_BOOT)


def _results_mtime(run_dir: str) -> float:
    folder = os.path.join(run_dir, "results")
    try:
        return max((e.stat().st_mtime for e in os.scandir(folder)), default=0.0)
    except FileNotFoundError:
        return 0.0


def _curve_chart(table: pd.DataFrame, metric: str) -> alt.Chart:
    """Lines of ``metric`` over severity, one per restorer; the degraded input dashed."""
    # a fixed field name: metric labels such as "psnr:crop_border=4" are not Altair shorthand
    long = table.reset_index().melt(id_vars="severity", var_name="restorer", value_name="value")
    long["line"] = np.where(long["restorer"] == INPUT_LABEL, "degraded input", "restored")
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("severity:O", title="severity", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", scale=alt.Scale(zero=False), title=metric),
            color=alt.Color("restorer:N"),
            strokeDash=alt.StrokeDash(
                "line:N",
                scale=alt.Scale(domain=["restored", "degraded input"], range=[[1, 0], [5, 4]]),
                legend=None,
            ),
            tooltip=["restorer", "severity", alt.Tooltip("value:Q", title=metric, format=".4f")],
        )
        .properties(height=280)
    )


def main() -> None:
    st.set_page_config(page_title="restorelab", layout="wide")
    st.title("restorelab — restorer benchmark")
    run_dir = st.sidebar.text_input("Run folder", value=_default_run_dir())
    if not run_dir:
        st.info("Give a run folder: `restorelab dashboard RUN_DIR`.")
        return
    if not os.path.isdir(run_dir):
        st.error(f"Run folder not found: {run_dir}")
        return
    mtime = _results_mtime(run_dir)
    frame, info = _load(run_dir, mtime)
    if frame.empty:
        st.warning(f"No results yet in {run_dir}. Run `restorelab bench … --out {run_dir}`.")
        return

    metrics = metric_columns(frame)
    grid = info.get("grid", {})
    st.caption(
        f"Run `{run_dir}` · grid **{grid.get('name', '?')}** · {frame['image_id'].nunique()} "
        f"images · {frame['restorer'].nunique()} restorers · {len(frame)} rows"
    )
    degradations = sorted(frame["degradation"].unique())
    severities = sorted(int(s) for s in frame["severity"].unique())
    chosen_degradations = st.sidebar.multiselect("Degradations", degradations, default=degradations)
    chosen_severities = st.sidebar.multiselect("Severities", severities, default=severities)
    metric = st.sidebar.selectbox("Metric for curves", metrics, index=0)
    subset = filter_rows(frame, chosen_degradations, chosen_severities)
    picked = (tuple(chosen_degradations), tuple(chosen_severities))

    tabs = st.tabs(
        ["Leaderboard", "Metric vs severity", "Breakdown", "Paired", "Curation report", "Errors"]
    )
    tab_board, tab_curves, tab_breakdown, tab_paired, tab_curation, tab_errors = tabs
    with tab_board:
        st.subheader("Leaderboard")
        st.write(
            "Mean over the selected cells; Δ is the mean gain over the degraded input. The 95 % "
            f"CI is a bootstrap over images ({UI_N_BOOT} resamples; each image averaged first)."
        )
        board = _board(run_dir, mtime, *picked)
        st.dataframe(board.round(4), hide_index=True, width="stretch")
        conventions = info.get("metrics", {})
        if conventions:
            with st.expander("Metric conventions"):
                for name, meta in conventions.items():
                    better = "higher" if meta.get("higher_is_better") else "lower"
                    arrow = f"{better} is better"
                    st.markdown(f"- **{name}** ({arrow}): {meta.get('convention', '')}")
    with tab_curves:
        st.subheader(f"{metric} vs severity")
        curves = severity_curves(subset, metric)
        columns = st.columns(min(3, max(1, len(curves))))
        for index, (degradation, table) in enumerate(curves.items()):
            with columns[index % len(columns)]:
                st.markdown(f"**{degradation}**")
                st.altair_chart(_curve_chart(table, metric), width="stretch")
    with tab_breakdown:
        st.subheader("Breakdown severity")
        st.write(
            "First severity at which each restorer stops improving on its degraded input "
            "(mean gain over images ≤ 0, oriented by the metric's direction); *never* when it "
            "still helps at the hardest severity. All severities of the selected degradations."
        )
        st.dataframe(_breakdown(run_dir, mtime, picked[0]), hide_index=True, width="stretch")
    with tab_paired:
        st.subheader("Paired comparison")
        restorers = list(board["restorer"])
        if len(restorers) < 2:
            st.info("A paired comparison needs two restorers in the run.")
        else:
            left, right = st.columns(2)
            a = left.selectbox("Restorer A", restorers, index=0)
            b = right.selectbox("Restorer B", [r for r in restorers if r != a], index=0)
            st.write(
                f"**{a} − {b}** on the cells both were run on: mean difference with a 95 % "
                "bootstrap CI over images, Wilcoxon signed-rank p over images, and W/T/L = "
                f"cells where {a} is better / tied / worse (ties: 0.01 dB psnr, 1e-4 ssim)."
            )
            table = _paired(run_dir, mtime, *picked, a, b)
            st.dataframe(table.round(4), hide_index=True, width="stretch")
    with tab_curation:
        report = curation_report(info)
        if report is None:
            st.info("The corpus of this run was not made by `restorelab curate`.")
        else:
            summary, rejected = report
            st.subheader("Curation report")
            cols = st.columns(3)
            cols[0].metric("inputs", summary.get("inputs", 0))
            cols[1].metric("kept", summary.get("kept", 0))
            cols[2].metric("rejected", summary.get("rejected", 0))
            st.write("Rejections by reason", summary.get("rejection_reasons", {}))
            st.dataframe(rejected, hide_index=True, width="stretch")
    with tab_errors:
        errors = error_rows(run_dir)
        if errors.empty:
            st.success("No failed cells.")
        else:
            st.dataframe(
                errors[["image_id", "degradation", "severity", "seed", "restorer", "error"]],
                hide_index=True,
                width="stretch",
            )


main()
