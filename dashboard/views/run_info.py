"""Run info: each open run's spec, versions, hardware, timings, errors and problems."""

import json

import pandas as pd
import streamlit as st

from restorelab.dashboard import data, ui

ctx = ui.context()
st.title("Run info")
for run in ctx.runs:
    st.header(run.name)
    info = run.info
    st.caption(f"`{run.path}` · fingerprint `{data.run_fingerprint(run.path)}`")
    rows, failed = len(run.frame), len(run.errors)
    tables = ui.run_tables(run)
    c = st.columns(4)
    c[0].metric("result rows", rows)
    c[1].metric("failed rows", failed)
    c[2].metric("images", tables["images"])
    c[3].metric("restorers", tables["restorers"])
    if not info:
        st.warning(
            "This run has no run.json: its spec (corpus, grid, restorers, metric conventions) is "
            "unknown, and metric directions come from the metric registry."
        )
    if not rows and not failed:
        st.info(
            "No results yet: the run was started but no cell finished. Re-running the same "
            "`restorelab bench` command resumes it."
        )
    for problem in run.problems:
        st.warning(problem)
    spec, where = st.tabs(["Spec", "Versions and hardware"])
    with spec:
        st.markdown(f"**Corpus** `{info.get('corpus', 'unknown')}`")
        grid = info.get("grid") or {}
        if grid:
            st.markdown(f"**Grid** `{grid.get('name', '?')}`: {grid.get('description', '')}")
            st.json(grid, expanded=False)
        restorers = info.get("restorers") or []
        if restorers:
            st.markdown("**Restorers**")
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "label": r.get("label"),
                            "config_hash": r.get("config_hash"),
                            "config": json.dumps(r.get("config", {}), sort_keys=True),
                        }
                        for r in restorers
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
        metrics = info.get("metrics") or {}
        if metrics:
            st.markdown("**Metrics**")
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "metric": m,
                            "higher is better": v.get("higher_is_better"),
                            "convention": v.get("convention"),
                        }
                        for m, v in metrics.items()
                    ]
                ),
                hide_index=True,
                width="stretch",
            )
        for key in ("spec", "run_spec", "pairs"):
            if key in info:
                st.markdown(f"**{key}**")
                st.json(info[key], expanded=False)
    with where:
        st.json({"packages": info.get("packages", {}), "hardware": info.get("hardware", {})})
        invocations = info.get("invocations") or []
        if invocations:
            st.markdown("**Invocations**")
            st.dataframe(pd.DataFrame(invocations), hide_index=True, width="stretch")
    st.subheader("Timings")
    if tables["timing"].empty:
        st.caption("No timings recorded.")
    else:
        st.dataframe(tables["timing"], hide_index=True, width="stretch")
    st.subheader("Coverage")
    if tables["coverage"] is not None:
        st.dataframe(tables["coverage"], hide_index=True, width="stretch")
    st.subheader("Errors")
    if run.errors.empty:
        st.success("No failed cells.")
    else:
        st.dataframe(tables["failures"], hide_index=True, width="stretch")
        cols = [c for c in [*data.CELL, "restorer", "error"] if c in run.errors.columns]
        st.dataframe(run.errors[cols], hide_index=True, width="stretch")
