"""Failure analysis: the worst images of a cell as LQ | restored | GT, with a wipe and maps."""

import numpy as np
import pandas as pd
import streamlit as st

from restorelab.dashboard import data, ui

ctx = ui.context()
st.title("Failure analysis")
ctx.require_rows()
frame = ctx.frame
params = st.query_params
restorers = sorted(frame["restorer"].astype(str).unique())
wanted = params.get("restorer")
cells = (
    frame[["degradation", "severity"]].drop_duplicates().sort_values(["degradation", "severity"])
)
ALL, EXTREME = "all cells", f"all extreme levels ({data.EXTREME_FROM}–10)"
extreme = data.extreme_rows(frame)
options = [ALL, *[f"{d} · {s}" for d, s in cells.itertuples(index=False)]]
if not extreme.empty:
    options.insert(0, EXTREME)
elif params.get("cells") == "extreme":  # a link from the leaderboard on a run of mild levels
    st.info(
        f"This run has no cells at the extreme levels ({data.EXTREME_FROM}–10), so the worst "
        "images over all its cells are shown."
    )
top = st.columns([2, 3, 2, 2, 1])
restorer = top[0].selectbox(
    "Restorer",
    restorers,
    index=restorers.index(wanted) if wanted in restorers else ui.default_restorer(restorers),
    key="fail_restorer",
)
if params.get("cell") in options:  # a link to one cell (from the breakdown map)
    opened = options.index(params.get("cell"))
else:
    opened = options.index(ALL) if params.get("cells") == "all" else 0
cell = top[1].selectbox("Cell", options, index=opened)
metric = top[2].selectbox(
    "Metric",
    ctx.metrics,
    index=ctx.metrics.index(params["metric"]) if params.get("metric") in ctx.metrics else 0,
    key="fail_metric",
)
rank_by = top[3].radio(
    "Rank by",
    ["loss vs input", "metric"],
    key="fail_rank",
    help="loss vs input: where the restorer made the image worse than its degraded input; "
    "metric: the lowest restored scores (highest for lower-is-better metrics).",
)
k = top[4].number_input("k", min_value=1, max_value=50, value=6, key="fail_k")

if cell == EXTREME:
    rows = extreme
elif cell == ALL:
    rows = frame
else:
    degradation, severity = cell.rsplit(" · ", 1)
    rows = frame[(frame["degradation"] == degradation) & (frame["severity"] == int(severity))]
if rows.empty:
    st.info("No rows in this cell; pick another cell.")
    st.stop()
worst = data.worst_rows(
    rows, restorer, metric, ctx.directions, by="loss" if rank_by.startswith("loss") else "metric",
    k=int(k),
)  # fmt: skip
if worst.empty:
    st.info(f"{restorer} has no scored rows in this cell.")
    st.stop()
better = "higher" if ctx.directions[metric] else "lower"
st.write(
    f"The {len(worst)} worst rows of **{restorer}** by {rank_by} in **{metric}** ({better} is "
    "better; gain = restored − input, positive when the restorer helped)."
)
columns = [*data.CELL, metric, f"input_{metric}", "gain"] + [c for c in ctx.metrics if c != metric]
st.dataframe(worst[columns], hide_index=True, width="stretch", key="fail_table")

saved = (
    worst["restored_file"].fillna("").astype(str).ne("").any()
    if "restored_file" in worst
    else False
)
recompute = False
if not saved:
    run = ctx.run_of(worst.iloc[0])
    if ui.recomputable(worst.iloc[0]):
        st.info(
            f"The run did not save restored images (`--save-images`). {restorer} runs in this "
            "process and is cheap, so its output can be recomputed here."
        )
        recompute = st.toggle("Recompute restored images", value=True, key="fail_recompute")
    else:
        st.warning(
            "The run did not save restored images. Save them with:\n\n"
            f"`{ui.save_images_hint(run, restorer)}`"
        )

labels = [
    f"#{i + 1} {r.image_id} · {r.degradation} · s{r.severity} · seed {r.seed}"
    for i, r in enumerate(worst.itertuples(index=False))
]
st.subheader("Inspect one")
chosen = st.selectbox("Image", labels, key="fail_pick")
row = worst.iloc[labels.index(chosen)]
images = ui.triplet(ctx, row, recompute=recompute)
left, right = st.columns([3, 2])
with left:
    pair = st.radio(
        "Wipe between", ["restored | GT", "LQ | restored", "LQ | GT"], horizontal=True,
        key="fail_wipe_pair",
    )  # fmt: skip
    position = st.slider("Wipe position (% of the width)", 0, 100, 50, key="fail_wipe")
    sides = {"LQ": images.lq, "restored": images.restored, "GT": images.gt}
    a, b = (s.strip() for s in pair.split("|"))
    if sides[a] is None or sides[b] is None:
        st.caption(f"The wipe needs both the {a} and the {b} image.")
    else:
        st.image(
            data.wipe(sides[a], sides[b], position / 100),
            caption=f"{a} left of the line, {b} right",
            width=int(min(640, max(sides[b].shape[1], 320))),
        )
with right:
    shown = {c: row[c] for c in [*data.CELL, "restorer"]}
    shown |= {m: row[m] for m in ctx.metrics} | {
        f"input_{m}": row[f"input_{m}"] for m in ctx.metrics
    }
    st.dataframe(
        pd.DataFrame({"field": list(shown), "value": [str(v) for v in shown.values()]}),
        hide_index=True,
        width="stretch",
    )
    candidate = images.restored if images.restored is not None else images.lq
    name = "restored" if images.restored is not None else "LQ"
    if candidate is not None and images.gt is not None and candidate.shape == images.gt.shape:
        err = data.abs_error_map(candidate, images.gt)
        high = float(max(np.percentile(err, 99), 1.0))
        st.image(
            data.colormap(err, 0.0, high),
            caption=f"|{name} − GT|, mean over RGB, 0 (dark) … {high:.0f} (red) of 255",
            width=int(min(320, max(err.shape[1], 160))),
        )
        st.image(
            data.colormap(data.ssim_map(candidate, images.gt), 0.0, 1.0, reverse=True),
            caption=f"local SSIM of {name} vs GT: 1 (dark) … 0 or less (red)",
            width=int(min(320, max(err.shape[1], 160))),
        )

st.subheader(f"The {len(worst)} worst: LQ | restored | GT")
for i, (_, row) in enumerate(worst.iterrows()):
    images = ui.triplet(ctx, row, recompute=recompute)
    with st.container(border=True):
        st.markdown(
            f"**{labels[i]}** — {metric} {ui.fmt(row[metric], 3)} (input "
            f"{ui.fmt(row[f'input_{metric}'], 3)}, gain {row['gain']:+.3f})"
        )
        c = st.columns(3)
        with c[0]:
            ui.show_image(images.lq, "LQ (regenerated)")
        with c[1]:
            ui.show_image(images.restored, f"restored by {restorer}")
        with c[2]:
            ui.show_image(images.gt, "GT (clean)")
        for note in images.notes:
            st.caption(note)
