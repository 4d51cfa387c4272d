"""A vs B: per-image paired differences, bootstrap CI, Wilcoxon p and wins/ties/losses."""

import altair as alt
import pandas as pd
import streamlit as st

from restorelab.dashboard import ui

ctx = ui.context()
st.title("A vs B")
ctx.require_rows()
restorers = sorted(ctx.frame["restorer"].astype(str).unique())
if len(restorers) < 2:
    st.info("A paired comparison needs two restorers; the open runs have one.")
    st.stop()
selection, frame = ui.filtered_or_stop(ctx)
left, mid, right = st.columns(3)
a = left.selectbox("Restorer A", restorers, index=ui.default_restorer(restorers), key="ab_a")
b = mid.selectbox("Restorer B", [r for r in restorers if r != a], index=0, key="ab_b")
metric = right.selectbox("Metric", ctx.metrics, key="ab_metric")
shared = set(frame.loc[frame["restorer"] == a, "image_id"]) & set(
    frame.loc[frame["restorer"] == b, "image_id"]
)
if not shared:
    st.info(f"{a} and {b} share no cells in this selection.")
    st.stop()
st.write(
    f"**{a} − {b}** on the cells both were run on: mean difference with a 95 % bootstrap CI "
    f"over images, two-sided Wilcoxon signed-rank p over images, and W/T/L = cells where {a} "
    "is better / tied / worse (oriented by each metric's direction; ties within the metric's "
    "tolerance). The same functions and settings as `restorelab report --vs`."
)
table = ui.paired(ctx, selection, a, b)
table = table.sort_values("degradation", key=lambda d: d != "all cells", kind="stable")
st.dataframe(table, hide_index=True, width="stretch", key="ab_table")

points = ui.per_image(ctx, selection, a, b, metric)
sign = 1.0 if ctx.directions[metric] else -1.0
points = points.assign(
    better=[a if sign * d > 0 else b if sign * d < 0 else "tie" for d in points["diff"]]
)
overall = table[(table["metric"] == metric) & (table["degradation"] == "all cells")].iloc[0]
wins, ties, losses = (int(x) for x in overall["W/T/L"].split("/"))
st.markdown(
    f"**{metric}, all selected cells:** mean {a} − {b} = **{overall['a − b']:+.4f}** "
    f"[95 % CI {overall['ci_low']:+.4f}, {overall['ci_high']:+.4f}] · Wilcoxon p = "
    f"**{overall['p']:.3g}** · {a} wins / ties / loses **{wins} / {ties} / {losses}** cells · "
    f"{int(overall['images'])} images"
)
lo = float(min(points["a"].min(), points["b"].min()))
hi = float(max(points["a"].max(), points["b"].max()))
diagonal = (
    alt.Chart(pd.DataFrame({"a": [lo, hi], "b": [lo, hi]}))
    .mark_line(color="grey", strokeDash=[4, 4])
    .encode(x="a:Q", y="b:Q")
)
scatter = (
    alt.Chart(points)
    .mark_circle(size=70)
    .encode(
        x=alt.X("a:Q", title=f"{a} ({metric}, mean per image)", scale=alt.Scale(zero=False)),
        y=alt.Y("b:Q", title=f"{b} ({metric}, mean per image)", scale=alt.Scale(zero=False)),
        color=alt.Color(
            "better:N",
            title=f"better in {metric}",
            scale=alt.Scale(domain=[a, b, "tie"], range=["#1f77b4", "#d62728", "#7f7f7f"]),
        ),
        tooltip=["image_id", alt.Tooltip("a:Q", format=".4f"), alt.Tooltip("b:Q", format=".4f"),
                 alt.Tooltip("diff:Q", format="+.4f")],
    )
)  # fmt: skip
histogram = (
    alt.Chart(points)
    .mark_bar()
    .encode(
        x=alt.X("diff:Q", bin=alt.Bin(maxbins=30), title=f"{a} − {b} per image ({metric})"),
        y=alt.Y("count():Q", title="images", axis=alt.Axis(tickMinStep=1, format="d")),
    )
)
rule = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="black").encode(x="x:Q")
g = st.columns(2)
g[0].altair_chart((diagonal + scatter).properties(height=340), width="stretch")
g[1].altair_chart((histogram + rule).properties(height=340), width="stretch")

st.subheader("Open an image")
order = points.reindex(points["diff"].abs().sort_values(ascending=False).index)
image_id = st.selectbox(
    "Image (largest |a − b| first)",
    list(order["image_id"]),
    format_func=lambda i: (
        f"{i}  (a − b = {float(order.set_index('image_id').loc[i, 'diff']):+.4f})"
    ),
    key="ab_image",
)
mine = frame[(frame["image_id"] == image_id) & frame["restorer"].isin([a, b])]
image_cells = (
    mine[["degradation", "severity", "seed"]]
    .drop_duplicates()
    .sort_values(["degradation", "severity", "seed"])
)
labels = [f"{d} · s{s} · seed {sd}" for d, s, sd in image_cells.itertuples(index=False)]
picked = st.selectbox("Cell", labels, key="ab_cell")
d, s, sd = image_cells.iloc[labels.index(picked)]
cols = st.columns(4)
gt_shown = False
for index, name in enumerate((a, b)):
    row = mine[(mine["restorer"] == name) & (mine["degradation"] == d) & (mine["severity"] == s)
               & (mine["seed"] == sd)]  # fmt: skip
    if row.empty:
        cols[index + 1].caption(f"{name}: no row for this cell")
        continue
    row = row.iloc[0]
    images = ui.triplet(ctx, row, recompute=ui.recomputable(row))
    if not gt_shown:
        with cols[0]:
            ui.show_image(images.lq, "LQ (regenerated)")
        with cols[3]:
            ui.show_image(images.gt, "GT (clean)")
        gt_shown = True
    with cols[index + 1]:
        missing = "not saved: " + ui.save_images_hint(ctx.run_of(row), name)
        ui.show_image(
            images.restored, f"{name}: {metric} {ui.fmt(row[metric], 3)}", missing=missing
        )
        for note in images.notes:
            st.caption(note)
