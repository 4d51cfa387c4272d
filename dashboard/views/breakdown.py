"""Breakdown map: mean gain over the input per (severity A, severity B), with the frontier."""

import altair as alt
import streamlit as st

from restorelab.dashboard import data, ui

ctx = ui.context()
st.title("Breakdown map")
ctx.require_rows()
frame = ctx.frame
pairs = data.crossed_pairs(frame)
restorers = sorted(frame["restorer"].astype(str).unique())
if not pairs:
    st.info(
        "This run crosses no two degradations, so there is no map to draw. Run a grid that "
        "does, e.g. the packaged `blur-noise` grid: `restorelab bench --corpus CORPUS --grid "
        "blur-noise --restorer NAME --out RUN_DIR`. The breakdown table is below."
    )
else:
    left, mid, right = st.columns(3)
    pair = left.selectbox(
        "Crossed degradations", pairs, format_func=lambda p: f"{p[0]} × {p[1]}", key="map_pair"
    )
    restorer = mid.selectbox(
        "Restorer", restorers, index=ui.default_restorer(restorers), key="map_restorer"
    )
    metric = right.selectbox("Metric", ctx.metrics, key="map_metric")
    gains = ui.gain_map(ctx, tuple(pair), restorer, metric)
    line = data.frontier(gains).dropna()
    st.write(
        f"Mean gain of **{restorer}** over the degraded input in **{metric}** (positive: it "
        f"helps; oriented by the metric's direction), per cell; severity 0 means the op is "
        "absent. Cells marked ✕ are broken: the gain's 95 % CI reaches 0 or below. The breakdown "
        f"frontier is outlined in black and joined by a dashed line: for each {pair[0]} level, "
        f"the first {pair[1]} level at which the restorer is broken."
    )
    extent = float(max(abs(gains["gain"].min()), abs(gains["gain"].max()), 1e-9))
    digits = ui.digits_for(gains["gain"])
    gains = gains.assign(
        label=[
            f"{g:+.{min(digits, 3)}f}" + (" ✕" if b else "")
            for g, b in zip(gains["gain"], gains["broken"], strict=True)
        ]
    )
    x = alt.X("level_b:O", title=f"{pair[1]} severity", axis=alt.Axis(labelAngle=0))
    y = alt.Y("level_a:O", title=f"{pair[0]} severity", sort="descending")
    heat = (
        alt.Chart(gains)
        .mark_rect()
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "gain:Q",
                title=f"gain ({metric})",
                scale=alt.Scale(scheme="redblue", domain=[-extent, extent], domainMid=0),
            ),
            tooltip=[
                "degradation",
                "severity",
                alt.Tooltip("gain:Q", format="+.4f"),
                alt.Tooltip("gain_low:Q", format="+.4f"),
                alt.Tooltip("gain_high:Q", format="+.4f"),
                "images",
                "broken",
            ],
        )
    )
    text = (
        alt.Chart(gains.assign(dark=gains["gain"].abs() > extent / 2))
        .mark_text(fontSize=11)
        .encode(
            x=x,
            y=y,
            text="label:N",
            color=alt.condition("datum.dark", alt.value("white"), alt.value("black")),
        )
    )
    layers = [heat]
    if not line.empty:  # the frontier's cells outlined and joined, under the labels
        edge = alt.Chart(line).encode(x=x, y=y, order="level_a:Q")
        layers += [
            edge.mark_rect(filled=False, stroke="black", strokeWidth=3),
            edge.mark_line(color="black", strokeWidth=2, strokeDash=[6, 4]),
        ]
    layers.append(text)
    st.altair_chart(alt.layer(*layers).properties(height=420), width="stretch")
    # the images behind a cell: broken cells first, hardest first
    order = gains.assign(_hard=gains["level_a"] + gains["level_b"]).sort_values(
        ["broken", "_hard", "level_a"], ascending=False, kind="stable"
    )
    names = [f"{d} · {s}" for d, s in zip(order["degradation"], order["severity"], strict=True)]
    shown = [
        f"{pair[0]} {a} × {pair[1]} {b}" + (" ✕ broken" if broken else "")
        for a, b, broken in zip(order["level_a"], order["level_b"], order["broken"], strict=True)
    ]
    pick, link = st.columns([3, 2], vertical_alignment="bottom")
    target = pick.selectbox(
        "Cell to inspect",
        range(len(names)),
        format_func=lambda i: shown[i],
        key="map_cell",
        help="Broken cells (✕) first, the hardest first.",
    )
    link.page_link(
        "views/failures.py",
        label=f"Worst images of {restorer} in this cell →",
        query_params={"restorer": restorer, "cell": names[target], "metric": metric},
    )
    with st.expander("Cells"):
        st.dataframe(gains.drop(columns="label"), hide_index=True, width="stretch")

st.subheader("Breakdown severity per restorer × degradation")
st.write(
    "First severity at which each restorer stops improving on its degraded input (mean gain "
    "within the tie tolerance, oriented by the metric's direction), with the reason and the "
    "gain at every severity; *never* when it still helps at the hardest severity. All "
    "severities of the chosen degradations (`restorelab report` prints the same)."
)
degradations = sorted(frame["degradation"].astype(str).unique(), key=data.natural_key)
chosen = st.multiselect("Degradations", degradations, default=degradations, key="bd_degr")
table = ui.breakdown(ctx, (tuple(chosen), ()), ctx.metrics)
if table.empty:
    st.info("Pick at least one degradation.")
else:
    st.dataframe(table, hide_index=True, width="stretch")
