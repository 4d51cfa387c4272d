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

from restorelab.dashboard.data import (
    INPUT_LABEL,
    curation_report,
    error_rows,
    filter_rows,
    leaderboard,
    load_run,
    metric_columns,
    severity_curves,
)


def _default_run_dir() -> str:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    return os.environ.get("RESTORELAB_RUN_DIR") or (args[0] if args else "")


@st.cache_data(show_spinner="Loading results…")
def _load(run_dir: str, _mtime: float) -> tuple:
    return load_run(run_dir)


def _results_mtime(run_dir: str) -> float:
    folder = os.path.join(run_dir, "results")
    try:
        return max((e.stat().st_mtime for e in os.scandir(folder)), default=0.0)
    except FileNotFoundError:
        return 0.0


def _curve_chart(table: pd.DataFrame, metric: str) -> alt.Chart:
    """Lines of ``metric`` over severity, one per restorer; the degraded input dashed."""
    long = table.reset_index().melt(id_vars="severity", var_name="restorer", value_name=metric)
    long["line"] = np.where(long["restorer"] == INPUT_LABEL, "degraded input", "restored")
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("severity:O", title="severity", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False), title=metric),
            color=alt.Color("restorer:N"),
            strokeDash=alt.StrokeDash(
                "line:N",
                scale=alt.Scale(domain=["restored", "degraded input"], range=[[1, 0], [5, 4]]),
                legend=None,
            ),
            tooltip=["restorer", "severity", alt.Tooltip(f"{metric}:Q", format=".4f")],
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
    frame, info = _load(run_dir, _results_mtime(run_dir))
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

    tab_board, tab_curves, tab_curation, tab_errors = st.tabs(
        ["Leaderboard", "Metric vs severity", "Curation report", "Errors"]
    )
    with tab_board:
        st.subheader("Leaderboard")
        st.write("Mean over the selected cells; Δ is the mean gain over the degraded input.")
        board = leaderboard(subset, metrics)
        st.dataframe(board.round(4), hide_index=True, use_container_width=True)
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
                st.altair_chart(_curve_chart(table, metric), use_container_width=True)
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
            st.dataframe(rejected, hide_index=True, use_container_width=True)
    with tab_errors:
        errors = error_rows(run_dir)
        if errors.empty:
            st.success("No failed cells.")
        else:
            st.dataframe(
                errors[["image_id", "degradation", "severity", "seed", "restorer", "error"]],
                hide_index=True,
                use_container_width=True,
            )


main()
