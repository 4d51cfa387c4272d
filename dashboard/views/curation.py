"""Curation report: rejection reasons, signal histograms with thresholds, thumbnails, duplicates."""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from restorelab.dashboard import data, ui

PAGE = 24  # thumbnails per grid page


@st.cache_data(max_entries=1024, show_spinner=False)
def thumb(path: str, mtime: float):
    from restorelab.imageio import thumbnail

    try:
        return thumbnail(data.read_image(path), 160)
    except Exception:
        return None


def show_thumb(path, caption: str) -> None:
    p = Path(path) if path else None
    image = thumb(str(p), p.stat().st_mtime) if p is not None and p.is_file() else None
    if image is None:
        st.caption(f"{caption} (file not readable here)")
    else:
        st.image(image, caption=caption, width=200)


def grid(items: list[tuple], key: str) -> None:
    if not items:
        st.caption("none")
        return
    pages = max(1, -(-len(items) // PAGE))
    page = st.number_input(f"page (of {pages})", 1, pages, 1, key=key) if pages > 1 else 1
    chunk = items[(page - 1) * PAGE : page * PAGE]
    cols = st.columns(6)
    for i, (path, caption) in enumerate(chunk):
        with cols[i % 6]:
            show_thumb(path, caption)


st.title("Curation report")
ctx = ui.context(required=False)  # the page also works on any curated folder, without a run
runs = ctx.runs if ctx is not None else []
default = next((str(r.info["corpus"]) for r in runs if data.is_curated(r.info.get("corpus"))), "")
folder = st.text_input("Curated folder (the run's corpus by default)", value=default, key="cur_dir")
if not folder:
    st.info(
        "The open run's corpus was not made by `restorelab curate`. Type the folder of a "
        "`restorelab curate --out` run to see its report."
    )
    st.stop()
if not data.is_curated(folder):
    st.warning(f"{folder} has no curation.json: it was not written by `restorelab curate`.")
    st.stop()
view = data.curation_view(folder)
summary = view.summary
c = st.columns(4)
c[0].metric("inputs", summary.get("inputs", len(view.kept) + len(view.rejected)))
c[1].metric("kept", summary.get("kept", len(view.kept)))
c[2].metric("rejected", summary.get("rejected", len(view.rejected)))
c[3].metric("seconds", summary.get("seconds", "—"))

st.subheader("Rejections by reason")
counts = data.rejection_counts(view)
if counts.empty:
    st.success("Nothing was rejected.")
else:
    left, right = st.columns([1, 2])
    left.dataframe(counts, hide_index=True, width="stretch", key="cur_counts")
    right.altair_chart(
        alt.Chart(counts)
        .mark_bar()
        .encode(x=alt.X("images:Q", axis=alt.Axis(tickMinStep=1)), y=alt.Y("reason:N", sort="-x")),
        width="stretch",
    )

st.subheader("Signals")
signals = [
    s for s in ("short_side", "sharpness", "noise_sigma", "jpeg_quality", "clipped_dark",
                "clipped_bright", "colourfulness", "entropy", "aspect", "megapixels")
    if s in view.kept.columns or s in view.rejected.columns
]  # fmt: skip
both = pd.concat(
    [view.kept.assign(status="kept"), view.rejected.assign(status="rejected")], ignore_index=True
)
signal = st.selectbox("Signal", signals, key="cur_signal") if signals else None
if signal:
    values = both[["status", signal]].dropna()
    values = values.assign(**{signal: pd.to_numeric(values[signal], errors="coerce")}).dropna()
    layers = [
        alt.Chart(values)
        .mark_bar(opacity=0.8)
        .encode(
            x=alt.X(f"{signal}:Q", bin=alt.Bin(maxbins=30), title=signal),
            y=alt.Y("count():Q", title="images", stack=True),
            color="status:N",
        )
    ]
    limits = [(n, op, t) for n, (s, op, t) in view.thresholds.items() if s == signal]
    for name, op, threshold in limits:
        rule = pd.DataFrame({"x": [float(threshold)], "label": [f"{name}: {op} {threshold}"]})
        layers.append(
            alt.Chart(rule).mark_rule(color="red", strokeWidth=2).encode(x="x:Q", tooltip="label")
        )
    st.altair_chart(alt.layer(*layers).properties(height=260), width="stretch")
    st.caption(
        "; ".join(f"threshold {n}: {signal} {op} {t}" for n, op, t in limits)
        or f"no active filter on {signal}"
    )

st.subheader("Kept")
kept_items = [
    (view.folder / f, str(t)[:60] if isinstance(t, str) and t else Path(f).name)
    for f, t in zip(
        view.kept["file_name"], view.kept.get("text", view.kept["file_name"]), strict=True
    )
]
grid(kept_items, "cur_kept_page")
st.subheader("Rejected")
rejected_items = [
    (data.source_path(view, s), f"{Path(str(s)).name}: {r}")
    for s, r in zip(view.rejected["source"], view.rejected["reason"], strict=True)
]
grid(rejected_items, "cur_rej_page")
st.subheader("Duplicate groups")
groups = data.duplicate_groups(view)
if not groups:
    st.caption("No duplicates were found.")
for group in groups:
    with st.container(border=True):
        cols = st.columns(min(6, 1 + len(group["dropped"])))
        with cols[0]:
            show_thumb(group["kept_file"] or group["kept"], f"✔ kept: {Path(group['kept']).name}")
        for i, dropped in enumerate(group["dropped"][: len(cols) - 1]):
            with cols[i + 1]:
                show_thumb(data.source_path(view, dropped), f"✘ dropped: {Path(dropped).name}")
