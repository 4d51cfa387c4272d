"""The dashboard: its table functions, the Streamlit app (AppTest) and the served page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from restorelab.benchmark import run_benchmark
from restorelab.curation import CurationConfig, curate
from restorelab.dashboard.data import (
    INPUT_LABEL,
    curation_report,
    filter_rows,
    leaderboard,
    load_run,
    severity_curves,
)
from restorelab.degradations.grid import load_grid

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, photos: dict) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("dash")
    src = root / "src"
    src.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(photos[name]).save(src / f"{name}.png")
    (src / "broken.jpg").write_bytes(b"broken")
    small = {"min_side": 32, "max_noise_sigma": None}  # 96-px photos: texture reads as noise
    curate([src], root / "corpus", CurationConfig(filters=small, target=None), progress=False)
    grid = root / "g.yaml"
    grid.write_text(
        "name: g\ndegradations: [gaussian_noise, jpeg_compression]\nseverities: [1, 4]\n",
        encoding="utf-8",
    )
    run_benchmark(
        root / "corpus",
        load_grid(grid),
        ["identity", "wavelet"],
        root / "run",
        metrics=["psnr", "ssim", "psnr:crop_border=4"],  # a label with ':' and '='
        progress=False,
    )
    return root / "run"


def test_leaderboard_and_curves(run_dir: Path) -> None:
    frame, info = load_run(run_dir)
    board = leaderboard(frame)
    assert list(board["restorer"]) == ["wavelet", "identity"]
    assert board.set_index("restorer").loc["identity", "Δpsnr"] == pytest.approx(0.0)
    assert (board["n"] == 8).all()
    curves = severity_curves(frame, "psnr")
    assert set(curves) == {"gaussian_noise", "jpeg_compression"}
    assert list(curves["gaussian_noise"].index) == [1, 4]
    assert INPUT_LABEL in curves["gaussian_noise"].columns
    only = filter_rows(frame, ["jpeg_compression"], [4])
    assert set(only["degradation"]) == {"jpeg_compression"} and set(only["severity"]) == {4}
    summary, rejected = curation_report(info)
    assert summary["rejected"] == 1 and len(rejected) == 1


def test_streamlit_app_renders_without_exception(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RESTORELAB_RUN_DIR", str(run_dir))
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not app.exception
    assert app.title[0].value.startswith("restorelab")
    tables = app.dataframe
    assert len(tables) >= 2  # leaderboard + rejected files
    board = tables[0].value
    assert set(board["restorer"]) == {"wavelet", "identity"}
    # narrowing the filter re-renders
    app.sidebar.multiselect[0].set_value(["gaussian_noise"]).run()
    assert not app.exception

    # every metric draws its curves, labelled ones included
    def metric_box():
        return next(box for box in app.selectbox if box.label == "Metric for curves")

    assert "psnr:crop_border=4" in metric_box().options
    for option in list(metric_box().options):
        metric_box().set_value(option).run()
        assert not app.exception, option


def test_streamlit_app_without_a_run_dir_explains(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RESTORELAB_RUN_DIR", str(tmp_path / "missing"))
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not app.exception
    assert "Run folder not found" in app.error[0].value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_dashboard_serves_a_page(run_dir: Path) -> None:
    port = _free_port()
    exe = Path(sys.executable).with_name("restorelab")
    command = [str(exe), "dashboard", str(run_dir), "--port", str(port), "--address", "127.0.0.1"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
    )
    try:
        deadline = time.time() + 60
        health = None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=2
                ) as response:
                    health = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert health == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200
            assert "<title>" in response.read().decode().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
