"""Severity curves: metric vs severity per degradation with CI bands, extreme levels shaded."""

import altair as alt
import pandas as pd
import streamlit as st

from restorelab.dashboard import data, ui
from restorelab.dashboard.data import EXTREME_FROM, INPUT_LABEL

ctx = ui.context()
st.title("Severity curves")
ctx.require_rows()
selection, frame = ui.filtered_or_stop(ctx)
metric = st.selectbox("Metric", ctx.metrics, key="curves_metric")
better = "higher" if ctx.directions[metric] else "lower"
st.write(
    f"Mean **{metric}** ({better} is better) per severity with its 95 % bootstrap band over "
    f"images; the degraded input is dashed; severities {EXTREME_FROM}–10 are shaded as extreme."
)
table = ui.curves(ctx, selection, metric)
show_bands = st.toggle("Confidence bands", value=True, key="curves_bands")


def chart(part: pd.DataFrame) -> alt.LayerChart:
    part = part.assign(
        line=["degraded input" if r == INPUT_LABEL else "restored" for r in part["restorer"]]
    )
    low, high = int(part["severity"].min()), int(part["severity"].max())
    x_scale = alt.Scale(domain=[low - 0.5, max(high, EXTREME_FROM) + 0.5], nice=False)
    shade = (
        alt.Chart(pd.DataFrame({"x": [EXTREME_FROM - 0.5], "x2": [max(high, 10) + 0.5]}))
        .mark_rect(color="#888888", opacity=0.12)
        .encode(x=alt.X("x:Q", scale=x_scale), x2="x2:Q")
    )
    base = alt.Chart(part).encode(
        x=alt.X("severity:Q", title="severity", scale=x_scale, axis=alt.Axis(tickMinStep=1)),
        color=alt.Color(
            "restorer:N", scale=alt.Scale(scheme="tableau10"), legend=alt.Legend(orient="bottom")
        ),
    )
    lines = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title=metric, scale=alt.Scale(zero=False)),
        strokeDash=alt.StrokeDash(
            "line:N",
            scale=alt.Scale(domain=["restored", "degraded input"], range=[[1, 0], [5, 4]]),
            legend=None,
        ),
        tooltip=[
            "restorer",
            "severity",
            alt.Tooltip("mean:Q", format=".4f"),
            alt.Tooltip("ci_low:Q", format=".4f"),
            alt.Tooltip("ci_high:Q", format=".4f"),
            "n",
        ],
    )
    layers = [shade]
    if show_bands:
        layers.append(base.mark_area(opacity=0.15).encode(y="ci_low:Q", y2="ci_high:Q"))
    layers.append(lines)
    return alt.layer(*layers).properties(height=280)


degradations = sorted(set(table["degradation"].astype(str)), key=data.natural_key)
cols = st.columns(min(3, max(1, len(degradations))))
for index, degradation in enumerate(degradations):
    with cols[index % len(cols)]:
        st.markdown(f"**{degradation}**")
        st.altair_chart(chart(table[table["degradation"] == degradation]), width="stretch")
with st.expander("Table"):
    st.dataframe(table, hide_index=True, width="stretch")
