"""Exact resume: the run spec in run.json, and one test per resume rule (issue 13.2)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from restorelab.benchmark import Restorer, run_benchmark
from restorelab.benchmark.metrics import create_metric
from restorelab.benchmark.restorers import register_restorer
from restorelab.benchmark.runner import run_benchmark_pairs
from restorelab.benchmark.runspec import RunSpec, SpecConflictError
from restorelab.degradations import degrade
from restorelab.degradations.grid import Grid
from restorelab.imageio import read_image
from restorelab.results import KEY_COLUMNS, ResultsStore, load_results, read_run_info


def _grid(severities: tuple = (1, 3), levels: dict | None = None, seeds: tuple = (0,)) -> Grid:
    return Grid(
        "tiny",
        degradations=["gaussian_blur", "gaussian_noise"],
        severities=list(severities),
        seeds=list(seeds),
        levels=dict(levels or {}),
    )


@register_restorer
class WeightedBlend(Restorer):
    """Test restorer that 'loads' a weights file: blends the image with its mean by the
    first byte of the file (so another file gives other numbers)."""

    name = "weighted_blend_test"
    defaults: ClassVar[dict[str, Any]] = {"weights": ""}

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        alpha = Path(self.options["weights"]).read_bytes()[0] / 255.0
        mean = image.mean(axis=(0, 1), keepdims=True)
        return np.clip(alpha * image + (1 - alpha) * mean, 0, 255).round().astype(np.uint8)


def test_run_spec_round_trips_through_run_json(photo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    levels = {"gaussian_blur": [0.5, 1.5, 2.5]}
    run_benchmark(
        photo_folder,
        Grid(
            "chained",
            degradations=["gaussian_blur"],
            severities=[1, 3],
            levels=levels,
            chains=["gaussian_blur:2+jpeg_compression"],
        ),
        ["identity", "tv:weight=0.05"],
        run,
        metrics=["psnr", "ssim"],
        progress=False,
    )
    stored = read_run_info(run)["spec"]
    spec = RunSpec.from_dict(json.loads(json.dumps(stored)))
    assert spec.to_dict() == stored
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert spec.grid.level("gaussian_blur", 3) == 2.5
    assert spec.grid.level("gaussian_blur:2+jpeg_compression", 3)[0] == ("gaussian_blur", 2)
    assert [m.label for m in spec.metrics] == ["psnr", "ssim"]
    assert "data_range=255" in spec.metrics[0].convention
    assert {r.label for r in spec.restorers} == {"identity", "tv:weight=0.05"}
    assert sorted(dict(spec.corpus.images)) == ["astronaut", "chelsea", "coffee"]
    assert spec.pairing is None
    # placement is not part of it
    assert "device" not in json.dumps(stored) and "shard" not in json.dumps(stored)


@pytest.mark.parametrize("save_images", [True, False])
def test_added_metric_fills_only_the_missing_column(
    photo_folder: Path, tmp_path: Path, save_images: bool
) -> None:
    run = tmp_path / "run"
    grid = _grid()
    first = run_benchmark(
        photo_folder, grid, ["tv"], run, metrics=["psnr"], save_images=save_images, progress=False
    )
    before = load_results(run)
    more = run_benchmark(
        photo_folder,
        grid,
        ["tv"],
        run,
        metrics=["psnr", "psnr_y"],
        save_images=save_images,
        progress=False,
    )
    assert first.rows_written == 12
    assert (more.rows_written, more.rows_skipped, more.rows_filled) == (0, 0, 12)
    assert more.filled_metrics == ["psnr_y"]
    assert (more.filled_from_saved, more.filled_by_rerun) == ((12, 0) if save_images else (0, 12))
    assert "metric psnr_y" in more.added and "filled psnr_y into 12" in more.describe()
    frame = load_results(run)
    assert len(frame) == 12 and np.isfinite(frame[["psnr_y", "input_psnr_y"]]).all().all()
    merged = frame.merge(before, on=list(KEY_COLUMNS), suffixes=("", "_before"))
    assert np.array_equal(merged["psnr"], merged["psnr_before"])  # old columns kept
    assert np.array_equal(merged["seconds"], merged["seconds_before"])
    row = frame[(frame["image_id"] == "coffee") & (frame["degradation"] == "gaussian_noise")]
    row = row[row["severity"] == 3].iloc[0]
    clean = read_image(photo_folder / "coffee.png")
    degraded = degrade(clean, "gaussian_noise", 3, seed=0)
    assert row["input_psnr_y"] == pytest.approx(create_metric("psnr_y")(clean, degraded))
    assert "psnr_y" in read_run_info(run)["metrics"]
    again = run_benchmark(
        photo_folder, grid, ["tv"], run, metrics=["psnr", "psnr_y"], progress=False
    )
    assert (again.rows_written, again.rows_skipped, again.rows_filled) == (0, 12, 0)


def test_added_restorer_runs_only_its_cells(photo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_benchmark(photo_folder, _grid(), ["identity"], run, progress=False)
    more = run_benchmark(photo_folder, _grid(), ["identity", "tv"], run, progress=False)
    assert (more.rows_written, more.rows_skipped) == (12, 12)
    assert more.added == ["restorer tv"]
    assert len(load_results(run)) == 24


def test_added_severity_and_seed_run_only_the_new_cells(photo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_benchmark(photo_folder, _grid((1, 3)), ["identity"], run, progress=False)
    more = run_benchmark(photo_folder, _grid((1, 2, 3)), ["identity"], run, progress=False)
    assert (more.rows_written, more.rows_skipped) == (6, 12)
    seeds = run_benchmark(
        photo_folder, _grid((1, 2, 3), seeds=(0, 1)), ["identity"], run, progress=False
    )
    assert (seeds.rows_written, seeds.rows_skipped) == (18, 18)
    assert any("seed(s) [1]" in a for a in seeds.added)
    frame = load_results(run)
    assert len(frame) == 36 and not frame.duplicated(list(KEY_COLUMNS)).any()


def _parts(run: Path) -> list[Path]:
    return ResultsStore(run).part_files()


def test_changed_levels_are_refused_before_any_work(photo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    old = {"gaussian_blur": [0.5, 1.0, 2.0]}
    run_benchmark(photo_folder, _grid(levels=old), ["identity"], run, progress=False)
    parts, info = _parts(run), read_run_info(run)
    new = {"gaussian_blur": [0.5, 1.0, 2.6]}
    with pytest.raises(SpecConflictError) as caught:
        run_benchmark(photo_folder, _grid(levels=new), ["identity", "tv"], run, progress=False)
    message = str(caught.value)
    assert "gaussian_blur severity 3 is level 2.0 in the run, 2.6 now" in message
    assert "new --out" in message and "severity 1" not in message
    assert _parts(run) == parts and read_run_info(run) == info  # nothing computed or written
    # the same levels under another grid name, plus a new severity, resume
    more = run_benchmark(
        photo_folder,
        Grid("renamed", ["gaussian_blur", "gaussian_noise"], [1, 2, 3], levels=old),
        ["identity"],
        run,
        progress=False,
    )
    assert (more.rows_written, more.rows_skipped) == (6, 12)


def test_other_content_under_the_same_image_ids_is_refused(
    photo_folder: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run_benchmark(photo_folder, _grid(), ["identity"], run, progress=False)
    other = tmp_path / "other"
    shutil.copytree(photo_folder, other)
    image = np.asarray(Image.open(other / "coffee.png"))
    Image.fromarray(255 - image).save(other / "coffee.png")
    with pytest.raises(SpecConflictError, match=r"1 image id\(s\) now hold other content: coffee"):
        run_benchmark(other, _grid(), ["identity"], run, progress=False)
    # a moved copy of the same corpus is the same corpus; a new image is added
    same = tmp_path / "moved"
    shutil.copytree(photo_folder, same)
    Image.fromarray(image[::-1]).save(same / "flipped.png")
    more = run_benchmark(same, _grid(), ["identity"], run, progress=False)
    assert (more.rows_written, more.rows_skipped) == (4, 12)
    assert "1 image(s)" in more.added


def test_another_file_behind_a_restorer_option_is_refused(
    photo_folder: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "lora.bin"
    weights.write_bytes(bytes([200]) + os.urandom(64))
    spec = f"weighted_blend_test:weights={weights}"
    run = tmp_path / "run"
    run_benchmark(photo_folder, _grid(), [spec], run, progress=False)
    stat = weights.stat()
    os.utime(weights, (stat.st_atime + 100, stat.st_mtime + 100))  # touched, same bytes
    again = run_benchmark(photo_folder, _grid(), [spec], run, progress=False)
    assert (again.rows_written, again.rows_skipped) == (0, 12)
    weights.write_bytes(bytes([100]) + os.urandom(64))  # retrained: same path, other bytes
    with pytest.raises(SpecConflictError) as caught:
        run_benchmark(photo_folder, _grid(), [spec], run, progress=False)
    assert f"restorer {spec}: the file behind weights changed" in str(caught.value)
    assert len(load_results(run)) == 12


def test_file_identity_is_part_of_the_config_hash(tmp_path: Path) -> None:
    from restorelab.benchmark import create_restorer

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x01" * 10)
    first = create_restorer("weighted_blend_test", weights=str(weights))
    first_hash = first.config_hash
    weights.write_bytes(b"\x02" * 10)
    second = create_restorer("weighted_blend_test", weights=str(weights))
    assert first.config == second.config and first_hash != second.config_hash
    assert set(second.file_identities()) == {"weights"}
    assert create_restorer("tv").file_identities() == {}


def test_paired_runs_fill_added_metrics_and_refuse_other_pairs(
    photos: dict[str, np.ndarray], tmp_path: Path
) -> None:
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    lq.mkdir()
    gt.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(gt / f"{name}.png")
        small = Image.fromarray(image).resize((image.shape[1] // 2, image.shape[0] // 2))
        small.save(lq / f"{name}x2.png")
    run = tmp_path / "run"
    run_benchmark_pairs(lq, gt, ["identity"], run, metrics=["psnr"], progress=False)
    more = run_benchmark_pairs(lq, gt, ["identity"], run, metrics=["psnr", "ssim"], progress=False)
    assert (more.rows_written, more.rows_filled, more.filled_by_rerun) == (0, 3, 3)
    frame = load_results(run)
    assert np.isfinite(frame[["ssim", "input_ssim"]]).all().all()
    Image.fromarray(photos["coffee"][::-1]).save(gt / "coffee.png")
    with pytest.raises(SpecConflictError, match="coffee"):
        run_benchmark_pairs(lq, gt, ["identity"], run, progress=False)
    with pytest.raises(SpecConflictError, match="paired test set"):
        run_benchmark(tmp_path / "gt", _grid(), ["identity"], run, progress=False)


def test_results_without_a_spec_are_not_resumed(photo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_benchmark(photo_folder, _grid(), ["identity"], run, progress=False)
    (run / "run.json").unlink()
    with pytest.raises(SpecConflictError, match="no run spec"):
        run_benchmark(photo_folder, _grid(), ["identity"], run, progress=False)


def test_one_executor_object_serves_grid_cells_and_pairs(
    photo_folder: Path, tmp_path: Path
) -> None:
    import pickle

    import restorelab.benchmark.runner as runner
    from restorelab.benchmark import create_restorer
    from restorelab.corpus import load_corpus

    assert not hasattr(runner, "_WORKER")  # no module-level worker state
    executor = runner.CellExecutor.create(
        [create_restorer("identity"), create_restorer("tv")], ["psnr"], tmp_path
    )
    item = load_corpus(photo_folder)[0]
    rows = executor.run_tasks([runner.Task(item, "gaussian_blur", 1, 0, (0, 1))])[0]
    assert [r["restorer"] for r in rows] == ["identity", "tv"]
    assert rows[0]["psnr"] == rows[0]["input_psnr"] and rows[1]["psnr"] != rows[0]["psnr"]
    pair = executor.run_pair(runner.PairTask("p", item.path, item.path, (1,)))
    assert [r["restorer"] for r in pair] == ["tv"] and pair[0]["error"] == ""
    rebuilt = pickle.loads(pickle.dumps(executor.config())).build()  # what a worker does
    assert [r.label for r in rebuilt.restorers] == ["identity", "tv"]
    assert list(rebuilt.metrics) == ["psnr"]


def test_report_shows_the_run_spec(photo_folder: Path, tmp_path: Path) -> None:
    from restorelab.benchmark.runspec import load_run_spec

    run = tmp_path / "run"
    run_benchmark(photo_folder, _grid(), ["identity"], run, progress=False)
    spec = load_run_spec(run)
    assert spec == RunSpec.from_dict(read_run_info(run)["spec"])
    lines = spec.describe()
    assert lines[0] == "corpus: 3 images (ids with content hashes)"
    assert any(line.startswith("  gaussian_blur: s1=") for line in lines)
    assert all(len(line) <= 96 for line in lines)


def test_an_external_commands_script_is_part_of_its_identity(tmp_path: Path) -> None:
    from restorelab.benchmark import create_restorer

    script = tmp_path / "restore.py"
    script.write_text("import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])\n", "utf-8")
    spec = f"cmd:python {script} {{in}} {{out}}"
    before = create_restorer(spec)
    assert set(before.file_identities()) == {"command[1]"}
    first_hash = before.config_hash
    script.write_text("import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])  # v2\n", "utf-8")
    after = create_restorer(spec)
    assert after.label == before.label and after.config_hash != first_hash


def test_corpus_hashes_are_cached_by_file_stat(
    photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import restorelab.corpus as corpus
    from restorelab.corpus import CorpusFingerprint, load_corpus

    cache = tmp_path / "hashes.json"
    items = load_corpus(photo_folder)
    first = CorpusFingerprint.of(items, cache=cache)
    assert first == CorpusFingerprint.of(items)
    read: list[str] = []
    real = corpus.content_hash
    monkeypatch.setattr(corpus, "content_hash", lambda p: read.append(Path(p).name) or real(p))
    assert CorpusFingerprint.of(items, cache=cache) == first and read == []
    image = np.asarray(Image.open(photo_folder / "coffee.png"))
    Image.fromarray(255 - image).save(photo_folder / "coffee.png")  # new bytes, new stat
    changed = CorpusFingerprint.of(items, cache=cache)
    assert read == ["coffee.png"]
    assert changed.as_dict()["coffee"] != first.as_dict()["coffee"]
    assert changed.as_dict()["astronaut"] == first.as_dict()["astronaut"]


@register_restorer
class Jitter(Restorer):
    """Test restorer that is not deterministic: adds fresh noise on every call."""

    name = "jitter_test"
    defaults: ClassVar[dict[str, Any]] = {}

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        noise = np.random.default_rng().integers(-3, 4, image.shape)
        return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def test_a_re_run_that_does_not_reproduce_its_scores_adds_nothing(
    photo_folder: Path, tmp_path: Path
) -> None:
    run, kept = tmp_path / "run", tmp_path / "kept"
    grid = _grid((1,))
    run_benchmark(photo_folder, grid, ["jitter_test"], run, metrics=["psnr"], progress=False)
    before = load_results(run)
    more = run_benchmark(
        photo_folder, grid, ["jitter_test"], run, metrics=["psnr", "ssim"], progress=False
    )
    assert more.rows_filled == 0 and len(more.failures) == 6
    assert "not deterministic" in more.failures[0].reason
    after = load_results(run)
    assert after["ssim"].isna().all() if "ssim" in after else True
    assert np.array_equal(
        after.sort_values("image_id")["psnr"], before.sort_values("image_id")["psnr"]
    )
    # with the outputs kept, the added metric is scored on the very images scored before
    run_benchmark(
        photo_folder, grid, ["jitter_test"], kept, metrics=["psnr"], save_images=True,
        progress=False,
    )  # fmt: skip
    filled = run_benchmark(
        photo_folder, grid, ["jitter_test"], kept, metrics=["psnr", "ssim"], progress=False
    )
    assert (filled.rows_filled, filled.filled_from_saved, len(filled.failures)) == (6, 6, 0)


def test_shards_merge_their_images_into_one_spec(photo_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = run_benchmark(photo_folder, _grid(), ["identity"], run, shard="0/2", progress=False)
    second = run_benchmark(photo_folder, _grid(), ["identity"], run, shard="1/2", progress=False)
    assert first.rows_written + second.rows_written == 12 and second.rows_skipped == 0
    assert second.added == ["1 image(s)"]
    spec = RunSpec.from_dict(read_run_info(run)["spec"])
    assert sorted(dict(spec.corpus.images)) == ["astronaut", "chelsea", "coffee"]
    whole = run_benchmark(photo_folder, _grid(), ["identity"], run, progress=False)
    assert (whole.rows_written, whole.rows_skipped, whole.added) == (0, 12, [])


def test_a_retrained_sdxl_lora_is_refused(
    tiny_sdxl: Path, tiny_loras: dict[str, Path], tmp_path: Path
) -> None:
    """The SDXL restorer's files (base folder, LoRA) are in the spec: the same LoRA path with
    other weights behind it refuses the run before any work."""
    lora = tmp_path / "lora.safetensors"
    shutil.copy(tiny_loras["scene"], lora)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(corpus / "grey.png")
    spec = (
        f"sdxl:base={tiny_sdxl},lora=scene={lora}:0.8,preset=fast,steps=1,strength=1.0,min_side=0"
    )
    run = tmp_path / "run"
    grid = Grid("one", ["gaussian_blur"], [1])
    first = run_benchmark(corpus, grid, [spec], run, device="cpu", progress=False)
    assert (first.rows_written, len(first.failures)) == (1, 0)
    shutil.copy(tiny_loras["face"], lora)  # retrained: same path, other weights
    with pytest.raises(SpecConflictError, match=rf"the file behind {lora} changed"):
        run_benchmark(corpus, grid, [spec], run, device="cpu", progress=False)
    assert len(load_results(run)) == 1
