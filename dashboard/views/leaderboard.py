"""Leaderboard: restorer × metric, mean ± 95 % CI and Δ over the degraded input."""

import streamlit as st

from restorelab.dashboard import data, ui

ctx = ui.context()
st.title("Leaderboard")
ctx.require_rows()
selection, frame = ui.filtered_or_stop(ctx)
n_cells = len(frame[["degradation", "severity"]].drop_duplicates())
st.caption(
    f"{frame['image_id'].nunique()} images · {n_cells}"
    f" degradation × severity cells · {frame['restorer'].nunique()} restorers · {len(frame)} rows"
    + ("".join(f" · {note}" for note in ctx.combined.notes))
)
failed = sum(len(r.errors) for r in ctx.runs)
if failed:
    st.warning(
        f"{failed} rows failed (a degradation, restorer or metric raised) and are left out of "
        "every table; Run info lists them with their errors."
    )
st.write(
    "Mean over the selected cells with its 95 % bootstrap CI over images (each image "
    "averaged over its cells first); **Δ** is the mean gain over the degraded input on the same "
    "cells, with its CI (restored − input, in the metric's units). Restorers are compared on "
    "the cells every one of them finished; **finished** counts each one's cells against the "
    "run's. Each metric is ranked by its own direction. Same functions and settings as "
    "`restorelab report`."
)
tables = ui.leaderboard(ctx, selection)
for metric, table in tables.items():
    better = ctx.directions[metric]
    arrow = "↑ higher is better" if better else "↓ lower is better"
    st.subheader(f"{metric}  ({arrow})")
    digits = ui.digits_for(table["mean"])
    shown = table.assign(
        finished=[f"{f}/{p}" for f, p in zip(table["finished"], table["planned"], strict=True)],
        **{
            "mean [95% CI]": [
                f"{ui.fmt(m, digits)} [{ui.fmt(lo, digits)}, {ui.fmt(hi, digits)}]"
                for m, lo, hi in zip(table["mean"], table["ci_low"], table["ci_high"], strict=True)
            ],
            "Δ over input [95% CI]": [
                f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
                for m, lo, hi in zip(table["Δ"], table["Δ_low"], table["Δ_high"], strict=True)
            ],
        },
    )
    st.dataframe(
        shown[
            [
                "rank",
                "restorer",
                "mean [95% CI]",
                "Δ over input [95% CI]",
                "input",
                "images",
                "cells",
                "finished",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={"input": st.column_config.NumberColumn(format=f"%.{digits}f")},
        key=f"board_{metric}",
    )
conventions = ctx.combined.conventions
if conventions:
    with st.expander("Metric conventions"):
        for name, meta in conventions.items():
            arrow = "higher" if ctx.directions.get(name, True) else "lower"
            st.markdown(f"- **{name}** ({arrow} is better): {meta.get('convention', '')}")

st.subheader("Where does each restorer fail?")
extreme = ui.has_extreme_levels(ctx)
if extreme:
    st.write(
        f"The worst images of each restorer at the extreme levels (severity "
        f"{data.EXTREME_FROM}–10), as LQ | restored | GT:"
    )
else:
    st.write(
        f"The worst images of each restorer over all cells (this run has no extreme levels, "
        f"severity {data.EXTREME_FROM}–10), as LQ | restored | GT:"
    )
cols = st.columns(min(4, max(1, frame["restorer"].nunique())))
for i, restorer in enumerate(sorted(frame["restorer"].astype(str).unique())):
    cols[i % len(cols)].page_link(
        "views/failures.py",
        label=f"Worst images of {restorer} →",
        query_params={"restorer": restorer, "cells": "extreme" if extreme else "all"},
    )
