"""The dashboard: its data functions, every page under Streamlit's AppTest, and the CLI server.

The pages run on small real runs (three 96-px photos, a blur × noise grid, classical
restorers); the tests check that the numbers a page shows are those of
:mod:`restorelab.benchmark.stats`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from restorelab.benchmark import run_benchmark, stats
from restorelab.benchmark.stats import breakdown_severity, paired_comparison, summary_table
from restorelab.curation import CurationConfig, curate
from restorelab.dashboard import data
from restorelab.degradations.grid import Grid, load_grid
from restorelab.results import ResultsStore

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = ["leaderboard", "curves", "breakdown", "failures", "compare", "curation", "run_info"]
METRICS = ["psnr", "ssim", "psnr:crop_border=4"]  # a label with ':' and '='


def _grid(severities=(2, 6)) -> Grid:
    return Grid(
        name="cross",
        degradations=["gaussian_blur", "gaussian_noise"],
        severities=list(severities),
        seeds=[0],
        chains=[f"gaussian_blur:{s}+gaussian_noise" for s in severities],
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, photos: dict) -> Path:
    """``root/corpus`` (curated, with planted rejects) and two runs on it: ``a`` and ``b``."""
    from PIL import Image

    root = tmp_path_factory.mktemp("dash")
    src = root / "src"
    src.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(src / f"{name}.png")
    Image.fromarray(photos["astronaut"]).save(src / "astronaut_copy.bmp")  # a duplicate
    (src / "broken.jpg").write_bytes(b"broken")
    small = {"min_side": 32, "max_noise_sigma": None, "min_sharpness": None}
    curate([src], root / "corpus", CurationConfig(filters=small, target=None), progress=False)
    runs = root / "runs"
    run_benchmark(
        root / "corpus",
        _grid(),
        ["identity", "wavelet"],
        runs / "a",
        metrics=METRICS,
        save_images=True,
        progress=False,
    )
    run_benchmark(root / "corpus", _grid(), ["tv"], runs / "b", metrics=METRICS, progress=False)
    return root


@pytest.fixture(scope="module")
def run_a(root: Path) -> Path:
    return root / "runs" / "a"


def _app(monkeypatch: pytest.MonkeyPatch, *folders: Path, page: str | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("RESTORELAB_RUN_DIR", raising=False)
    monkeypatch.setenv("RESTORELAB_RUN_DIRS", os.pathsep.join(str(f) for f in folders))
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    if page:
        app.switch_page(f"views/{page}.py").run()
    return app


def _clean(app) -> None:
    """No exception element and no error box on the page."""
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def _frame(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    combined = data.combine_runs([data.load_run_data(run_dir)])
    return combined.frame, combined.directions


# --- data functions --------------------------------------------------------------------------
def test_blur_noise_grid_crosses_blur_with_noise() -> None:
    grid = load_grid("blur-noise")
    cells = {(d, s) for d, s, _ in grid.cells()}
    points = {
        (lv.get("gaussian_blur", 0), lv.get("gaussian_noise", 0))
        for lv in (data.step_levels(d, s) for d, s in cells)
    }
    levels = [0, 2, 4, 6, 8, 10]
    assert points == {(a, b) for a in levels for b in levels} - {(0, 0)}
    assert len(grid) == 35


def test_step_levels_and_crossed_pairs(run_a: Path) -> None:
    assert data.step_levels("gaussian_blur:8+gaussian_noise", 3) == {
        "gaussian_blur": 8,
        "gaussian_noise": 3,
    }
    assert data.step_levels("jpeg_compression", 4) == {"jpeg_compression": 4}
    frame, _ = _frame(run_a)
    assert data.crossed_pairs(frame) == [("gaussian_blur", "gaussian_noise")]
    assert data.crossed_pairs(frame[frame["degradation"] == "gaussian_blur"]) == []


def test_leaderboard_numbers_are_the_stats_functions(run_a: Path) -> None:
    frame, directions = _frame(run_a)
    tables = data.leaderboard_tables(frame, METRICS, directions)
    board = stats.leaderboard(frame, METRICS, higher_is_better=directions, include_input=False)
    summary = summary_table(frame, METRICS, by=("restorer",))
    for metric in METRICS:
        table = tables[metric].set_index("restorer")
        expected = board[board["metric"] == metric].set_index("restorer")
        assert np.allclose(table["mean"], expected.loc[table.index, "mean"])
        assert np.allclose(table["ci_low"], expected.loc[table.index, "ci_low"])
        assert np.allclose(table["Δ_high"], expected.loc[table.index, "delta_ci_high"])
        assert np.allclose(table["input"], expected.loc[table.index, "input_mean"])
        same = summary[summary["metric"] == metric].set_index("restorer")  # the report's table
        assert np.allclose(table["mean"], same.loc[table.index, "mean"])
    wavelet = tables["psnr"].set_index("restorer").loc["wavelet"]
    assert wavelet["Δ"] == pytest.approx(wavelet["mean"] - wavelet["input"])
    assert tables["psnr"].set_index("restorer").loc["identity", "Δ"] == pytest.approx(0.0)
    assert list(tables["psnr"]["restorer"]) == ["wavelet", "identity"]
    assert (tables["psnr"]["finished"] == tables["psnr"]["planned"]).all()


def test_each_metric_is_sorted_by_its_own_direction(run_a: Path) -> None:
    frame, directions = _frame(run_a)
    flipped = {**directions, "ssim": False}  # as for a lower-is-better metric (LPIPS, DISTS)
    tables = data.leaderboard_tables(frame, ["psnr", "ssim"], flipped)
    assert list(tables["psnr"]["restorer"]) == ["wavelet", "identity"]
    assert list(tables["ssim"]["restorer"]) == ["identity", "wavelet"]
    assert tables["ssim"]["mean"].is_monotonic_increasing


def test_gain_map_and_frontier(run_a: Path) -> None:
    frame, directions = _frame(run_a)
    pair = ("gaussian_blur", "gaussian_noise")
    gains = data.gain_map(frame, pair, "wavelet", "psnr", directions)
    points = set(zip(gains["level_a"], gains["level_b"], strict=True))
    assert points == {(2, 0), (6, 0), (0, 2), (0, 6), (2, 2), (2, 6), (6, 2), (6, 6)}
    noise = gains[(gains["level_a"] == 0) & (gains["level_b"] == 6)].iloc[0]
    expected = stats.severity_gains(frame, "psnr", higher_is_better=directions)
    expected = expected[expected["restorer"] == "wavelet"].set_index(["degradation", "severity"])
    assert noise["gain"] == pytest.approx(expected.loc[("gaussian_noise", 6), "gain"])
    assert noise["gain_low"] == pytest.approx(expected.loc[("gaussian_noise", 6), "ci_low"])
    assert noise["gain"] > 0 and not noise["broken"]  # a denoiser helps on noise
    tolerance = stats.DEFAULT_SETTINGS.tolerances(["psnr"])["psnr"]
    assert gains["broken"].equals(gains["gain_low"] <= tolerance)
    identity = data.gain_map(frame, pair, "identity", "psnr", directions)
    assert identity["broken"].all()  # identity never helps
    line = data.frontier(identity)
    assert list(line["level_b"]) == [2, 0, 0]  # first broken noise level per blur level


def test_worst_rows_and_images(run_a: Path) -> None:
    frame, directions = _frame(run_a)
    worst = data.worst_rows(data.extreme_rows(frame), "wavelet", "psnr", directions, k=3)
    assert len(worst) == 3
    assert worst["gain"].is_monotonic_increasing
    rows = frame[frame["restorer"] == "wavelet"]
    extreme = data.extreme_rows(rows)
    assert (extreme["degradation"].str.contains(":6") | (extreme["severity"] == 6)).all()
    # the regenerated LQ equals the degraded image the run saved: degradations are deterministic
    row = worst.iloc[0]
    clean = data.read_image(
        data.corpus_index(json.loads((run_a / "run.json").read_text())["corpus"])[row["image_id"]]
    )
    lq = data.regenerate_lq(clean, row["degradation"], row["severity"], row["seed"])
    assert np.array_equal(lq, data.read_image(run_a / row["degraded_file"]))
    assert data.abs_error_map(lq, clean).shape == clean.shape[:2]
    ssim = data.ssim_map(clean, clean)
    assert ssim.shape == clean.shape[:2] and np.allclose(ssim, 1.0)
    wiped = data.wipe(lq, clean, 0.5)
    half = clean.shape[1] // 2
    assert np.array_equal(wiped[:, : half - 2], lq[:, : half - 2])
    assert np.array_equal(wiped[:, half + 2 :], clean[:, half + 2 :])


def test_combine_runs_reports_mismatches(root: Path, tmp_path: Path) -> None:
    a = data.load_run_data(root / "runs" / "a")
    b = data.load_run_data(root / "runs" / "b")
    combined = data.combine_runs([a, b])
    assert not combined.mismatches
    assert set(combined.frame["restorer"]) == {"identity", "wavelet", "tv"}
    # another grid: the cells only one run has are named and left out
    run_benchmark(
        root / "corpus", _grid((2, 4)), ["tv"], tmp_path / "c", metrics=["psnr"], progress=False
    )
    c = data.load_run_data(tmp_path / "c")
    combined = data.combine_runs([a, c])
    text = " ".join(combined.mismatches)
    assert "metric(s) ['psnr:crop_border=4', 'ssim'] only in run a" in text
    assert "cell(s) the other runs lack" in text
    assert set(combined.frame["severity"]) == {2}
    # the same names, other image content: the input scores differ, the run is left out
    d = data.load_run_data(root / "runs" / "b")
    d.frame = d.frame.assign(input_psnr=d.frame["input_psnr"] + 1.0)
    combined = data.combine_runs([a, d])
    assert any("scores the degraded input differently" in m for m in combined.mismatches)
    assert "tv" not in set(combined.frame["restorer"])


def test_discover_runs_in_a_folder_that_holds_runs(root: Path) -> None:
    found = data.discover_runs([root])
    assert found == [(root / "runs" / "a").resolve(), (root / "runs" / "b").resolve()]
    assert data.discover_runs([root / "runs" / "a"]) == [(root / "runs" / "a").resolve()]
    assert data.discover_runs([root / "corpus"]) == []


def test_curation_view(root: Path) -> None:
    view = data.curation_view(root / "corpus")
    counts = data.rejection_counts(view).set_index("reason")["images"].to_dict()
    assert counts == {"exact duplicate": 1, "undecodable": 1}
    groups = data.duplicate_groups(view)
    assert len(groups) == 1 and groups[0]["kept_file"].is_file()
    assert groups[0]["dropped"][0].endswith("astronaut_copy.bmp")
    assert view.thresholds["min_side"] == ("short_side", ">=", 32)


# --- every page under AppTest ----------------------------------------------------------------
def test_page_leaderboard(run_a: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, run_a)
    _clean(app)
    assert app.title[0].value == "Leaderboard"
    frame, directions = _frame(run_a)
    summary = stats.leaderboard(frame, "psnr", higher_is_better=directions).set_index("restorer")
    board = app.dataframe[0].value.set_index("restorer")
    lo, hi = summary.loc["wavelet", ["ci_low", "ci_high"]]
    mean = summary.loc["wavelet", "mean"]
    assert board.loc["wavelet", "mean [95% CI]"] == f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"
    assert list(board.index) == ["wavelet", "identity"]
    assert board.loc["identity", "Δ over input [95% CI]"].startswith("+0.00")
    assert len(app.dataframe) == len(METRICS)
    # narrowing the filter re-renders with the subset's numbers
    app.sidebar.multiselect(key="filter_degradations").set_value(["gaussian_noise"]).run()
    _clean(app)
    subset = frame[frame["degradation"] == "gaussian_noise"]
    expected = stats.leaderboard(subset, "psnr", higher_is_better=directions).set_index("restorer")
    shown = app.dataframe[0].value.set_index("restorer").loc["wavelet", "mean [95% CI]"]
    assert shown.startswith(f"{expected.loc['wavelet', 'mean']:.2f} [")


def test_page_leaderboard_sorts_lower_is_better_metrics_ascending(
    run_a: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_a, run)
    info = json.loads((run / "run.json").read_text())
    info["metrics"]["ssim"]["higher_is_better"] = False  # as a distortion such as LPIPS
    (run / "run.json").write_text(json.dumps(info))
    app = _app(monkeypatch, run)
    _clean(app)
    assert "ssim  (↓ lower is better)" in [s.value for s in app.subheader]
    ssim = app.dataframe[1].value
    assert list(ssim["restorer"]) == ["identity", "wavelet"]


def test_page_curves(run_a: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, run_a, page="curves")
    _clean(app)
    frame, _ = _frame(run_a)
    charts = app.get("vega_lite_chart")
    assert len(charts) == frame["degradation"].nunique()
    table = app.dataframe[0].value
    expected = data.severity_curve_table(frame, "psnr")
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected.reset_index(drop=True))
    assert data.INPUT_LABEL in set(table["restorer"])
    for option in METRICS:  # every metric draws, labelled ones included
        app.selectbox(key="curves_metric").set_value(option).run()
        _clean(app)
    app.toggle(key="curves_bands").set_value(False).run()
    _clean(app)


def test_page_breakdown(run_a: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, run_a, page="breakdown")
    _clean(app)
    assert app.selectbox(key="map_restorer").value == "wavelet"
    frame, directions = _frame(run_a)
    cells = app.dataframe[0].value
    expected = data.gain_map(
        frame, ("gaussian_blur", "gaussian_noise"), "wavelet", "psnr", directions
    )
    assert np.allclose(cells["gain"].to_numpy(), expected["gain"].to_numpy())
    assert len(app.get("vega_lite_chart")) == 1
    table = app.dataframe[1].value
    stats = breakdown_severity(frame, METRICS, higher_is_better=directions)
    row = stats[(stats["restorer"] == "identity") & (stats["metric"] == "psnr")].iloc[0]
    shown = table[(table["restorer"] == "identity") & (table["degradation"] == row["degradation"])]
    assert shown["psnr breaks at"].iloc[0] == str(row["breaks_at"])
    assert shown["psnr reason"].iloc[0] == row["reason"] and row["reason"].startswith("no gain")
    # a restorer that breaks: its frontier's cells are outlined on the map, under the labels
    app.selectbox(key="map_restorer").set_value("identity").run()
    _clean(app)
    spec = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    marks = [layer["mark"] for layer in spec["layer"]]
    marks = [m if isinstance(m, dict) else {"type": m} for m in marks]
    assert [m["type"] for m in marks] == ["rect", "rect", "line", "text"]
    assert marks[1].get("filled") is False and marks[1].get("stroke") == "black"
    gains = data.gain_map(
        frame, ("gaussian_blur", "gaussian_noise"), "identity", "psnr", directions
    )
    assert len(data.frontier(gains).dropna()) == gains["level_a"].nunique()
    # the link under the map opens the worst images of a cell, broken and hardest first
    link = app.get("page_link")[0].proto
    query = dict(urllib.parse.parse_qsl(link.query_string))
    hardest = gains[gains["broken"]].assign(h=gains["level_a"] + gains["level_b"])
    hardest = hardest.sort_values(["h", "level_a"], ascending=False).iloc[0]
    assert link.page == "failures"
    assert query == {
        "restorer": "identity",
        "cell": f"{hardest['degradation']} · {hardest['severity']}",
        "metric": "psnr",
    }
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in query.items():
        app.query_params[key] = value
    app.run()
    app.switch_page("views/failures.py").run()
    _clean(app)
    assert app.selectbox[1].value == query["cell"]
    table = app.dataframe[0].value
    assert set(table["degradation"]) == {hardest["degradation"]}
    assert set(table["severity"]) == {hardest["severity"]}


def test_page_breakdown_without_a_crossed_grid(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = Grid(name="one", degradations=["gaussian_noise"], severities=[2, 6], seeds=[0])
    run_benchmark(root / "corpus", grid, ["identity"], tmp_path / "r", progress=False)
    app = _app(monkeypatch, tmp_path / "r", page="breakdown")
    _clean(app)
    assert "crosses no two degradations" in app.info[0].value
    assert "blur-noise" in app.info[0].value


def test_page_failures(run_a: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RESTORELAB_RUN_DIRS", str(run_a))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.query_params["restorer"] = "wavelet"
    app.query_params["cells"] = "extreme"
    app.run()
    app.switch_page("views/failures.py").run()
    _clean(app)
    assert app.selectbox(key="fail_restorer").value == "wavelet"
    frame, directions = _frame(run_a)
    worst = data.worst_rows(data.extreme_rows(frame), "wavelet", "psnr", directions, k=6)
    table = app.dataframe[0].value
    assert list(table["image_id"]) == list(worst["image_id"])
    assert np.allclose(table["gain"], worst["gain"])
    images = app.get("image")
    # wipe + error map + SSIM map, then LQ | restored | GT per row
    assert len(images) == 3 + 3 * len(worst)
    app.slider(key="fail_wipe").set_value(20).run()
    _clean(app)
    app.radio(key="fail_wipe_pair").set_value("LQ | restored").run()
    _clean(app)
    app.number_input(key="fail_k").set_value(2).run()
    _clean(app)
    assert len(app.dataframe[0].value) == 2


def test_failures_link_on_a_run_without_extreme_levels(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a run of mild levels only, the leaderboard's links open the worst images over all
    cells (not an empty "extreme levels" page), and an old extreme link says so."""
    grid = Grid(name="mild", degradations=["gaussian_noise"], severities=[2], seeds=[0])
    run_benchmark(root / "corpus", grid, ["identity"], tmp_path / "mild", progress=False)
    app = _app(monkeypatch, tmp_path / "mild")
    _clean(app)
    assert any("no extreme levels" in m.value for m in app.markdown)
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=120)
    app.query_params["cells"] = "extreme"
    app.run()
    app.switch_page("views/failures.py").run()
    _clean(app)
    assert "no cells at the extreme levels" in app.info[0].value
    assert app.selectbox[1].value == "all cells"
    assert len(app.dataframe[0].value) == 3  # the three images of the one cell


def test_page_failures_without_saved_images(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, root / "runs" / "b", page="failures")
    _clean(app)
    assert "recomputed here" in app.info[0].value
    assert len(app.get("image")) == 3 + 3 * 6  # tv recomputed in-process
    app.toggle(key="fail_recompute").set_value(False).run()
    _clean(app)


def test_page_compare(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, root / "runs" / "a", root / "runs" / "b", page="compare")
    _clean(app)
    a, b = app.selectbox(key="ab_a").value, app.selectbox(key="ab_b").value
    assert (a, b) == ("tv", "identity")
    combined = data.combine_runs(
        [data.load_run_data(root / "runs" / "a"), data.load_run_data(root / "runs" / "b")]
    )
    expected = paired_comparison(combined.frame, a, b, combined.metrics)
    overall = expected[expected["overall"] & (expected["metric"] == "psnr")].iloc[0]
    table = app.dataframe[0].value
    shown = table[(table["metric"] == "psnr") & (table["degradation"] == "all cells")].iloc[0]
    assert shown["a − b"] == pytest.approx(overall["mean_diff"])
    assert shown["ci_low"] == pytest.approx(overall["ci_low"])
    assert shown["p"] == pytest.approx(overall["p_value"])
    assert shown["W/T/L"] == f"{overall['wins']}/{overall['ties']}/{overall['losses']}"
    assert len(app.get("vega_lite_chart")) == 2
    assert len(app.get("image")) == 4  # LQ | A | B | GT of the chosen image
    app.selectbox(key="ab_cell").set_value(app.selectbox(key="ab_cell").options[-1]).run()
    _clean(app)


def test_page_curation(run_a: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, run_a, page="curation")
    _clean(app)
    values = {m.label: m.value for m in app.metric}
    assert (values["inputs"], values["kept"], values["rejected"]) == ("5", "3", "2")
    counts = app.dataframe[0].value.set_index("reason")["images"].to_dict()
    assert counts == {"exact duplicate": 1, "undecodable": 1}
    captions = " ".join(c.value for c in app.caption)
    assert "threshold min_side: short_side >= 32" in captions
    images = app.get("image")
    assert len(images) >= 3 + 1 + 2  # kept, the readable reject, the duplicate pair
    app.selectbox(key="cur_signal").set_value("sharpness").run()
    _clean(app)


def test_failed_rows_are_counted_and_listed(
    run_a: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_a, run)
    frame = pd.read_parquet(next((run / "results").glob("part-*.parquet")))
    broken = frame.head(2).assign(error="RuntimeError: out of memory", psnr=np.nan)
    # written as the runner writes parts (the declared schema; a bare to_parquet is foreign)
    ResultsStore(run).append(
        broken.to_dict("records"), metrics=json.loads(frame["metric_labels"].iloc[0])
    )
    app = _app(monkeypatch, run)
    _clean(app)
    assert "2 rows failed" in app.warning[0].value
    app.switch_page("views/run_info.py").run()
    _clean(app)
    errors = app.dataframe[-1].value
    assert list(errors["error"]) == ["RuntimeError: out of memory"] * 2


def test_page_run_info(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(monkeypatch, root / "runs" / "a", root / "runs" / "b", page="run_info")
    _clean(app)
    assert [h.value for h in app.header] == ["a", "b"]
    values = [(m.label, m.value) for m in app.metric]
    assert ("result rows", str(3 * 8 * 2)) in values
    assert ("result rows", str(3 * 8)) in values
    assert app.success[0].value == "No failed cells."


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_two_runs_and_on_a_folder_of_runs(
    root: Path, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(monkeypatch, root, page=page)  # root holds runs/a and runs/b
    _clean(app)
    runs = app.sidebar.multiselect(key="runs_chosen")
    assert len(runs.options) == 2 and len(runs.value) == 1
    runs.set_value(list(runs.options)).run()
    _clean(app)
    if page == "leaderboard":
        board = app.dataframe[0].value
        assert set(board["restorer"]) == {"identity", "wavelet", "tv"}


@pytest.mark.parametrize("page", PAGES)
def test_empty_damaged_and_missing_runs_explain(
    tmp_path: Path, run_a: Path, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    (empty / "results").mkdir(parents=True)
    (empty / "run.json").write_text("{}")
    app = _app(monkeypatch, empty, page=page)
    _clean(app)
    if page not in ("curation", "run_info"):
        assert "No results yet" in app.warning[0].value
    damaged = tmp_path / "damaged"
    shutil.copytree(run_a, damaged)
    (damaged / "results" / "part-99999999T999999-1-00000.parquet").write_bytes(b"not parquet")
    app = _app(monkeypatch, damaged, page=page)
    _clean(app)
    assert any("part-99999999T999999-1-00000.parquet" in w.value for w in app.warning)
    (damaged / "run.json").write_text("{ not json")
    app = _app(monkeypatch, damaged, page=page)
    _clean(app)
    assert any("run.json is unreadable" in w.value for w in app.warning)
    app = _app(monkeypatch, tmp_path / "missing", page=page)
    assert not app.exception
    assert "Run folder not found" in app.error[0].value
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    app = _app(monkeypatch, nothing, page=page)
    _clean(app)
    if page != "curation":
        assert "No run found" in app.warning[0].value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_dashboard_serves_several_runs(root: Path) -> None:
    port = _free_port()
    exe = Path(sys.executable).with_name("restorelab")
    runs = [str(root / "runs" / "a"), str(root / "runs" / "b")]
    command = [str(exe), "dashboard", *runs, "--port", str(port), "--address", "127.0.0.1"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
        start_new_session=True,  # stop the whole group: the CLI and the server it starts
    )
    try:
        deadline = time.time() + 60
        health = None
        while time.time() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as response:
                    health = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert health == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
            assert "<title>" in response.read().decode().lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


#: Modules the first page must not load: each costs 0.3–1.5 s of a cold start (torch through
#: the restorer/metric registries and the degradation zoo, scipy through the paired tests).
HEAVY = (
    "torch",
    "scipy",
    "skimage",
    "restorelab.degradations",
    "restorelab.benchmark.metrics",
    "restorelab.benchmark.restorers",
    "restorelab.benchmark.runner",
)


def test_first_page_imports_nothing_heavy(run_a: Path) -> None:
    """A fresh process that draws the leaderboard loads none of :data:`HEAVY` (they are
    imported by the pages and functions that need them), so a cold start stays fast."""
    script = f"""
import os, sys, json
os.environ["RESTORELAB_RUN_DIRS"] = {str(run_a)!r}
import restorelab.benchmark.stats, restorelab.dashboard.data, restorelab.dashboard.ui
after_import = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "scipy", "skimage")
                      or m.startswith(("restorelab.degradations", "restorelab.benchmark.")))
from streamlit.testing.v1 import AppTest
app = AppTest.from_file({str(APP)!r}, default_timeout=120).run()
assert not app.exception and not app.error, [e.value for e in [*app.exception, *app.error]]
assert app.title[0].value == "Leaderboard" and len(app.dataframe) == {len(METRICS)}
print(json.dumps({{"import": after_import, "page": sorted(sys.modules)}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "RESTORELAB_RUN_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["import"] == ["restorelab.benchmark.stats"], loaded["import"]
    heavy = [m for m in loaded["page"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert not heavy, f"the first page imported {heavy[:8]}"


def test_benchmark_package_names_load_on_first_use() -> None:
    """``restorelab.benchmark`` exports its names lazily: each resolves to its submodule's."""
    import restorelab.benchmark as benchmark
    from restorelab.benchmark.restorers import create_restorer
    from restorelab.benchmark.runner import run_benchmark as runner_run_benchmark

    assert benchmark.create_restorer is create_restorer
    assert benchmark.run_benchmark is runner_run_benchmark
    assert sorted(benchmark.__all__) == sorted(benchmark._LAZY)
    assert set(benchmark.__all__) <= set(dir(benchmark))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        benchmark.nope  # noqa: B018


def test_warm_up_fills_the_first_pages_caches(run_a: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the server computes before the first visit (``ui.warm_up``) is what the
    leaderboard reads: its first run then loads and bootstraps nothing again."""
    import streamlit as st

    from restorelab.dashboard import ui

    st.cache_data.clear()
    st.cache_resource.clear()
    calls = {"load_run_data": 0, "leaderboard_tables": 0}
    for name in calls:
        real = getattr(data, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(data, name, counted)
    ui.warm_up([str(run_a)])
    assert calls == {"load_run_data": 1, "leaderboard_tables": 1}
    app = _app(monkeypatch, run_a)
    _clean(app)
    assert calls == {"load_run_data": 1, "leaderboard_tables": 1}
    assert len(app.dataframe) == len(METRICS)
    st.cache_data.clear()
    st.cache_resource.clear()
