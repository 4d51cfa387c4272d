"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright.

The test serves ``restorelab dashboard`` on two small runs (one with saved images), opens every
page by its URL, fails on any exception element or error text, clicks one control per page and
saves a screenshot of each under the test's temporary folder. Skipped where Debian's chromium
is not installed (``.ci/run`` installs it); ``playwright install`` is never used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from restorelab.benchmark import run_benchmark
from restorelab.degradations.grid import Grid

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
     if p and Path(p).is_file()),
    None,
)  # fmt: skip
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")

#: Text that must never appear on a page.
ERROR_TEXT = ("Traceback", "could not be drawn", "Error:", "Exception")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("dashboard did not start")


def _settle(page, timeout_ms: int = 90_000) -> None:
    """Wait until the script run finished (no "Running…/Stop" status) and stays finished."""
    status = "() => document.querySelector('[data-testid=\"stStatusWidget\"]')?.innerText || ''"
    quiet, waited = 0, 0
    while quiet < 4 and waited < timeout_ms:
        busy = "Stop" in page.evaluate(status) or "Running" in page.evaluate(status)
        quiet = 0 if busy else quiet + 1
        page.wait_for_timeout(250)
        waited += 250
    page.wait_for_timeout(300)


def _check(page, name: str, folder: Path) -> None:
    """No exception element, no error alert, no error text; then a screenshot."""
    page.locator("[data-testid='stMain']").first.wait_for(timeout=60_000)
    _settle(page)
    assert page.locator("[data-testid='stException']").count() == 0, name
    alerts = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
    assert not alerts, (name, alerts)
    text = page.locator("[data-testid='stMain']").first.inner_text()
    found = [t for t in ERROR_TEXT if t in text]
    assert not found, (name, found)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_every_page_in_headless_chromium(photo_folder: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    grid = Grid(
        name="browser",
        degradations=["gaussian_blur", "gaussian_noise"],
        severities=[2, 6],
        seeds=[0],
        chains=["gaussian_blur:2+gaussian_noise", "gaussian_blur:6+gaussian_noise"],
    )
    run_benchmark(
        photo_folder, grid, ["identity", "wavelet"], tmp_path / "a", save_images=True,
        progress=False,
    )  # fmt: skip
    run_benchmark(photo_folder, grid, ["tv"], tmp_path / "b", progress=False)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    port = _free_port()
    exe = Path(sys.executable).with_name("restorelab")
    command = [str(exe), "dashboard", str(tmp_path / "a"), str(tmp_path / "b")]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--address", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
        start_new_session=True,  # stop the whole group: the CLI and the server it starts
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(port, proc)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            external = []
            page.on(
                "request",
                lambda r: (
                    external.append(r.url)
                    if not r.url.startswith((base, "data:", "blob:"))
                    else None
                ),
            )

            # Leaderboard (the default page, "/"): tables drawn; its link reaches the worst
            # images at the extreme levels in one click
            page.goto(base + "/")
            page.get_by_role("heading", name="Leaderboard").wait_for(timeout=60_000)
            page.locator("[data-testid='stDataFrame'] canvas").first.wait_for(timeout=60_000)
            _check(page, "leaderboard", shots)
            # a local, offline tool: no "Deploy" button (to an online service) in the toolbar
            assert page.locator("[data-testid='stAppDeployButton']").count() == 0
            assert page.get_by_role("button", name="Deploy").count() == 0
            page.get_by_text("Worst images of wavelet →").click()
            page.get_by_role("heading", name="Failure analysis").wait_for(timeout=60_000)
            _check(page, "leaderboard_to_failures", shots)
            assert "/failures" in page.url
            images = page.locator("[data-testid='stImage'] img")
            assert images.count() >= 3 + 3 * 6  # wipe, maps, LQ | restored | GT per row

            pages = {
                "curves": ("Severity curves", lambda: page.get_by_text("Confidence bands").click()),
                "breakdown": ("Breakdown map", lambda: page.get_by_text("Cells").first.click()),
                "failures": (
                    "Failure analysis",
                    lambda: page.get_by_text("LQ | restored", exact=True).click(),
                ),
                "compare": ("A vs B", lambda: page.get_by_text("Open an image").click()),
                "curation": (
                    "Curation report",
                    lambda: page.get_by_label("Curated folder").press("Enter"),
                ),
                "run": (
                    "Run info",
                    lambda: page.get_by_role("tab", name="Versions and hardware").first.click(),
                ),
            }
            for url, (title, click) in pages.items():
                page.goto(f"{base}/{url}")
                page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
                _check(page, url, shots)
                click()
                _check(page, f"{url}_clicked", shots)
            # the breakdown map's link opens the worst images of its hardest broken cell
            page.goto(f"{base}/breakdown")
            page.get_by_role("heading", name="Breakdown map").wait_for(timeout=60_000)
            _settle(page)
            page.get_by_text("in this cell →").click()
            page.get_by_role("heading", name="Failure analysis").wait_for(timeout=60_000)
            _check(page, "breakdown_to_failures", shots)
            assert "cell=" in page.url
            charts = page.locator("[data-testid*='VegaLiteChart']")
            page.goto(f"{base}/curves")
            page.get_by_role("heading", name="Severity curves").wait_for(timeout=60_000)
            _settle(page)
            assert charts.count() == 4
            browser.close()
        assert not external, f"the app fetched from outside: {external[:3]}"
        for name in ("leaderboard", "curves", "breakdown", "failures", "compare", "run"):
            assert (shots / f"{name}.png").stat().st_size > 10_000, name
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
