"""Streamlit glue shared by the dashboard pages: which runs are open, cached tables, images.

Tables are cached per run fingerprint (:func:`restorelab.dashboard.data.run_fingerprint`): a
run that gains a part file gets a new key, so nothing stale is shown and nothing is
recomputed while the run is unchanged. Every number comes from
:mod:`restorelab.dashboard.data`, which calls :mod:`restorelab.benchmark.stats`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from restorelab.dashboard import data

#: Environment variable with the folders to open, separated by ``os.pathsep``.
ENV_RUN_DIRS = "RESTORELAB_RUN_DIRS"
#: Older single-folder variable, still honoured.
ENV_RUN_DIR = "RESTORELAB_RUN_DIR"


def given_paths() -> list[str]:
    """Folders named on the command line (``streamlit run app.py -- A B``) or in the env."""
    env = os.environ.get(ENV_RUN_DIRS) or os.environ.get(ENV_RUN_DIR)
    if env:
        return [p for p in env.split(os.pathsep) if p.strip()]
    if sys.argv and sys.argv[0].endswith("app.py"):
        return [a for a in sys.argv[1:] if not a.startswith("-")]
    return []


# --- cached loading --------------------------------------------------------------------------
@st.cache_resource(max_entries=32, show_spinner="Loading results…")
def _run_data(path: str, fingerprint: str) -> data.RunData:
    return data.load_run_data(path)


@st.cache_resource(max_entries=8, show_spinner="Combining runs…")
def _combined(paths: tuple[str, ...], fingerprints: tuple[str, ...]) -> data.Combined:
    runs = [_run_data(p, f) for p, f in zip(paths, fingerprints, strict=True)]
    return data.combine_runs(runs)


@st.cache_data(max_entries=64, show_spinner=False)
def _discover(paths: tuple[str, ...]) -> list[str]:
    return [str(p) for p in data.discover_runs(paths)]


@dataclass
class Context:
    """The open runs of this session and their combined table."""

    given: list[str]
    runs: list[data.RunData]
    combined: data.Combined
    key: str  # fingerprint of the combination: cache key of every table

    @property
    def frame(self) -> pd.DataFrame:
        return self.combined.frame

    @property
    def metrics(self) -> list[str]:
        return self.combined.metrics

    @property
    def directions(self) -> dict[str, bool]:
        return self.combined.directions

    @property
    def names(self) -> list[str]:
        """The compared restorers (with a finished cell), fixed before any filtering."""
        return _compared(self.key, self.frame)

    def run_of(self, row: pd.Series) -> data.RunData:
        """The run a result row came from."""
        wanted = str(row.get("run_dir", ""))
        return next((r for r in self.runs if str(r.path) == wanted), self.runs[0])

    def require_rows(self) -> None:
        """Stop the page with a message when the open runs have no usable result rows."""
        if not self.frame.empty and self.metrics:
            return
        if any(not r.frame.empty for r in self.runs):
            st.warning(
                "The open runs share no cells or metrics, so there is nothing to compare; see "
                "the mismatches above, or open the runs one at a time."
            )
        else:
            failed = sum(len(r.errors) for r in self.runs)
            extra = f" ({failed} failed rows: see Run info)" if failed else ""
            st.warning(
                "No results yet" + extra + ". Fill the run with "
                f"`restorelab bench --corpus CORPUS --grid GRID --restorer NAME "
                f"--out {self.runs[0].path}`."
            )
        st.stop()


def _sidebar_runs() -> list[str]:
    given = given_paths()
    text = st.sidebar.text_area(
        "Run folders (one per line; a folder that holds runs lists them)",
        value="\n".join(given),
        key="run_folders",
        height=80,
    )
    return [line.strip() for line in text.splitlines() if line.strip()]


def context(*, required: bool = True) -> Context | None:
    """The open runs (sidebar), loaded and combined; stops the page with a message if none.

    With ``required=False`` a session without any run folder gets None instead.
    """
    given = _sidebar_runs()
    if not given and not required:
        return None
    if not given:
        st.info(
            "Give a run folder: `restorelab dashboard RUN_DIR [RUN_DIR ...]`, or type one in "
            "the sidebar."
        )
        st.stop()
    missing = [p for p in given if not Path(p).expanduser().is_dir()]
    for path in missing:
        st.error(f"Run folder not found: {path}")
    found = _discover(tuple(given))
    if not found:
        if len(missing) < len(given):
            st.warning(
                "No run found in " + ", ".join(p for p in given if p not in missing) + ": a run "
                "folder holds `run.json` and `results/`, made by `restorelab bench ... --out "
                "RUN_DIR` (the demo's folder holds its run in `run/`)."
            )
        st.stop()
    explicit = [str(Path(p).expanduser().resolve()) for p in given]
    default = default_runs(given, found)
    if len(found) > 1:
        chosen = st.sidebar.multiselect(
            "Runs", found, default=default, format_func=_run_label, key="runs_chosen"
        )
        if len(found) > len(default) and not [p for p in found if p in explicit]:
            st.sidebar.caption(f"{len(found)} runs found below the folder: pick one or several.")
    else:
        chosen = found
    if not chosen:
        st.info("Pick at least one run in the sidebar.")
        st.stop()
    runs, combined, key = _load(chosen)
    for run in runs:
        for problem in run.problems:
            st.warning(f"Run {run.name}: {problem}")
    if combined.mismatches:
        with st.container(border=True):
            st.markdown("**The open runs differ** (nothing was merged silently):")
            for line in combined.mismatches:
                st.markdown(f"- {line}")
    return Context(given, runs, combined, key)


def default_runs(given: list[str], found: list[str]) -> list[str]:
    """The runs a session opens on: those named explicitly, else the first run found."""
    explicit = [str(Path(p).expanduser().resolve()) for p in given]
    return [p for p in found if p in explicit] or found[:1]


def _load(chosen: list[str]) -> tuple[list[data.RunData], data.Combined, str]:
    """The chosen runs (cached per fingerprint), combined, and the combination's key."""
    fingerprints = tuple(data.run_fingerprint(p) for p in chosen)
    runs = [_run_data(p, f) for p, f in zip(chosen, fingerprints, strict=True)]
    return runs, _combined(tuple(chosen), fingerprints), "|".join(fingerprints)


def warm_up(paths: list[str]) -> None:
    """Compute what the first page (the leaderboard, default filter) of a session on
    ``paths`` needs, into the caches its script reads: the runs' tables, their combination
    and the leaderboard's statistics. ``restorelab dashboard`` calls this in a background
    thread of the server as it starts, so the first visitor does not wait for them; the
    keys are the page's own, so the numbers are the same."""
    found = _discover(tuple(paths))
    if not found:
        return
    runs, combined, key = _load(default_runs(paths, found))
    ctx = Context(list(paths), runs, combined, key)
    if not ctx.frame.empty and ctx.metrics:
        leaderboard(ctx, default_selection(ctx))


def run_tables(run: data.RunData) -> dict:
    """Run info's tables of one run (cached per run fingerprint): ``images``, ``restorers``,
    ``timing`` (:func:`data.timing_table`), ``coverage`` and ``failures`` (the report's
    :func:`~restorelab.benchmark.stats.coverage` / ``failures``; coverage None without rows)."""
    return _run_tables(str(run.path), data.run_fingerprint(run.path), run)


@st.cache_resource(max_entries=32, show_spinner=False)
def _run_tables(path: str, fingerprint: str, _run: data.RunData) -> dict:
    from restorelab.benchmark import stats

    everything = pd.concat([_run.frame, _run.errors], ignore_index=True)
    rows = not _run.frame.empty
    return {
        "images": _run.frame["image_id"].nunique() if rows else 0,
        "restorers": _run.frame["restorer"].nunique() if rows else 0,
        "timing": data.timing_table(everything),
        "coverage": stats.coverage(everything) if not everything.empty else None,
        "failures": stats.failures(everything) if not _run.errors.empty else None,
    }


@st.cache_resource(max_entries=16, show_spinner=False)
def _compared(key: str, _frame: pd.DataFrame) -> list[str]:
    from restorelab.benchmark.stats import compared_restorers

    return compared_restorers(_frame) if not _frame.empty else []


def _run_label(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def cell_filter(ctx: Context) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Degradation and severity pickers in the sidebar (shared by the pages that use them)."""
    degradations, severities = default_selection(ctx)
    chosen_d = st.sidebar.multiselect(
        "Degradations", list(degradations), default=list(degradations), key="filter_degradations"
    )
    chosen_s = st.sidebar.multiselect(
        "Severities", list(severities), default=list(severities), key="filter_severities"
    )
    return tuple(chosen_d), tuple(chosen_s)


def has_extreme_levels(ctx: Context) -> bool:
    """Whether the open runs have a cell at an extreme level (:data:`data.EXTREME_FROM`+)."""
    return _has_extreme(ctx.key, ctx.frame)


@st.cache_resource(max_entries=16, show_spinner=False)
def _has_extreme(key: str, _frame: pd.DataFrame) -> bool:
    cells = _frame[["degradation", "severity"]].drop_duplicates()
    return not data.extreme_rows(cells).empty


def default_selection(ctx: Context) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Every degradation (natural order) and every severity of the open runs: the filter a
    page opens with."""
    return _selection_options(ctx.key, ctx.frame)


@st.cache_resource(max_entries=16, show_spinner=False)
def _selection_options(key: str, _frame: pd.DataFrame) -> tuple:
    degradations = sorted(_frame["degradation"].astype(str).unique(), key=data.natural_key)
    return tuple(degradations), tuple(sorted(int(s) for s in _frame["severity"].unique()))


def filtered(ctx: Context, selection: tuple) -> pd.DataFrame:
    """The combined table narrowed to a :func:`cell_filter` selection (cached per key)."""
    return _filtered(ctx.key, selection, ctx.frame)


def filtered_or_stop(ctx: Context) -> tuple[tuple, pd.DataFrame]:
    """The sidebar's :func:`cell_filter` and the rows it selects; when it selects none, says so
    and stops the page."""
    selection = cell_filter(ctx)
    frame = filtered(ctx, selection)
    if frame.empty:
        st.info("No rows for the chosen degradations and severities: widen the filter.")
        st.stop()
    return selection, frame


@st.cache_resource(max_entries=32, show_spinner=False)
def _filtered(key: str, selection: tuple, _frame: pd.DataFrame) -> pd.DataFrame:
    return data.filter_rows(_frame, list(selection[0]), list(selection[1])).reset_index(drop=True)


# --- cached statistics (all from restorelab.benchmark.stats via data.py) ----------------------
def _dirs(ctx: Context) -> tuple:
    return tuple(sorted(ctx.directions.items()))


@st.cache_data(max_entries=64, show_spinner="Bootstrapping confidence intervals…")
def _leaderboard(key, selection, directions, names, _frame) -> dict:
    metrics = [m for m, _ in directions]
    return data.leaderboard_tables(_frame, metrics, dict(directions), restorers=list(names))


def leaderboard(ctx: Context, selection: tuple) -> dict[str, pd.DataFrame]:
    frame = filtered(ctx, selection)
    if frame.empty:
        return {}
    ordered = tuple((m, ctx.directions[m]) for m in ctx.metrics)
    return _leaderboard(ctx.key, selection, ordered, tuple(ctx.names), frame)


@st.cache_data(max_entries=64, show_spinner="Bootstrapping confidence intervals…")
def _curves(key, selection, metric, names, _frame) -> pd.DataFrame:
    return data.severity_curve_table(_frame, metric, restorers=list(names))


def curves(ctx: Context, selection: tuple, metric: str) -> pd.DataFrame:
    return _curves(ctx.key, selection, metric, tuple(ctx.names), filtered(ctx, selection))


@st.cache_data(max_entries=64, show_spinner="Bootstrapping the gain of every cell…")
def _gain_map(key, pair, restorer, metric, directions, names, _frame) -> pd.DataFrame:
    return data.gain_map(_frame, pair, restorer, metric, dict(directions), restorers=list(names))


def gain_map(ctx: Context, pair: tuple, restorer: str, metric: str) -> pd.DataFrame:
    return _gain_map(ctx.key, pair, restorer, metric, _dirs(ctx), tuple(ctx.names), ctx.frame)


@st.cache_data(max_entries=32, show_spinner="Finding breakdown severities…")
def _breakdown(key, selection, metrics, directions, _frame) -> pd.DataFrame:
    return data.breakdown_view(_frame, list(metrics), higher_is_better=dict(directions))


def breakdown(ctx: Context, selection: tuple, metrics: list[str]) -> pd.DataFrame:
    frame = filtered(ctx, selection)
    if frame.empty:
        return pd.DataFrame()
    return _breakdown(ctx.key, selection, tuple(metrics), _dirs(ctx), frame)


@st.cache_data(max_entries=64, show_spinner="Comparing restorers…")
def _paired(key, selection, a, b, metrics, directions, _frame) -> pd.DataFrame:
    return data.paired_view(_frame, a, b, list(metrics), higher_is_better=dict(directions))


def paired(ctx: Context, selection: tuple, a: str, b: str) -> pd.DataFrame:
    frame = filtered(ctx, selection)
    return _paired(ctx.key, selection, a, b, tuple(ctx.metrics), _dirs(ctx), frame)


@st.cache_data(max_entries=64, show_spinner=False)
def _per_image(key, selection, a, b, metric, _frame) -> pd.DataFrame:
    return data.per_image_pairs(_frame, a, b, metric)


def per_image(ctx: Context, selection: tuple, a: str, b: str, metric: str) -> pd.DataFrame:
    return _per_image(ctx.key, selection, a, b, metric, filtered(ctx, selection))


# --- images ----------------------------------------------------------------------------------
@st.cache_resource(max_entries=8, show_spinner=False)
def _corpus_index(corpus: str) -> dict[str, Path]:
    return data.corpus_index(corpus)


@st.cache_data(max_entries=256, show_spinner=False)
def _image(path: str, mtime: float) -> np.ndarray:
    return data.read_image(path)


def image_file(path: Path) -> np.ndarray:
    """An image file as RGB ``uint8`` (cached per path and modification time)."""
    return _image(str(path), path.stat().st_mtime)


@st.cache_data(max_entries=256, show_spinner=False)
def _lq(clean_path: str, mtime: float, degradation: str, severity: int, seed: int, levels):
    clean = data.read_image(clean_path)
    return data.regenerate_lq(clean, degradation, severity, seed, levels)


@dataclass
class Triplet:
    """The images of one result row, with what could not be found."""

    lq: np.ndarray | None
    restored: np.ndarray | None
    gt: np.ndarray | None
    notes: list[str]


def triplet(ctx: Context, row: pd.Series, *, recompute: bool = False) -> Triplet:
    """LQ (regenerated from the clean image), restored (saved or recomputed) and GT of a row."""
    run = ctx.run_of(row)
    notes: list[str] = []
    gt = lq = restored = None
    corpus = run.info.get("corpus")
    clean_path = None
    if not corpus:
        notes.append("run.json names no corpus, so the clean image (GT) is unknown")
    else:
        try:
            clean_path = _corpus_index(str(corpus)).get(str(row["image_id"]))
        except (OSError, ValueError) as exc:
            notes.append(f"corpus {corpus} cannot be read ({exc})")
        if clean_path is None and not notes:
            notes.append(f"image {row['image_id']} is not in corpus {corpus}")
    if clean_path is not None and clean_path.is_file():
        gt = image_file(clean_path)
        levels = data.grid_levels(run.info, str(row["degradation"]))
        try:
            lq = _lq(
                str(clean_path),
                clean_path.stat().st_mtime,
                str(row["degradation"]),
                int(row["severity"]),
                int(row["seed"]),
                levels,
            )
        except (ValueError, KeyError) as exc:
            notes.append(f"the degraded input cannot be regenerated: {exc}")
    if lq is None:
        saved = data.saved_image(run.path, row.get("degraded_file"))
        if saved is not None:
            lq = image_file(saved)
    saved = data.saved_image(run.path, row.get("restored_file"))
    if saved is not None:
        restored = image_file(saved)
    elif recompute and lq is not None:
        restored = _recomputed(str(row.get("restorer_config", "")), lq)
        if restored is None:
            notes.append("the restorer could not be rebuilt here to recompute its output")
    return Triplet(lq, restored, gt, notes)


def recomputable(row: pd.Series) -> bool:
    """Whether the row's restorer runs in this process and cheaply (≤ 2 s per image)."""
    try:
        config = _json(row.get("restorer_config"))
        from restorelab.benchmark.restorers import RESTORERS

        cls = RESTORERS.get(config["name"])
    except Exception:
        return False
    seconds = row.get("seconds")
    cheap = seconds is not None and np.isfinite(seconds) and float(seconds) <= 2.0
    return not cls.runs_in_subprocess and cheap and str(row.get("device", "cpu")) == "cpu"


def _json(text) -> dict:
    import json

    return json.loads(text) if isinstance(text, str) and text else {}


@st.cache_data(max_entries=64, show_spinner="Recomputing the restored image…")
def _recomputed(config_text: str, lq: np.ndarray) -> np.ndarray | None:
    from restorelab.benchmark.restorers import create_restorer

    config = _json(config_text)
    try:
        name = config.pop("name")
        return create_restorer(name, **config).restore(lq)
    except Exception:
        return None


def save_images_hint(run: data.RunData, restorer: str) -> str:
    """The command that saves restored images for ``restorer`` (into a new run folder)."""
    info = run.info
    grid = (info.get("grid") or {}).get("name", "GRID")
    metrics = ",".join(info.get("metrics", {})) or "psnr,ssim"
    entry = next((r for r in info.get("restorers", []) if r.get("label") == restorer), None)
    spec = restorer.split(" @ ")[0]
    if entry:
        options = {k: v for k, v in entry.get("config", {}).items() if k != "name"}
        spec = entry["config"].get("name", spec)
        if options and entry.get("label") != spec:
            spec = entry["label"]
    return (
        f"restorelab bench --corpus {info.get('corpus', 'CORPUS')} --grid {grid} "
        f"--restorer {spec} --metrics {metrics} --save-images --out {run.path}-images"
    )


def show_image(image: np.ndarray | None, caption: str, missing: str = "not available") -> None:
    """An image with a caption, fitted to its column (small images at their own size, never
    wider than the column), or a note in its place."""
    if image is None:
        st.caption(f"{caption}: {missing}")
    else:
        st.image(image, caption=caption, width="stretch" if image.shape[1] >= 160 else "content")


def default_restorer(restorers: list[str]) -> int:
    """Index of the restorer a page opens on: the first that is not a do-nothing baseline."""
    baselines = {"identity", "bicubic"}
    return next((i for i, r in enumerate(restorers) if r.split(" @ ")[0] not in baselines), 0)


def fmt(value: float, digits: int = 3) -> str:
    """A number for display (— for NaN)."""
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def digits_for(values) -> int:
    """2 decimals for values of magnitude ≥ 10 (dB), 4 otherwise (SSIM, LPIPS)."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    return 2 if finite.size and finite.max() >= 10 else 4
