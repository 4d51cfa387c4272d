"""Fair comparisons and visible failures (issue 16): statistics on common cells, coverage and
failures, `score` reasons and exit codes, calibration tolerance and repeats, the dashboard
process, readable reports in four formats, short external-restorer labels and `list`."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from tests_support import resized

from restorelab.app.cli import main
from restorelab.benchmark import create_restorer, run_benchmark
from restorelab.benchmark.calibration import (
    RepeatedLevelError,
    interpolate_level,
    match_levels,
    matched_grid,
)
from restorelab.benchmark.restorers.command import CommandError
from restorelab.benchmark.stats import (
    INPUT_LABEL,
    StatsSettings,
    build_report,
    common_cells,
    coverage,
    format_report,
    leaderboard,
    paired_comparison,
    severity_curves,
    summary_table,
    unfinished_restorers,
)
from restorelab.degradations.grid import Grid
from restorelab.results import ResultsStore, write_json_atomic

PY = sys.executable


def results(
    scores: dict[str, list[float]],
    inputs: list[float],
    *,
    severities: tuple[int, ...] = (1,),
    degradation: str = "gaussian_blur",
    failed: dict[str, set[str]] | None = None,
) -> pd.DataFrame:
    """A results table: ``scores[restorer][image]`` as psnr (the same at every severity,
    minus the severity), ``inputs[image]`` as input_psnr; ``failed[restorer]`` image ids fail."""
    rows = []
    for restorer, values in scores.items():
        for severity in severities:
            for i, (value, given) in enumerate(zip(values, inputs, strict=True)):
                image = f"img{i}"
                bad = image in (failed or {}).get(restorer, set())
                rows.append(
                    {
                        "image_id": image,
                        "degradation": degradation,
                        "severity": severity,
                        "seed": 0,
                        "restorer": restorer,
                        "config_hash": restorer[:6],
                        "psnr": np.nan if bad else value - severity,
                        "input_psnr": given - severity,
                        "seconds": 0.1,
                        "error": "CommandError: exited with code 1" if bad else "",
                    }
                )
    return pd.DataFrame(rows)


# --- 1. common support -----------------------------------------------------------------------
def test_a_restorer_failing_on_the_hardest_image_is_compared_on_common_cells() -> None:
    # img3 is the hardest photo; "ext" fails on it and is 0.14 dB worse than identity elsewhere
    inputs = [30.0, 28.0, 26.0, 16.0]
    frame = results(
        {
            "identity": inputs,
            "ext": [v - 0.14 for v in inputs],
            "dead": inputs,
        },
        inputs,
        failed={"ext": {"img3"}, "dead": {"img0", "img1", "img2", "img3"}},
    )
    assert len(common_cells(frame)) == 3  # dead is left out, ext lacks img3
    table = summary_table(frame, "psnr", n_boot=200).set_index("restorer")
    assert set(table.index) == {"identity", "ext"}
    assert table.loc["identity", "mean"] == pytest.approx(27.0)  # img0-2, severity 1
    assert table.loc["ext", "mean"] == pytest.approx(27.0 - 0.14)
    assert np.allclose(table["input_mean"], 27.0)  # the input on the same cells
    assert (table["n"] == 3).all() and (table["support"] == "common cells").all()
    # on its own cells ext would look better than identity: only when asked, and labelled
    own = summary_table(frame, "psnr", n_boot=200, support="own").set_index("restorer")
    assert own.loc["ext", "mean"] > own.loc["identity", "mean"]  # the unfair ranking
    assert (own["support"] == "own cells").all()

    board = leaderboard(frame, "psnr", settings=StatsSettings(n_boot=200))
    assert list(board["restorer"]) == ["identity", INPUT_LABEL, "ext"]
    row = board.set_index("restorer").loc["ext"]
    assert row["delta"] == pytest.approx(-0.14) and (row["finished"], row["planned"]) == (3, 4)

    cover = coverage(frame).set_index("restorer")
    assert cover.loc["ext", ["finished", "failed", "planned"]].tolist() == [3, 1, 4]
    assert cover.loc["ext", "reasons"] == "1× CommandError: exited with code 1"
    assert cover.loc["dead", "status"] == "no finished cell"
    dead = unfinished_restorers(frame)
    assert list(dead["restorer"]) == ["dead"] and dead.iloc[0]["cells"] == 4

    text = format_report(build_report(frame, settings=StatsSettings(n_boot=200)))
    assert "dead finished no cell and is left out" in text
    assert "ext: 1 cell (1 image) · CommandError: exited with code 1" in text
    assert "support: 3 of 4 cells (3 images) finished by all 2 compared restorers" in text


def test_report_cli_on_a_run_with_a_failing_external_restorer(
    photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    # fails on the 96 px wide image only (astronaut is square: 96×96)
    script = tmp_path / "picky.py"
    script.write_text(
        "import sys\nfrom PIL import Image\nim = Image.open(sys.argv[1])\n"
        "if im.size == (96, 96):\n    sys.exit('cannot handle this one')\nim.save(sys.argv[2])\n",
        encoding="utf-8",
    )
    run = tmp_path / "run"
    run_benchmark(
        photo_folder,
        Grid(name="g", degradations=["gaussian_noise"], severities=[1, 3]),
        ["identity", "tv", f"cmd[name=picky]:{PY} {script} {{in}} {{out}}"],
        run,
        progress=False,
    )
    result = CliRunner().invoke(main, ["report", str(run), "--n-boot", "100", "--vs", "tv",
                                       "picky"])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "picky: 2 cells (1 image) · CommandError" in text
    assert "support: 4 of 6 cells (2 images) finished by all 3 compared restorers" in text
    assert "== tv vs picky" in text and max(map(len, text.splitlines())) <= 100
    assert "note: 2 images: p cannot go below 0.5" in text


# --- 2. score: reasons, counts, exit code ----------------------------------------------------
def test_score_folders_names_each_failed_pair_and_exits_non_zero(
    photos: dict, tmp_path: Path
) -> None:
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(ref / f"{name}.png")
    Image.fromarray(photos["astronaut"]).save(dist / "astronaut.png")
    Image.fromarray(photos["coffee"][:40, :40]).save(dist / "coffee.png")  # other size
    (dist / "chelsea.png").write_bytes(b"not a png")
    runner = CliRunner()
    out = runner.invoke(main, ["score", str(ref), str(dist), "--json"])
    assert out.exit_code == 3
    data = json.loads(out.stdout)
    assert data["n"] == 1 and data["failed"] == 2
    assert set(data["errors"]) == {"coffee", "chelsea"}
    assert "not a recognised image format" in data["errors"]["chelsea"]
    assert data["mean"]["ssim"] == pytest.approx(1.0)  # the one scored pair only
    table = runner.invoke(main, ["score", str(ref), str(dist)])
    assert table.exit_code == 3
    assert "failed: ValueError" in table.stdout and "over 1 scored pair" in table.stdout
    assert "2 of 3 pairs could not be scored" in table.stderr


# --- 3. calibration --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_scenes() -> list[np.ndarray]:
    from skimage import data

    return [resized(getattr(data, n)(), 64) for n in ("astronaut", "coffee")]


def test_mild_targets_reachable_toward_the_identity_within_tolerance(small_scenes: list) -> None:
    assert interpolate_level("gaussian_blur", 0.5) == 0.5  # identity σ = 0 → level 1 σ = 1
    assert interpolate_level("shot_noise", 0.5) == 120  # 1/photons halfway to 1/60
    assert interpolate_level("pixelate", 0.0) == 1.0
    for name in ("gaussian_blur", "shot_noise", "gaussian_noise"):
        (found,) = match_levels(small_scenes, name, [34.0])
        assert found.reachable and abs(found.psnr - 34.0) <= 0.25 and found.severity < 1


def test_a_matched_grid_never_repeats_a_level(small_scenes: list, tmp_path: Path) -> None:
    grid = Grid(name="g", degradations=["gaussian_blur", "defocus_blur"], severities=[1])
    # defocus blur is a step function of its radius: two close targets land on one level
    with pytest.raises(RepeatedLevelError, match=r"defocus_blur: severity 2 = severity 1"):
        matched_grid(small_scenes, grid, [26.6, 26.4], progress=False)
    new, table = matched_grid(small_scenes, grid, [26.6, 26.4], on_repeat="drop", progress=False)
    assert new.degradations == ["gaussian_blur"] and "dropped" in new.description
    assert not table.set_index("degradation").loc["defocus_blur", "in_grid"].any()
    blur = table[table["degradation"] == "gaussian_blur"]
    assert blur["level"].nunique() == 2 and blur["reachable"].all()
    # a missed target names the achievable neighbours
    missed = table[~table["reachable"]]
    assert len(missed) == 2  # defocus: from no change straight to ~25 dB at radius 1
    assert all("jumps from" in note for note in missed["note"])
    assert (missed["milder_psnr"] > missed["target_psnr"]).all()
    assert (missed["harsher_psnr"] < missed["target_psnr"]).all()

    cli = CliRunner().invoke(
        main,
        ["degrade", "calibrate", "mini", "--corpus", str(tmp_path), "--matched", "x"],
    )
    assert cli.exit_code == 2 and "not a number: 'x'" in cli.output


def test_cli_calibrate_refuses_repeats_and_drops_on_request(
    photo_folder: Path, tmp_path: Path
) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\ndegradations: [defocus_blur, gaussian_noise]\nseverities: [1]\n")
    args = ["degrade", "calibrate", str(grid), "--corpus", str(photo_folder), "--out",
            str(tmp_path / "cal"), "--matched", "26.6,26.4", "--max-side", "64"]  # fmt: skip
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "would repeat levels" in refused.output
    assert (tmp_path / "cal" / "g-matched.csv").is_file()  # the matching table is kept
    dropped = CliRunner().invoke(main, [*args, "--on-repeat", "drop"])
    assert dropped.exit_code == 0, dropped.output
    assert "left out of the matched grid (they would repeat a level): defocus_blur" in (
        dropped.output
    )


# --- 5. dashboard process --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("mode", ["exec", "forward"])
def test_one_sigterm_to_restorelab_dashboard_closes_the_port(tmp_path: Path, mode: str) -> None:
    port = _free_port()
    if mode == "exec":  # the CLI: the restorelab process becomes the Streamlit server
        exe = Path(sys.executable).with_name("restorelab")
        command = [str(exe), "dashboard", str(tmp_path), "--port", str(port)]
        command += ["--address", "127.0.0.1"]
    else:  # the portable path: Streamlit as a child, signals forwarded
        code = (
            "import sys; from restorelab.app.serve import serve; "
            f"sys.exit(serve({str(tmp_path)!r}, {port}, '127.0.0.1', replace=False))"
        )
        command = [PY, "-c", code]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.read().decode() == "ok":
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the dashboard did not start")
        proc.send_signal(signal.SIGTERM)  # one signal, to the restorelab process only
        proc.wait(timeout=30)
        deadline = time.time() + 10
        while _port_open(port) and time.time() < deadline:
            time.sleep(0.2)
        assert not _port_open(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- 6. reports ------------------------------------------------------------------------------
def _run_folder(tmp_path: Path, frame: pd.DataFrame, info: dict) -> Path:
    run = tmp_path / "run"
    ResultsStore(run).append(frame.to_dict("records"))
    write_json_atomic(run / "run.json", info)
    return run


def _wide_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    inputs = list(rng.normal(28, 2, size=8))
    long_label = f"cmd:{PY} /some/where/very/long/path/to/restore.py --strength 3 {{in}} {{out}}"
    return results(
        {"identity": inputs, "tv": [v + 1.5 for v in inputs], long_label: [v + 1 for v in inputs]},
        inputs,
        severities=tuple(range(1, 11)),
    )


def test_report_formats_parse_back_and_text_fits_100_columns(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, _wide_frame(), {"metrics": {"psnr": {"higher_is_better": True}}})
    runner = CliRunner()
    base = ["report", str(run), "--n-boot", "200", "--vs", "tv", "identity"]
    outputs = {}
    for fmt in ("text", "markdown", "csv", "json"):
        result = runner.invoke(main, [*base, "--format", fmt])
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.stdout
    report = build_report(
        pd.read_parquet(next((run / "results").glob("*.parquet"))),
        {"metrics": {"psnr": {"higher_is_better": True}}},
        vs=("tv", "identity"),
        settings=StatsSettings(n_boot=200),
    )
    summary = report.summary.set_index(["restorer", "severity"])

    text = outputs["text"]
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "severity 10" in text and "shortened labels" in text
    tv10 = summary.loc[("tv", 10)]
    assert f"{tv10['mean']:.2f} [{tv10['ci_low']:.2f}, {tv10['ci_high']:.2f}]" in text

    tables = _markdown_tables(outputs["markdown"])
    board = tables["leaderboard"]
    assert board[0][0] == "restorer" and board[1][0] == "tv"
    tv = report.leaderboard.set_index("restorer").loc["tv"]
    assert board[1][1] == f"{tv['mean']:.2f} [{tv['ci_low']:.2f}, {tv['ci_high']:.2f}]"

    csv = pd.read_csv(io.StringIO(outputs["csv"]))
    back = csv[csv["table"] == "summary"].set_index(["restorer", "severity"])
    np.testing.assert_allclose(back.loc[summary.index, "mean"], summary["mean"], rtol=1e-12)
    assert set(csv["table"]) >= {"leaderboard", "summary", "paired", "breakdown", "coverage"}

    written = runner.invoke(main, [*base, "--format", "markdown", "-o", str(tmp_path / "r.md")])
    assert written.exit_code == 0 and written.stdout == ""
    assert (tmp_path / "r.md").read_text(encoding="utf-8") == outputs["markdown"]

    data = json.loads(outputs["json"])
    assert data["settings"]["n_boot"] == 200 and data["kind"] == "grid"
    paired = pd.DataFrame(data["tables"]["paired_tv_vs_identity"])
    overall = paired[paired["overall"]].iloc[0]
    assert overall["mean_diff"] == pytest.approx(1.5) and overall["wins"] == 80


def _markdown_tables(text: str) -> dict[str, list[list[str]]]:
    tables, heading, rows = {}, "", []
    for line in [*text.splitlines(), ""]:
        if line.startswith("## "):
            heading = line[3:].split(" · ")[0]
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if not set(line) <= set("|:- "):
                rows.append(cells)
        elif rows:
            tables.setdefault(heading, rows)
            rows = []
    return tables


def test_paired_runs_are_labelled_as_such(tmp_path: Path) -> None:
    inputs = [20.0, 22.0, 24.0]
    frame = results(
        {"identity": inputs, "tv": [v + 1 for v in inputs]}, inputs, degradation="paired"
    )
    frame["severity"] = 0
    info = {"pairs": {"lq_dir": "/lq", "gt_dir": "/gt"}, "metrics": {}}
    text = format_report(build_report(frame, info, vs=("tv", "identity")))
    assert "paired test set /lq vs /gt" in text and "all pairs" in text
    assert "severity 0" not in text and "breaks at" not in text
    assert "breakdown: not applicable to a paired test set" in text


def test_small_sample_note_and_lower_is_better_order() -> None:
    inputs = [20.0, 22.0, 24.0]
    frame = results({"a": [v + 1 for v in inputs], "b": inputs}, inputs)
    row = paired_comparison(frame, "a", "b", "psnr", overall=False, n_boot=100).iloc[0]
    assert row["min_p"] == 0.25 and "p cannot go below 0.25" in row["note"]
    eight = results({"a": list(range(30, 38)), "b": list(range(29, 37))}, list(range(8)))
    assert paired_comparison(eight, "a", "b", "psnr", n_boot=100)["note"].eq("").all()
    # lower is better (from the run's conventions): the smallest mean ranks first
    board = leaderboard(frame, "psnr", higher_is_better={"psnr": {"higher_is_better": False}})
    assert list(board["restorer"]) == ["b", INPUT_LABEL, "a"] and board.iloc[0]["rank"] == 1
    curves = severity_curves(frame, "psnr", settings=StatsSettings(n_boot=100))
    table = summary_table(frame, "psnr", n_boot=100).set_index("restorer")
    assert curves.set_index("restorer").loc["a", "mean"] == table.loc["a", "mean"]


def test_cmd_short_names_and_scale_hint(tmp_path: Path, astronaut: np.ndarray) -> None:
    upscale = tmp_path / "up.py"
    upscale.write_text(
        textwrap.dedent(
            """
            import sys
            from PIL import Image
            im = Image.open(sys.argv[1])
            im.resize((im.width * 4, im.height * 4)).save(sys.argv[2])
            """
        ),
        encoding="utf-8",
    )
    named = create_restorer(f"cmd[name=up4,scale=4]:{PY} {upscale} {{in}} {{out}}")
    assert named.label == "up4"
    assert named.restore(astronaut[:32, :32]).shape == (128, 128, 3)
    plain = create_restorer(f"cmd:{PY} {upscale} {{in}} {{out}}")
    with pytest.raises(CommandError, match=r"x4 upscaler: declare it with cmd\[scale=4\]"):
        plain.restore(astronaut[:32, :32])
    with pytest.raises(ValueError, match="is a registered restorer"):
        create_restorer(f"cmd[name=tv]:{PY} {upscale} {{in}} {{out}}")
    with pytest.raises(ValueError, match="must be 1-40 letters"):
        create_restorer(f"cmd[name=a b]:{PY} {upscale} {{in}} {{out}}")
    help_text = CliRunner().invoke(main, ["bench", "--help"]).output
    assert "cmd[name=SHORT,scale=S]" in " ".join(help_text.split())


def test_list_shows_whole_descriptions_within_100_columns() -> None:
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "with probability ``amount`` (half salt, half pepper)" in text
    from restorelab.app.listing import format_listing

    listing = format_listing(width=100)  # the registries (the curation keys follow it)
    assert result.output.startswith(listing)
    assert max(len(line) for line in listing.splitlines()) <= 100


def test_a_label_with_two_configurations_is_flagged() -> None:
    frame = results({"a": [21.0, 22.0, 23.0], "b": [20.0, 21.0, 22.0]}, [19.0, 20.0, 21.0])
    frame.loc[(frame["restorer"] == "a") & (frame["image_id"] == "img0"), "config_hash"] = "other"
    report = build_report(frame, settings=StatsSettings(n_boot=50))
    assert report.notes == [
        "note: a stands for 2 configurations (config_hash a, other); their rows are averaged "
        "per cell. Give each its own label (cmd[name=...]:...)"
    ]
    assert "note: a stands for 2 configurations" in format_report(report)


def test_run_fingerprint_follows_results_and_settings(tmp_path: Path) -> None:
    from restorelab.benchmark.stats import run_fingerprint

    run = _run_folder(tmp_path, results({"a": [1.0, 2.0]}, [0.0, 0.0]), {"metrics": {}})
    first = run_fingerprint(run)
    assert run_fingerprint(run) == first
    assert run_fingerprint(run, StatsSettings(n_boot=100)) != first
    ResultsStore(run).append(results({"b": [1.0, 2.0]}, [0.0, 0.0]).to_dict("records"))
    assert run_fingerprint(run) != first


def test_report_shows_the_run_spec_and_skips_damaged_parts_on_request(
    photo_folder: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    grid = Grid(name="g", degradations=["gaussian_noise"], severities=[1])
    run_benchmark(photo_folder, grid, ["identity"], run, progress=False)
    run_benchmark(photo_folder, grid, ["identity", "tv"], run, progress=False)  # a second part
    runner = CliRunner()
    shown = runner.invoke(main, ["report", str(run), "--n-boot", "50"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("run spec:\n  corpus: 3 images")
    assert "restorer tv [" in shown.stdout and "metric psnr ↑" in shown.stdout
    as_json = runner.invoke(main, ["report", str(run), "--n-boot", "50", "--format", "json"])
    assert json.loads(as_json.stdout)["spec"]["grid"]["name"] == "g"

    parts = sorted((run / "results").rglob("*.parquet"))
    assert len(parts) == 2
    parts[-1].write_bytes(b"not parquet")  # the part holding tv's rows
    refused = runner.invoke(main, ["report", str(run), "--n-boot", "50"])
    assert refused.exit_code != 0 and parts[-1].name in refused.output
    skipped = runner.invoke(main, ["report", str(run), "--n-boot", "50", "--skip-damaged"])
    assert skipped.exit_code == 0, skipped.output
    assert "identity" in skipped.stdout and "restorer tv [" in skipped.stdout  # spec still lists it
