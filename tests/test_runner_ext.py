"""Runner extensions: crash-safe resume under SIGKILL, provenance, saved images, oracle
degradation parameters, batched restorers and shards from RANK / WORLD_SIZE."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from restorelab.benchmark import Restorer, create_restorer, run_benchmark
from restorelab.benchmark.metrics import create_metric
from restorelab.benchmark.runner import env_shard, parse_shard, safe_name
from restorelab.degradations import degrade
from restorelab.degradations.grid import Grid, load_grid
from restorelab.imageio import read_image
from restorelab.results import (
    KEY_COLUMNS,
    DamagedPartsError,
    ResultsStore,
    check_results,
    load_results,
    read_run_info,
)

REPO = Path(__file__).resolve().parents[1]

SWEEP = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from restorelab.benchmark import Restorer, run_benchmark
    from restorelab.benchmark.restorers import create_restorer, register_restorer
    from restorelab.degradations.grid import load_grid

    @register_restorer
    class SlowTV(Restorer):
        name = "slow_tv"
        defaults = {"delay": 0.15}

        def restore_array(self, image: np.ndarray) -> np.ndarray:
            time.sleep(self.options["delay"])
            return create_restorer("tv").restore(image)

    corpus, grid, out = sys.argv[1:4]
    run_benchmark(corpus, load_grid(grid), ["slow_tv", "identity"], out, flush_every=1,
                  progress=False)
    """
)


def _sweep(photo_folder: Path, grid_file: Path, run: Path, script: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), str(photo_folder), str(grid_file), str(run)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_mid_sweep_then_resume_gives_exactly_one_row_per_cell(
    photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP, encoding="utf-8")
    run = tmp_path / "run"
    parts = run / "results"
    proc = _sweep(photo_folder, tiny_grid_file, run, script)
    deadline = time.monotonic() + 60
    try:
        while len(list(parts.glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no part files appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = ResultsStore(run).load()
    expected = 3 * 4 * 2  # images × cells × restorers
    assert 0 < len(partial) < expected, "the kill came too late to test anything"

    done = _sweep(photo_folder, tiny_grid_file, run, script)
    assert done.wait(timeout=120) == 0, done.stderr.read().decode()

    store = ResultsStore(run)
    raw = store.read_parts()  # every stored row, before de-duplication
    keys = list(KEY_COLUMNS)
    assert not raw.duplicated(keys).any(), "a cell was computed twice"
    frame = store.load()
    assert len(frame) == expected
    assert set(frame["restorer"]) == {"slow_tv", "identity"}
    cells = frame.groupby(["image_id", "degradation", "severity", "seed"]).size()
    assert len(cells) == 12 and (cells == 2).all()
    assert (frame["error"] == "").all() and np.isfinite(frame["psnr"]).all()
    assert not list(parts.glob(".part-*.tmp")), "temporary files left behind"


def _key_row() -> dict:
    return {k: "x" for k in KEY_COLUMNS} | {"severity": 1, "seed": 0, "error": ""}


def test_stale_temp_parts_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.append([_key_row()])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = store.parts_dir / f".part-20240101T000000-{dead.stdout.strip()}-00001.parquet.tmp"
    live = store.parts_dir / f".part-20240101T000000-{os.getpid()}-00002.parquet.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    assert store.remove_stale_temp() == [stale]
    assert live.exists() and len(store.load()) == 1


def test_damaged_and_foreign_parts_are_named_and_counted(tmp_path: Path) -> None:
    import pandas as pd

    store = ResultsStore(tmp_path)
    store.append([_key_row() | {"psnr": 30.0, "input_psnr": 20.0}], metrics=["psnr"])
    damaged = store.parts_dir / "part-99999999T999999-1-99998.parquet"
    damaged.write_bytes(b"not parquet")
    foreign = store.parts_dir / "part-99999999T999999-1-99999.parquet"
    pd.DataFrame([{"image_id": "a", "psnr": "30"}]).to_parquet(foreign)  # no schema, no tag
    with pytest.raises(DamagedPartsError, match="2 result part") as caught:
        load_results(tmp_path)
    message = str(caught.value)
    assert damaged.name in message and foreign.name in message
    assert {p.kind for p in caught.value.problems} == {"damaged", "foreign"}
    assert [p.path for p in check_results(tmp_path)] == [damaged, foreign]
    with pytest.warns(UserWarning, match="left out 2 result part"):
        frame = load_results(tmp_path, skip_damaged=True)
    assert len(frame) == 1 and frame["psnr"].iloc[0] == 30.0


@pytest.fixture
def grid(tiny_grid_file: Path) -> Grid:
    return load_grid(tiny_grid_file)


def test_provenance_columns(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    run_benchmark(photo_folder, grid, ["identity"], tmp_path / "run", progress=False)
    frame = load_results(tmp_path / "run")
    assert (frame["device"] == "cpu").all()
    assert (frame["seconds"] >= 0).all()
    assert (frame["peak_rss_mb"] > 10).all() and (frame["peak_rss_delta_mb"] >= 0).all()
    assert frame["cuda_peak_mb"].isna().all()
    assert (frame["restored_file"] == "").all()


def test_saved_images_and_thumbnails(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_benchmark(
        photo_folder, grid, ["identity", "tv:weight=0.1"], run, progress=False, save_images=True
    )
    frame = load_results(run)
    row = frame[
        (frame["image_id"] == "coffee")
        & (frame["degradation"] == "gaussian_noise")
        & (frame["severity"] == 3)
        & (frame["restorer"] == "tv:weight=0.1")
    ].iloc[0]
    assert row["restored_file"] == ("images/tv_weight=0.1/gaussian_noise/s3/seed0/coffee.png")
    assert row["thumb_file"] == "images/tv_weight=0.1/gaussian_noise/s3/seed0/thumbs/coffee.jpg"
    assert row["degraded_file"] == "degraded/gaussian_noise/s3/seed0/coffee.png"
    restored = read_image(run / row["restored_file"])
    assert restored.shape == (row["height"], row["width"], 3)
    with Image.open(run / row["thumb_file"]) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 256
    # the identity's saved output is the degraded input, saved once per cell
    ident = frame[(frame["restorer"] == "identity")].iloc[0]
    assert np.array_equal(
        read_image(run / ident["restored_file"]), read_image(run / ident["degraded_file"])
    )
    assert len(list((run / "degraded").rglob("*.png"))) == 12
    assert not list(run.rglob(".*.tmp*"))


def test_safe_name() -> None:
    assert safe_name("cmd:python r.py {in} {out}") == "cmd_python_r.py_in_out"
    long = safe_name("x" * 200)
    assert len(long) == 80 and long != safe_name("x" * 199)


class _Recorder(Restorer):
    name = "recorder"
    wants_degradation = True
    seen: ClassVar[list] = []

    def restore_array(self, image: np.ndarray, *, degradation: dict | None) -> np.ndarray:
        type(self).seen.append(degradation)
        return image.copy()


def test_runner_passes_the_true_degradation(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    _Recorder.seen = []
    run_benchmark(photo_folder, grid, [_Recorder()], tmp_path / "run", progress=False)
    sigmas = {d["sigma"] for d in _Recorder.seen if d["name"] == "gaussian_blur"}
    assert len(_Recorder.seen) == 12 and sigmas == {1.0, 3.0}


def test_oracle_rl_beats_a_wrong_guess_in_the_runner(photo_folder: Path, tmp_path: Path) -> None:
    grid = Grid(name="blur", degradations=["gaussian_blur"], severities=[3], seeds=[0])
    specs = ["rl:psf_sigma=1.0", "rl:psf_sigma=1.0,oracle=true"]
    run_benchmark(photo_folder, grid, specs, tmp_path / "run", progress=False)
    frame = load_results(tmp_path / "run").pivot(
        index="image_id", columns="restorer", values="psnr"
    )
    assert (frame["rl:oracle=True,psf_sigma=1.0"] > frame["rl:psf_sigma=1.0"]).all()


class _Batcher(Restorer):
    name = "batcher"
    calls: ClassVar[list] = []

    @property
    def batch_size(self) -> int:
        return 5

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        return image.copy()

    def restore_batch(self, images, *, degradations=None):
        type(self).calls.append(len(images))
        return [im.copy() for im in images]


def test_batched_restorer_gets_batches(photo_folder: Path, grid: Grid, tmp_path: Path) -> None:
    _Batcher.calls = []
    run_benchmark(photo_folder, grid, [_Batcher(), "identity"], tmp_path / "run", progress=False)
    assert _Batcher.calls == [5, 5, 2]
    frame = load_results(tmp_path / "run")
    assert len(frame) == 24 and (frame["error"] == "").all()


def test_shard_defaults_to_rank_and_world_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert parse_shard(None) == (0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert parse_shard(None) == env_shard() == (1, 3)
    assert parse_shard("0/2") == (0, 2)
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="need 0 <= RANK < WORLD_SIZE"):
        env_shard()


class _Bicubic2(Restorer):
    """A ×2 'super-resolver': bicubic upscaling."""

    name = "bicubic2"
    scale = 2

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return np.asarray(Image.fromarray(image).resize((2 * w, 2 * h), Image.Resampling.BICUBIC))


class _Times3(_Bicubic2):
    name = "times3"
    scale = 3


def test_paired_run(photos: dict[str, np.ndarray], tmp_path: Path) -> None:
    from restorelab.benchmark.pairing import match_folders
    from restorelab.benchmark.runner import run_benchmark_pairs

    lq_dir, gt_dir = tmp_path / "lq", tmp_path / "gt"
    lq_dir.mkdir()
    gt_dir.mkdir()
    for name, image in photos.items():
        gt = image[:, :-1]  # odd width: GT is cropped to 2·LQ
        Image.fromarray(gt).save(gt_dir / f"{name}.png")
        h, w = gt.shape[:2]
        Image.fromarray(gt).resize((w // 2, h // 2), Image.Resampling.BICUBIC).save(
            lq_dir / f"{name}x2.png"
        )
    Image.fromarray(photos["coffee"]).save(lq_dir / "orphanx2.png")
    pairs, unmatched = match_folders(lq_dir, gt_dir)
    assert [p[0] for p in pairs] == ["astronaut", "chelsea", "coffee"]
    assert unmatched == [f"LQ {lq_dir / 'orphanx2.png'}"]

    run = tmp_path / "run"
    specs = ["identity", _Bicubic2(), _Times3()]
    summary = run_benchmark_pairs(lq_dir, gt_dir, specs, run, progress=False, save_images=True)
    frame = load_results(run)
    assert len(frame) == 9 and summary.unmatched == unmatched
    assert set(frame["degradation"]) == {"paired"} and set(frame["severity"]) == {0}
    ok = frame[frame["restorer"] != "times3"]
    assert (ok["error"] == "").all()
    # identity on the bicubic upscale and bicubic ×2 on the LQ both give the bicubic baseline
    assert np.allclose(ok["psnr"], ok["input_psnr"])
    bad = frame[frame["restorer"] == "times3"]
    assert bad["error"].str.contains("does not fit pair scale x2").all()
    row = frame[(frame["restorer"] == "bicubic2") & (frame["image_id"] == "coffee")].iloc[0]
    assert read_image(run / row["restored_file"]).shape[:2] == (row["height"], row["width"])
    assert read_image(run / row["degraded_file"]).shape[0] == row["height"] // 2
    assert json.loads(row["degradation_params"])["scale"] == 2
    again = run_benchmark_pairs(lq_dir, gt_dir, specs, run, progress=False)
    assert (again.rows_written, again.rows_skipped) == (0, 9)


DIST = textwrap.dedent(
    """
    import sys
    import torch.distributed as dist
    from restorelab.benchmark import run_benchmark
    from restorelab.degradations.grid import load_grid

    dist.init_process_group("gloo")
    corpus, grid, out = sys.argv[1:4]
    summary = run_benchmark(corpus, load_grid(grid), ["identity"], out, progress=False)
    print(f"rank {dist.get_rank()} wrote {summary.rows_written}", flush=True)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_ranks_write_one_consistent_run(
    photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch.distributed")
    script = tmp_path / "dist.py"
    script.write_text(DIST, encoding="utf-8")
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
            str(script), str(photo_folder), str(tiny_grid_file), str(run),
        ],
        cwd=REPO, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank"))
    assert written == ["rank 0 wrote 8", "rank 1 wrote 4"]  # images 0, 2 | image 1
    raw = ResultsStore(run).read_parts()
    assert len(raw) == 12 and not raw.duplicated(list(KEY_COLUMNS)).any()
    assert raw["image_id"].nunique() == 3
    shards = sorted(i["shard"] for i in read_run_info(run)["invocations"])
    assert shards == ["0/2", "1/2"]  # both ranks recorded in run.json, neither lost


UPDATE = textwrap.dedent(
    """
    import sys
    from restorelab.results import update_json_locked

    path, rank = sys.argv[1], sys.argv[2]
    for i in range(40):
        update_json_locked(path, lambda d: {**d, "n": d.get("n", 0) + 1,
                                            "seen": d.get("seen", []) + [f"{rank}-{i}"]})
    """
)


def test_concurrent_run_info_updates_lose_nothing(tmp_path: Path) -> None:
    """Four processes each append 40 times to one JSON file: all 160 updates survive."""
    script = tmp_path / "update.py"
    script.write_text(UPDATE, encoding="utf-8")
    target = tmp_path / "run" / "run.json"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(target), str(rank)], cwd=REPO)
        for rank in range(4)
    ]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["n"] == 160 and len(set(data["seen"])) == 160


def test_accelerate_launch_shards_the_cli(
    photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    """``accelerate launch --multi_gpu --num_processes 2 -m restorelab bench ...`` (run
    here without GPUs, as accelerate allows) gives each rank its shard through RANK /
    WORLD_SIZE: one consistent run, every cell once."""
    if shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("accelerate is not installed in this environment")
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu",
            "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
            "-m", "restorelab", "bench", "--corpus", str(photo_folder),
            "--grid", str(tiny_grid_file), "--restorer", "identity", "--out", str(run),
        ],
        cwd=REPO, env={**env, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    raw = ResultsStore(run).read_parts()
    assert len(raw) == 12 and not raw.duplicated(list(KEY_COLUMNS)).any()
    shards = sorted(i["shard"] for i in read_run_info(run)["invocations"])
    assert shards == ["0/2", "1/2"]


@pytest.mark.parametrize(
    ("lq_size", "gt_size", "factor"),
    [
        ((40, 30), (40, 30), 1),  # same size: denoising / deblurring pairs
        ((50, 49), (101, 99), 2),  # odd GT: one spare row and column, cropped away
        ((33, 21), (101, 65), 3),  # ×3 with two spare rows and columns
        ((25, 25), (100, 100), 4),
    ],
)
def test_pair_scale_factors(lq_size: tuple, gt_size: tuple, factor: int) -> None:
    from restorelab.benchmark.runner import _scale_factor

    lq, gt = np.zeros((*lq_size, 3), np.uint8), np.zeros((*gt_size, 3), np.uint8)
    assert _scale_factor(lq, gt) == factor


@pytest.mark.parametrize(
    ("lq_size", "gt_size"),
    [((40, 30), (80, 30)), ((50, 50), (103, 100)), ((60, 60), (40, 40)), ((30, 40), (90, 100))],
)
def test_pair_sizes_without_an_integer_factor_are_refused(lq_size: tuple, gt_size: tuple) -> None:
    from restorelab.benchmark.runner import _scale_factor

    with pytest.raises(ValueError, match="differ by no integer factor"):
        _scale_factor(np.zeros((*lq_size, 3), np.uint8), np.zeros((*gt_size, 3), np.uint8))


def test_same_size_pairs_score_the_input_itself(photos: dict, tmp_path: Path) -> None:
    """Denoising pairs (LQ and GT of one size): identity's scores are the input's."""
    from restorelab.benchmark.runner import run_benchmark_pairs

    lq_dir, gt_dir = tmp_path / "lq", tmp_path / "gt"
    lq_dir.mkdir()
    gt_dir.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(gt_dir / f"{name}.png")
        noisy = degrade(image, "gaussian_noise", 2, seed=1)
        Image.fromarray(noisy).save(lq_dir / f"{name}.png")
    run = tmp_path / "run"
    run_benchmark_pairs(lq_dir, gt_dir, ["identity"], run, progress=False)
    frame = load_results(run)
    assert len(frame) == 3 and (frame["error"] == "").all()
    assert np.allclose(frame["psnr"], frame["input_psnr"])
    for _, row in frame.iterrows():
        gt = photos[row["image_id"]]
        expected = create_metric("psnr")(gt, degrade(gt, "gaussian_noise", 2, seed=1))
        assert row["psnr"] == pytest.approx(expected)
    assert set(json.loads(p)["scale"] for p in frame["degradation_params"]) == {1}


def test_consistency_in_a_sweep_uses_each_cells_degradation(
    photo_folder: Path, tmp_path: Path
) -> None:
    grid = Grid(
        name="c",
        degradations=["gaussian_blur", "gaussian_noise"],
        severities=[2],
        seeds=[0],
        chains=["gaussian_blur:2+jpeg_compression"],
    )
    run = tmp_path / "run"
    metrics = ["psnr", "consistency", "psnr:crop_border=4"]
    run_benchmark(photo_folder, grid, ["identity", "tv"], run, metrics=metrics, progress=False)
    frame = load_results(run)
    assert len(set(frame["degradation"])) == 3 and (frame["error"] == "").all()
    assert {"consistency", "input_consistency", "psnr:crop_border=4"} <= set(frame.columns)
    info = read_run_info(run)
    assert "crop_border=4" in info["metrics"]["psnr:crop_border=4"]["convention"]
    blur = frame[frame["degradation"] == "gaussian_blur"]
    # identity returns the input: its consistency is the input's own, finite for blur + JPEG
    ident = frame[frame["restorer"] == "identity"]
    deterministic = ident[ident["degradation"] != "gaussian_noise"]
    assert np.isfinite(deterministic["consistency"]).all()
    assert np.allclose(deterministic["consistency"], deterministic["input_consistency"])
    # the value is consistency with that cell's op, severity and seed
    row = blur[blur["restorer"] == "tv"].iloc[0]
    clean = read_image(photo_folder / f"{row['image_id']}.png")
    restored = create_restorer("tv").restore(degrade(clean, "gaussian_blur", 2, seed=0))
    expected = create_metric("consistency", degradation="gaussian_blur", severity=2)(
        degrade(clean, "gaussian_blur", 2, seed=0), restored
    )
    assert row["consistency"] == pytest.approx(expected)
    noise = frame[frame["degradation"] == "gaussian_noise"]
    assert noise["consistency"].isna().all() and (noise["error"] == "").all()


def test_consistency_of_super_resolution_pairs(photos: dict, tmp_path: Path) -> None:
    from restorelab.benchmark.runner import run_benchmark_pairs

    lq_dir, gt_dir = tmp_path / "lq", tmp_path / "gt"
    lq_dir.mkdir()
    gt_dir.mkdir()
    import cv2

    for name, image in photos.items():
        gt = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
        Image.fromarray(gt).save(gt_dir / f"{name}.png")
        low = cv2.resize(gt, (gt.shape[1] // 2, gt.shape[0] // 2), interpolation=cv2.INTER_AREA)
        Image.fromarray(low).save(lq_dir / f"{name}x2.png")
    run = tmp_path / "run"
    run_benchmark_pairs(lq_dir, gt_dir, ["identity"], run, metrics=["consistency"], progress=False)
    frame = load_results(run)
    # a bicubic upscale downscaled by area again is close to the LQ, not equal
    assert np.isfinite(frame["consistency"]).all() and (frame["consistency"] > 25).all()
    assert np.allclose(frame["consistency"], frame["input_consistency"])


def test_external_commands_report_their_own_memory(photo_folder: Path, tmp_path: Path) -> None:
    script = tmp_path / "hungry.py"
    script.write_text(
        "import shutil, sys, time\nblock = b'x' * (1000 * 2**20)\ntime.sleep(0.2)\n"
        "shutil.copy(sys.argv[1], sys.argv[2])\n",
        encoding="utf-8",
    )
    corpus = tmp_path / "one"
    corpus.mkdir()
    shutil.copy(next(photo_folder.iterdir()), corpus)
    grid = Grid(name="m", degradations=["gaussian_blur"], severities=[1], seeds=[0])
    spec = f"cmd:{sys.executable} {script} {{in}} {{out}}"
    run_benchmark(corpus, grid, [spec], tmp_path / "run", progress=False)
    frame = load_results(tmp_path / "run")
    assert (frame["error"] == "").all()
    # the child's 1000 MiB plus an interpreter, not this process's memory
    assert frame["peak_rss_mb"].between(1000, 1150).all(), frame["peak_rss_mb"].tolist()
    assert frame["cuda_peak_mb"].isna().all() and frame["peak_rss_delta_mb"].isna().all()
