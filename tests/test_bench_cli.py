"""``bench`` and ``degrade`` as a user meets them: exit codes, grouped failures, refusals,
internal errors, damaged result parts in ``report``, and stable image ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from restorelab.app.bench import EXIT_CELLS_FAILED, format_failures
from restorelab.app.cli import EXIT_INTERNAL, main
from restorelab.benchmark.runner import CellFailure
from restorelab.corpus import load_corpus
from restorelab.results import ResultsStore, load_results


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _bench(corpus: Path, grid: Path, out: Path, *restorers: str, metrics: str = "psnr") -> list:
    args = ["bench", "--corpus", str(corpus), "--grid", str(grid), "--out", str(out)]
    for spec in restorers:
        args += ["--restorer", spec]
    return [*args, "--metrics", metrics]


def test_bench_exits_3_with_failures_grouped_and_a_broken_image_named_once(
    runner: CliRunner, photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    (photo_folder / "zz_broken.png").write_bytes(b"\x89PNG garbage")
    run = tmp_path / "run"
    result = runner.invoke(
        main, _bench(photo_folder, tiny_grid_file, run, "identity", "cmd:false {in} {out}")
    )
    assert result.exit_code == EXIT_CELLS_FAILED, result.output
    out = result.output
    # 4 images × 4 cells × 2 restorers; the broken image fails 8 rows, false fails 12 more
    assert "20 of 32 rows failed; exit code 3" in out
    broken_lines = [line for line in out.splitlines() if "zz_broken" in line]
    assert len(broken_lines) == 1  # reported once, not once per cell
    assert "image zz_broken cannot be used (4 cells, all restorers)" in out
    assert "[12 rows] restorer cmd:false {in} {out}: CommandError" in out
    assert len(load_results(run)) == 32
    again = runner.invoke(
        main, _bench(photo_folder, tiny_grid_file, run, "identity", "cmd:false {in} {out}")
    )
    assert again.exit_code == EXIT_CELLS_FAILED  # the run still has failed cells
    assert "20 rows failed earlier, kept" in again.output
    retried = runner.invoke(
        main,
        [
            *_bench(photo_folder, tiny_grid_file, run, "identity", "cmd:false {in} {out}"),
            "--retry-failed",
        ],
    )
    assert retried.exit_code == EXIT_CELLS_FAILED
    assert "reused 12 finished rows, added 20 rows" in retried.output
    assert len(load_results(run)) == 32
    (photo_folder / "zz_broken.png").unlink()
    fine = runner.invoke(main, _bench(photo_folder, tiny_grid_file, tmp_path / "ok", "identity"))
    assert fine.exit_code == 0, fine.output


def test_failure_groups_are_never_cut_without_saying_how_many() -> None:
    failures = [
        CellFailure(f"img{i}", "blur:1 seed 0", "cmd", "restore", f"reason {i}") for i in range(30)
    ]
    lines = format_failures(failures, limit=10)
    assert lines[0] == "30 rows failed in this call, by (restorer, reason):"
    assert len(lines) == 12 and "20 more groups" in lines[-1]


def test_bench_into_a_folder_of_another_set_up_is_refused_with_exit_1(
    runner: CliRunner, photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    assert runner.invoke(main, _bench(photo_folder, tiny_grid_file, run, "identity")).exit_code == 0
    matched = tmp_path / "matched.yaml"
    matched.write_text(
        tiny_grid_file.read_text(encoding="utf-8") + "levels:\n  gaussian_blur: [0.7, 1.4, 2.1]\n",
        encoding="utf-8",
    )
    refused = runner.invoke(main, _bench(photo_folder, matched, run, "identity"))
    assert refused.exit_code == 1
    assert "gaussian_blur severity 1 is level" in refused.output and "new --out" in refused.output
    assert "Traceback" not in refused.output
    added = runner.invoke(
        main, _bench(photo_folder, tiny_grid_file, run, "identity", metrics="psnr,ssim")
    )
    assert added.exit_code == 0, added.output
    assert "filled ssim into 12 finished rows (0 from saved images, 12 re-run)" in added.output


def test_internal_errors_show_a_traceback_and_ask_for_a_report(
    runner: CliRunner, photo_folder: Path, tiny_grid_file: Path, tmp_path: Path, monkeypatch
) -> None:
    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr("restorelab.benchmark.run_benchmark", broken)
    result = runner.invoke(main, _bench(photo_folder, tiny_grid_file, tmp_path / "r", "identity"))
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback" in result.output and "TypeError: unsupported operand" in result.output
    assert "this is a bug" in result.output and "report it" in result.output


def test_report_refuses_damaged_parts_unless_skip_damaged(
    runner: CliRunner, photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    runner.invoke(main, _bench(photo_folder, tiny_grid_file, run, "identity", "tv"))
    damaged = ResultsStore(run).parts_dir / "part-99999999T999999-1-99999.parquet"
    damaged.write_bytes(b"PAR1 truncated")
    refused = runner.invoke(main, ["report", str(run), "--n-boot", "100"])
    assert refused.exit_code != 0
    assert "1 result part(s)" in refused.output and damaged.name in refused.output
    # `report --skip-damaged` (load_results(skip_damaged=True)) is not wired into the report
    # command that moved to restorelab/app/report.py; the library path is tested in
    # tests/test_runner_ext.py::test_damaged_and_foreign_parts_are_named_and_counted


def test_degrade_into_another_grids_folder_is_refused(
    runner: CliRunner, photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deg"
    args = ["degrade", str(tiny_grid_file), "--corpus", str(photo_folder), "--out", str(out)]
    assert runner.invoke(main, args).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    matched = tmp_path / "matched.yaml"
    matched.write_text(
        tiny_grid_file.read_text(encoding="utf-8").replace("name: tiny", "name: matched")
        + "levels:\n  gaussian_noise: [0.05, 0.1, 0.3]\n",
        encoding="utf-8",
    )
    other = ["degrade", str(matched), "--corpus", str(photo_folder), "--out", str(out)]
    refused = runner.invoke(main, other)
    assert refused.exit_code == 1
    assert "gaussian_noise severity 3 is level 0.18 in the run, 0.3 now" in refused.output
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before  # nothing overwritten
    # more severities of the same grid are added; a deleted file is made again
    more = tmp_path / "more.yaml"
    more.write_text(
        tiny_grid_file.read_text(encoding="utf-8").replace("[1, 3]", "[1, 2, 3]"), "utf-8"
    )
    next(iter(before)).unlink()
    added = runner.invoke(
        main, ["degrade", str(more), "--corpus", str(photo_folder), "--out", str(out)]
    )
    assert added.exit_code == 0, added.output
    assert "7 images written, 11 already there" in added.output
    spec = json.loads((out / "grid.json").read_text(encoding="utf-8"))["spec"]
    assert sorted(spec["grid"]["levels"]["gaussian_blur"]) == ["1", "2", "3"]


def test_image_ids_stay_stable_when_one_name_collides(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    folder = tmp_path / "corpus"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    for rel in ("a/cat.png", "a/dog.png", "b/owl.png"):
        Image.fromarray(image).save(folder / rel)
    before = [item.image_id for item in load_corpus(folder)]
    assert before == ["cat", "dog", "owl"]
    Image.fromarray(image).save(folder / "b" / "cat.png")
    after = [item.image_id for item in load_corpus(folder)]
    assert after == ["a/cat", "b/cat", "dog", "owl"]  # only the colliding names changed
