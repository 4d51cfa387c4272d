"""The runner: a full grid, the degraded-input scores, resume, shards, workers, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from restorelab.benchmark import Restorer, run_benchmark
from restorelab.benchmark.metrics import create_metric
from restorelab.benchmark.runner import parse_shard
from restorelab.config import ConfigError
from restorelab.degradations import degrade
from restorelab.degradations.grid import Grid, load_grid
from restorelab.imageio import read_image
from restorelab.results import KEY_COLUMNS, ResultsStore, load_results

RESTORERS = ["identity", "tv", "wavelet"]


@pytest.fixture
def grid(tiny_grid_file: Path) -> Grid:
    return load_grid(tiny_grid_file)


def test_full_grid_one_row_per_cell(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    summary = run_benchmark(photo_folder, grid, RESTORERS, tmp_path / "run", progress=False)
    frame = load_results(tmp_path / "run")
    assert summary.rows_written == len(frame) == 3 * 4 * 3
    assert not frame.duplicated(list(KEY_COLUMNS)).any()
    assert set(frame["restorer"]) == set(RESTORERS)
    assert set(frame["image_id"]) == {"astronaut", "coffee", "chelsea"}
    assert np.isfinite(frame[["psnr", "ssim", "input_psnr", "input_ssim"]]).all().all()
    assert (frame["error"] == "").all()
    assert (frame["seconds"] >= 0).all()
    info = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert info["grid"]["name"] == "tiny"
    assert {r["label"] for r in info["restorers"]} == set(RESTORERS)
    assert "data_range=255" in info["metrics"]["psnr"]["convention"]
    assert info["packages"]["numpy"]


def test_rows_hold_the_true_scores(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    run_benchmark(photo_folder, grid, ["identity"], tmp_path / "run", progress=False)
    frame = load_results(tmp_path / "run")
    row = frame[
        (frame["image_id"] == "coffee")
        & (frame["degradation"] == "gaussian_noise")
        & (frame["severity"] == 3)
    ].iloc[0]
    clean = read_image(photo_folder / "coffee.png")
    degraded = degrade(clean, "gaussian_noise", 3, seed=0)
    assert row["psnr"] == pytest.approx(create_metric("psnr")(clean, degraded), abs=1e-9)
    assert row["input_psnr"] == row["psnr"]  # identity: restored == degraded input
    assert json.loads(row["degradation_params"])["sigma"] == 0.18


def test_rerun_skips_finished_cells_and_adds_new_restorers(
    photo_folder: Path, grid: Grid, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    first = run_benchmark(photo_folder, grid, ["identity"], run, progress=False)
    again = run_benchmark(photo_folder, grid, ["identity"], run, progress=False)
    assert (first.rows_written, again.rows_written, again.rows_skipped) == (12, 0, 12)
    more = run_benchmark(photo_folder, grid, ["identity", "tv"], run, progress=False)
    assert (more.rows_written, more.rows_skipped) == (12, 12)
    assert len(load_results(run)) == 24


def test_interrupted_run_resumes_to_exactly_one_row_per_cell(
    photo_folder: Path, grid: Grid, tmp_path: Path
) -> None:
    class Interrupting(Restorer):
        name = "interrupting"
        calls = 0

        def restore_array(self, image: np.ndarray) -> np.ndarray:
            type(self).calls += 1
            if type(self).calls == 7:
                raise KeyboardInterrupt
            return image.copy()

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(photo_folder, grid, [Interrupting()], run, flush_every=4, progress=False)
    partial = len(load_results(run))
    assert 0 < partial < 12
    resumed = run_benchmark(photo_folder, grid, [Interrupting()], run, progress=False)
    frame = load_results(run)
    assert resumed.rows_skipped == partial
    assert len(frame) == 12 and not frame.duplicated(list(KEY_COLUMNS)).any()


def test_failing_restorer_is_recorded_and_the_sweep_goes_on(
    photo_folder: Path, grid: Grid, tmp_path: Path
) -> None:
    class Broken(Restorer):
        name = "broken"

        def restore_array(self, image: np.ndarray) -> np.ndarray:
            raise RuntimeError("out of memory")

    summary = run_benchmark(
        photo_folder, grid, [Broken(), "identity"], tmp_path / "run", progress=False
    )
    frame = load_results(tmp_path / "run")
    broken = frame[frame["restorer"] == "broken"]
    assert len(broken) == 12 and (broken["error"] == "RuntimeError: out of memory").all()
    assert broken["psnr"].isna().all()
    assert (frame[frame["restorer"] == "identity"]["error"] == "").all()
    assert len(summary.errors) == 12


def test_unreadable_corpus_image_is_recorded(
    photo_folder: Path, grid: Grid, tmp_path: Path
) -> None:
    (photo_folder / "zz_broken.png").write_bytes(b"\x89PNG garbage")
    run_benchmark(photo_folder, grid, ["identity"], tmp_path / "run", progress=False)
    frame = load_results(tmp_path / "run")
    broken = frame[frame["image_id"] == "zz_broken"]
    assert len(broken) == 4
    assert broken["error"].str.contains("zz_broken.png").all()


def test_shards_partition_the_images(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    run = tmp_path / "run"
    for index in range(2):
        run_benchmark(photo_folder, grid, ["identity"], run, shard=f"{index}/2", progress=False)
    frame = load_results(run)
    assert len(frame) == 12 and frame["image_id"].nunique() == 3


def test_two_workers_give_the_same_numbers(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    run_benchmark(photo_folder, grid, ["tv"], tmp_path / "a", workers=1, progress=False)
    run_benchmark(photo_folder, grid, ["tv"], tmp_path / "b", workers=2, progress=False)
    keys = list(KEY_COLUMNS)
    a = load_results(tmp_path / "a").sort_values(keys).reset_index(drop=True)
    b = load_results(tmp_path / "b").sort_values(keys).reset_index(drop=True)
    assert np.array_equal(a[["psnr", "ssim"]].to_numpy(), b[["psnr", "ssim"]].to_numpy())


def test_parts_are_whole_files(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    key = {k: "x" for k in KEY_COLUMNS} | {"severity": 1, "seed": 0}
    store.append([key | {"psnr": 1.0, "error": ""}], metrics=["psnr"])
    (store.parts_dir / ".part-x.parquet.tmp").write_bytes(b"half a file")
    assert len(store.part_files()) == 1
    assert len(store.load()) == 1


def test_checks_happen_before_any_work(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown metric 'psnrr'"):
        run_benchmark(photo_folder, grid, ["identity"], tmp_path / "r", metrics=["psnrr"])
    with pytest.raises(ValueError, match="restorers listed twice"):
        run_benchmark(photo_folder, grid, ["tv", "tv"], tmp_path / "r")
    with pytest.raises(ValueError, match="shard must look like I/N"):
        parse_shard("1-2")
    with pytest.raises(ValueError, match="need 0 <= I < N"):
        parse_shard("2/2")
    assert not (tmp_path / "r" / "results").exists()


def test_grid_validation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndegradations: [gaussian_blur]\nseverities: [1, 11]\n", "utf-8")
    with pytest.raises(ConfigError, match=r"severities \[11\] out of range for gaussian_blur"):
        load_grid(bad)
    bad.write_text("name: x\ndegradations: [blurr]\nseverities: [1]\n", "utf-8")
    with pytest.raises(ConfigError, match="unknown degradation 'blurr'"):
        load_grid(bad)
    bad.write_text("name: x\ndegradations: [gaussian_blur]\nseverities: [1]\nsedes: [0]\n", "utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) sedes"):
        load_grid(bad)
    with pytest.raises(ConfigError, match=r"packaged grids: .*mini"):
        load_grid("no-such-grid")
    mini = load_grid("mini")
    assert len(mini) == 15 and mini.to_dict()["severities"] == [1, 2, 3, 4, 5]
    assert len(list(mini.cells())) == 15
