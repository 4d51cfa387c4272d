"""The dashboard in a real browser: headless Chromium driven by Playwright.

Skipped where Debian's chromium is not installed (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from restorelab.benchmark import run_benchmark
from restorelab.degradations.grid import Grid

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("dashboard did not start")


def test_dashboard_shows_leaderboard_and_curves(photo_folder: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    grid = Grid(name="browser", degradations=["gaussian_noise"], severities=[1, 2], seeds=[0])
    run_benchmark(photo_folder, grid, ["identity", "tv"], tmp_path / "run", progress=False)
    port = _free_port()
    exe = Path(sys.executable).with_name("restorelab")
    proc = subprocess.Popen(
        [
            str(exe),
            "dashboard",
            str(tmp_path / "run"),
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
    )
    try:
        _wait_healthy(port)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.get_by_text("restorelab — restorer benchmark").wait_for(timeout=60_000)
            page.get_by_text("Mean over the selected cells").wait_for(timeout=60_000)
            # the leaderboard table is drawn (glide data grid renders into a canvas)
            page.locator("[data-testid='stDataFrame'] canvas").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "leaderboard.png"))
            page.get_by_role("tab", name="Metric vs severity").click()
            page.get_by_text("psnr vs severity").wait_for(timeout=30_000)
            chart = page.locator(
                "[data-testid*='VegaLiteChart'] canvas, [data-testid*='VegaLiteChart'] svg"
            )
            chart.first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "curves.png"))
            assert not page.get_by_text("Traceback").count()
            browser.close()
        assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    finally:
        proc.terminate()
        proc.wait(timeout=20)
