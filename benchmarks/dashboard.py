"""Dashboard at scale: page load and filter-change times on a run of 100,000 rows.

Builds a synthetic but well-formed run folder (by default 100,000 result rows: 500 images ×
40 grid cells of the packaged ``blur-noise`` kind × 5 restorers, written as 20 Parquet parts
the way the runner flushes them; 2,000 restored images with thumbnails saved under
``images/``; a 500-image corpus of 64-px PNGs), then drives every dashboard page with
Streamlit's ``AppTest`` (the page scripts run exactly as under ``streamlit run``, minus the
websocket and the browser's drawing) and reports wall times:

- *first load (cold process)*: the first page of a fresh process, imports included;
- *first load*: a page of a run not seen before, in a process whose imports are done (what a
  user waits for when the dashboard server is already up);
- *filter change*: the leaderboard re-run after narrowing the degradation filter, and other
  controls (metric, restorer) on the other pages;
- *again*: the same page re-run with nothing changed (cached tables);
- *real server* (when Debian's ``chromium`` and Playwright are installed; ``--no-server``
  skips it): ``restorelab dashboard RUN --port N`` started as a user starts it, its
  ``/_stcore/health`` polled every 20 ms, then the first page opened in headless Chromium
  (launched beforehand, as a user's browser is already open) and timed until the leaderboard
  is fully drawn (its tables' canvases, the last element of the page, and no "Running"
  status): server start → health, health → page drawn, and the sum, the cold start a user
  waits for. Then a reload of the page (a second session on the warm server).

Times are the median of ``--repeat`` fresh sessions (each with emptied Streamlit caches).
The process is pinned to two CPU cores (``os.sched_setaffinity``) and numeric libraries to
two threads, whatever the machine has. Goals: first load ≤ 3 s, filter change ≤ 1 s.

Run::

    .venv/bin/python benchmarks/dashboard.py [--rows 100000] [--images 2000] [--repeat 3]
        [--keep DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

RESTORERS = ["identity", "wavelet", "tv", "nlm", "sdxl_lora"]
LEVELS = [2, 4, 6, 8, 10]


def _cells() -> list[tuple[str, int]]:
    """40 cells: blur alone, noise alone, and blur k + noise for k in 2..10 (step 2), 5 levels,
    plus 5 JPEG levels (a third op outside the crossing)."""
    cells = [("gaussian_blur", s) for s in LEVELS] + [("gaussian_noise", s) for s in LEVELS]
    cells += [(f"gaussian_blur:{k}+gaussian_noise", s) for k in LEVELS for s in LEVELS]
    cells += [("jpeg_compression", s) for s in LEVELS]
    return cells


def build_run(folder: Path, rows: int, images_saved: int, seed: int = 0) -> Path:
    """Write the synthetic run (and its corpus) under ``folder``; returns the run folder."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from restorelab.results import RESULTS_SCHEMA

    rng = np.random.default_rng(seed)
    cells = _cells()
    n_images = max(1, rows // (len(cells) * len(RESTORERS)))
    corpus = folder / "corpus"
    (corpus / "images").mkdir(parents=True, exist_ok=True)
    ids = [f"img{i:05d}" for i in range(n_images)]
    base = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    with open(corpus / "metadata.jsonl", "w", encoding="utf-8") as handle:
        for i, image_id in enumerate(ids):
            image = np.roll(base, i, axis=1)
            Image.fromarray(image).save(corpus / "images" / f"{image_id}.png")
            handle.write(json.dumps({"file_name": f"images/{image_id}.png", "text": ""}) + "\n")
    run = folder / "run"
    (run / "results").mkdir(parents=True, exist_ok=True)
    keys = pd.MultiIndex.from_product(
        [ids, range(len(cells)), RESTORERS], names=["image_id", "cell", "restorer"]
    ).to_frame(index=False)
    keys = keys.iloc[:rows]
    degradation = np.array([c[0] for c in cells], dtype=object)[keys["cell"]]
    severity = np.array([c[1] for c in cells])[keys["cell"]]
    hardness = severity / 10.0 + np.array(["+" in c[0] for c in cells])[keys["cell"]] * 0.3
    input_psnr = 30.0 - 15.0 * hardness + rng.normal(0, 1.0, len(keys))
    skill = keys["restorer"].map(dict(zip(RESTORERS, [0.0, 2.0, 2.5, 1.5, 4.0], strict=True)))
    psnr = input_psnr + skill * (1.2 - hardness) + rng.normal(0, 0.5, len(keys))
    input_ssim = np.clip(0.9 - 0.6 * hardness + rng.normal(0, 0.03, len(keys)), 0, 1)
    ssim = np.clip(input_ssim + 0.05 * skill * (1.2 - hardness), 0, 1)
    frame = pd.DataFrame(
        {
            "image_id": keys["image_id"],
            "degradation": degradation,
            "severity": severity.astype(int),
            "seed": 0,
            "restorer": keys["restorer"],
            "config_hash": keys["restorer"].map(lambda r: f"{abs(hash(r)) % 10**12:012d}"),
            "restorer_config": keys["restorer"].map(lambda r: json.dumps({"name": r})),
            "device": "cpu",
            "degradation_params": "{}",
            "height": 64,
            "width": 64,
            "seconds": rng.uniform(0.01, 2.0, len(keys)),
            "peak_rss_mb": 900.0,
            "peak_rss_delta_mb": 50.0,
            "cuda_peak_mb": np.nan,
            "image_hash": keys["image_id"],
            "restored_file": "",
            "thumb_file": "",
            "degraded_file": "",
            "degraded_thumb_file": "",
            "psnr": psnr,
            "ssim": ssim,
            "metric_labels": json.dumps(["psnr", "ssim"]),
            "error": "",
            "input_psnr": input_psnr,
            "input_ssim": input_ssim,
        }
    )
    # saved restored images: the first ``images_saved`` rows at the extreme levels
    extreme = np.flatnonzero(severity >= 6)[:images_saved]
    for index in extreme:
        row = frame.iloc[index]
        rel = Path("images") / row["restorer"] / f"c{keys['cell'].iloc[index]}" / row["image_id"]
        (run / rel.parent / "thumbs").mkdir(parents=True, exist_ok=True)
        image = np.roll(base, int(index) % 64, axis=0)
        Image.fromarray(image).save(run / rel.with_suffix(".png"))
        Image.fromarray(image[::2, ::2]).save(run / rel.parent / "thumbs" / f"{rel.name}.jpg")
        frame.iat[index, frame.columns.get_loc("restored_file")] = rel.with_suffix(
            ".png"
        ).as_posix()
        thumb = (rel.parent / "thumbs" / f"{rel.name}.jpg").as_posix()
        frame.iat[index, frame.columns.get_loc("thumb_file")] = thumb
    # parts exactly as the runner's store writes them: its declared, tagged Arrow schema
    schema = RESULTS_SCHEMA.arrow(["psnr", "ssim"])
    for part, chunk in enumerate(np.array_split(np.arange(len(frame)), 20)):
        table = pa.Table.from_pandas(frame.iloc[chunk], schema=schema, preserve_index=False)
        pq.write_table(table, run / "results" / f"part-20260101T000000-1-{part:05d}.parquet")
    info = {
        "format": "restorelab-run/1",
        "corpus": str(corpus.resolve()),
        "grid": {"name": "synthetic-blur-noise", "degradations": [], "severities": LEVELS},
        "restorers": [{"label": r, "config": {"name": r}} for r in RESTORERS],
        "metrics": {
            "psnr": {"convention": "PSNR on RGB", "higher_is_better": True},
            "ssim": {"convention": "SSIM on RGB", "higher_is_better": True},
        },
    }
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return run


APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def _timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _check(app, what: str) -> None:
    problems = [e.value for e in app.exception] + [e.value for e in app.error]
    if problems:
        raise RuntimeError(f"{what}: {problems[0]}")


def session(run: Path) -> dict[str, float]:
    """One fresh session over every page; wall seconds per step."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    os.environ["RESTORELAB_RUN_DIRS"] = str(run)
    app = AppTest.from_file(str(APP), default_timeout=300)
    out = {}
    out["leaderboard: first load"] = _timed(app.run)
    _check(app, "leaderboard")
    out["leaderboard: again"] = _timed(app.run)
    picker = app.sidebar.multiselect(key="filter_degradations")
    out["leaderboard: filter change"] = _timed(
        lambda: picker.set_value(["gaussian_noise", "gaussian_blur:10+gaussian_noise"]).run()
    )
    _check(app, "leaderboard filter")
    picker = app.sidebar.multiselect(key="filter_degradations")
    out["leaderboard: filter back to all"] = _timed(
        lambda: picker.set_value(list(picker.options)).run()
    )
    steps = {
        "curves": lambda: app.selectbox(key="curves_metric").set_value("ssim").run(),
        "breakdown": lambda: app.selectbox(key="map_restorer").set_value("tv").run(),
        "failures": lambda: app.selectbox(key="fail_metric").set_value("ssim").run(),
        "compare": lambda: app.selectbox(key="ab_metric").set_value("ssim").run(),
        "run_info": lambda: app.run(),
    }
    for page, control in steps.items():
        out[f"{page}: first load"] = _timed(lambda p=page: app.switch_page(f"views/{p}.py").run())
        _check(app, page)
        out[f"{page}: control change"] = _timed(control)
        _check(app, f"{page} control")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the run here (and keep it)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--no-server", action="store_true", help="skip the real server + Chromium measurement"
    )
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 2:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    start = time.perf_counter()
    run = build_run(folder, args.rows, args.images)
    print(f"built {run} in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    import streamlit.testing.v1  # noqa: F401 - the server has imported Streamlit before any page

    cold = _timed(lambda: session_first_only(run))
    sessions = [session(run) for _ in range(args.repeat)]  # each empties the caches first
    figures = {"first load (cold process, imports included)": cold}
    for key in sessions[0]:
        figures[key] = statistics.median(s[key] for s in sessions)
    if not args.no_server:
        served = server_sessions(run, args.repeat)
        if served:
            for key in served[0]:
                figures[key] = statistics.median(s[key] for s in served)
    import pandas as pd

    rows = len(pd.read_parquet(run / "results"))
    saved = sum(1 for _ in (run / "images").rglob("*.png"))
    print(
        f"{rows} rows, {saved} saved images; {cores} CPU cores; Python {platform.python_version()}"
    )
    for key, value in figures.items():
        print(f"{key:<48} {value:6.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "images": saved, "cores": cores, **figures}))
    return 0


def session_first_only(run: Path) -> None:
    """The first page of a fresh process (imports of the page modules included)."""
    from streamlit.testing.v1 import AppTest

    os.environ["RESTORELAB_RUN_DIRS"] = str(run)
    app = AppTest.from_file(str(APP), default_timeout=300)
    app.run()
    _check(app, "cold leaderboard")


CHROMIUM_PATHS = ("/usr/bin/chromium", "chromium", "chromium-browser")

#: True once the leaderboard is fully drawn: its tables' canvases are there, the page links
#: after them (the last element the script writes) too, and the run status is idle.
_DRAWN = """(tables) => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return false;
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  if (status && /Running|Stop/.test(status.innerText)) return false;
  const canvases = main.querySelectorAll('[data-testid="stDataFrame"] canvas').length;
  return canvases >= tables && main.innerText.includes('Worst images of');
}"""


def _chromium() -> str | None:
    import shutil

    for name in CHROMIUM_PATHS:
        path = name if name.startswith("/") else shutil.which(name)
        if path and Path(path).is_file():
            return path
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_sessions(run: Path, repeat: int) -> list[dict[str, float]]:
    """``repeat`` cold starts of the real server, each timed to the first page drawn in
    headless Chromium (Debian's package; never ``playwright install``); [] when unavailable."""
    import signal
    import subprocess
    import urllib.request

    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        print("real server: skipped (Debian chromium or playwright missing)", file=sys.stderr)
        return []
    exe = Path(sys.executable).with_name("restorelab")
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop("RESTORELAB_RUN_DIRS", None)
    out = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
        )
        for _ in range(repeat):
            port = _free_port()
            start = time.perf_counter()
            proc = subprocess.Popen(
                [str(exe), "dashboard", str(run), "--port", str(port), "--address", "127.0.0.1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # stop the CLI and the server it became as one group
            )
            try:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"the dashboard exited with {proc.returncode}")
                    try:
                        url = f"http://127.0.0.1:{port}/_stcore/health"
                        with urllib.request.urlopen(url, timeout=1):
                            break
                    except OSError:
                        time.sleep(0.02)
                healthy = time.perf_counter()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function(_DRAWN, arg=2, polling="raf", timeout=120_000)
                drawn = time.perf_counter()
                errors = page.locator(
                    "[data-testid='stException'], [data-testid='stAlertContentError']"
                )
                if errors.count():
                    raise RuntimeError(f"real server: {errors.first.inner_text()[:300]}")
                again = time.perf_counter()
                page.reload()
                page.wait_for_function(_DRAWN, arg=2, polling="raf", timeout=120_000)
                reloaded = time.perf_counter()
                page.close()
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            out.append(
                {
                    "real server: start → health ok": healthy - start,
                    "real server: health ok → leaderboard drawn": drawn - healthy,
                    "real server: start → leaderboard drawn (cold)": drawn - start,
                    "real server: reload (new session, warm server)": reloaded - again,
                }
            )
        browser.close()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
