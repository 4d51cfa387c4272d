"""The command line, as a user types it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from restorelab.app.cli import main
from restorelab.benchmark.metrics import create_metric
from restorelab.degradations import degrade
from restorelab.results import load_results


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_score_json(runner: CliRunner, tmp_path: Path, astronaut: np.ndarray) -> None:
    Image.fromarray(astronaut).save(tmp_path / "ref.png")
    Image.fromarray(degrade(astronaut, "gaussian_blur", 1)).save(tmp_path / "dist.png")
    result = runner.invoke(
        main,
        [
            "score",
            str(tmp_path / "ref.png"),
            str(tmp_path / "dist.png"),
            "--metrics",
            "psnr,ssim",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert set(values) == {"psnr", "ssim"}
    assert 20 < values["psnr"] < 50 and 0 < values["ssim"] < 1


def test_score_identical_images_and_errors(
    runner: CliRunner, tmp_path: Path, astronaut: np.ndarray
) -> None:
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    same = runner.invoke(
        main, ["score", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--json"]
    )
    assert json.loads(same.output) == {"psnr": None, "ssim": 1.0}
    (tmp_path / "bad.png").write_bytes(b"nope")
    bad = runner.invoke(main, ["score", str(tmp_path / "a.png"), str(tmp_path / "bad.png")])
    assert bad.exit_code == 1
    assert "bad.png: not a recognised image format" in bad.output
    unknown = runner.invoke(
        main, ["score", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--metrics", "psnrr"]
    )
    assert unknown.exit_code == 1 and "Did you mean 'psnr'" in unknown.output


def test_bench_then_resume(
    runner: CliRunner, photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    args = [
        "bench",
        "--corpus",
        str(photo_folder),
        "--grid",
        str(tiny_grid_file),
        "--restorer",
        "identity",
        "--restorer",
        "wavelet",
        "--out",
        str(tmp_path / "run"),
    ]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "reused 0 finished rows, added 24 rows, refused nothing" in first.output
    again = runner.invoke(main, args)
    assert "reused 24 finished rows, added 0 rows" in again.output
    assert len(load_results(tmp_path / "run")) == 24


def test_bench_bad_grid_is_one_clear_line(
    runner: CliRunner, photo_folder: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        main,
        [
            "bench",
            "--corpus",
            str(photo_folder),
            "--grid",
            "nope",
            "--restorer",
            "identity",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1
    assert "no grid file 'nope'" in result.output and "Traceback" not in result.output


def test_curate(runner: CliRunner, photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    config = tmp_path / "small.yaml"
    # 96-px test photos: their fine texture reads as noise at that size
    config.write_text("filters:\n  max_noise_sigma: null\n", encoding="utf-8")
    result = runner.invoke(
        main,
        [
            "curate",
            str(photo_folder),
            "--out",
            str(out),
            "--min-side",
            "64",
            "--all",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "kept 3, rejected 0" in result.output
    assert len((out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    assert (out / "README.md").is_file()
    short = runner.invoke(
        main,
        [
            "curate",
            str(photo_folder),
            "--out",
            str(tmp_path / "t"),
            "--min-side",
            "64",
            "--target",
            "5",
            "--config",
            str(config),
        ],
    )
    assert "shortfall: 2 fewer than the target 5 passed" in short.output
    bad = runner.invoke(
        main,
        ["curate", str(photo_folder), "--out", str(tmp_path / "x"), "--captioner", str(tmp_path)],
    )
    assert bad.exit_code == 1 and "Traceback" not in bad.output


def test_doctor_says_what_is_missing_and_how(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("RESTORELAB_SDXL_BASE", raising=False)
    result = runner.invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "[system]" in result.output and "[weights]" in result.output
    assert "sdxl-base" in result.output and "huggingface-cli download" in result.output
    assert "alexnet-owt-7be5be79.pth" in result.output
    # a present checkpoint is reported as found
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth").write_bytes(b"x")
    found = runner.invoke(main, ["doctor"])
    line = next(ln for ln in found.output.splitlines() if "lpips-alex-backbone" in ln)
    assert line.strip().startswith("ok")


def test_list(runner: CliRunner) -> None:
    result = runner.invoke(main, ["list"])
    assert result.exit_code == 0
    for word in ("gaussian_blur", "nlm", "ssim_y", "mini"):
        assert word in result.output


def test_demo_end_to_end(runner: CliRunner, tiny_grid_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(
        main,
        [
            "demo",
            "--out",
            str(out),
            "--grid",
            str(tiny_grid_file),
            "--max-side",
            "80",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "curated 8 images" in result.output
    assert "4 rejected" in result.output
    assert f"dashboard {out / 'run'}" in result.output
    frame = load_results(out / "run")
    # 8 photos × 2 degradations × 2 severities × 5 restorers, all finite
    assert len(frame) == 8 * 2 * 2 * 5
    assert np.isfinite(frame["psnr"]).all()


def test_report(
    runner: CliRunner, photo_folder: Path, tiny_grid_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    runner.invoke(
        main,
        [
            "bench",
            "--corpus",
            str(photo_folder),
            "--grid",
            str(tiny_grid_file),
            "--restorer",
            "identity",
            "--restorer",
            "tv",
            "--out",
            str(run),
        ],
    )
    result = runner.invoke(
        main,
        ["report", str(run), "--vs", "tv", "identity", "--threshold", "psnr=20", "--n-boot", "200"],
    )
    assert result.exit_code == 0, result.output
    assert "gaussian_noise · psnr" in result.output and "[" in result.output
    assert (run / "report" / "summary.parquet").is_file()
    assert (run / "report" / "paired_tv_vs_identity.parquet").is_file()
    bad = runner.invoke(main, ["report", str(run), "--vs", "tv", "nope"])
    assert bad.exit_code == 1 and "nope" in bad.output


def test_bench_pairs_cmd_restorer_and_saved_images(
    runner: CliRunner, photos: dict, tmp_path: Path
) -> None:
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    lq.mkdir()
    gt.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(gt / f"{name}.png")
        Image.fromarray(image[::2, ::2]).save(lq / f"{name}x2.png")  # ×2 real-LR style names
    script = tmp_path / "copy.py"
    script.write_text("import shutil, sys\nshutil.copyfile(sys.argv[1], sys.argv[2])\n", "utf-8")
    run = tmp_path / "run"
    result = runner.invoke(
        main,
        [
            "bench",
            "--pairs",
            str(lq),
            str(gt),
            "--restorer",
            "identity",
            "--restorer",
            f"cmd:{sys.executable} {script} {{in}} {{out}}",
            "--out",
            str(run),
            "--save-images",
        ],
    )
    assert result.exit_code == 0, result.output
    frame = load_results(run)
    assert set(frame["degradation"]) == {"paired"} and len(frame) == 6
    assert (frame["error"] == "").all()
    assert np.isfinite(frame["psnr"]).all()
    assert all((run / f).is_file() for f in frame["restored_file"])
    both = runner.invoke(
        main,
        [
            "bench",
            "--pairs",
            str(lq),
            str(gt),
            "--corpus",
            str(gt),
            "--restorer",
            "identity",
            "--out",
            str(run),
        ],
    )
    assert both.exit_code == 2 and "--pairs replaces --corpus" in both.output


def test_score_folders(runner: CliRunner, photos: dict, tmp_path: Path) -> None:
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(ref / f"{name}.png")
        Image.fromarray(degrade(image, "gaussian_blur", 2)).save(dist / f"{name}.png")
    Image.fromarray(photos["coffee"]).save(ref / "only_in_ref.png")
    result = runner.invoke(
        main,
        ["score", str(ref), str(dist), "--metrics", "psnr,ssim_y", "--crop-border", "4", "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n"] == 3 and out["unmatched"] == [f"ref {ref / 'only_in_ref.png'}"]
    assert {row["pair"] for row in out["pairs"]} == set(photos)
    mean = sum(row["psnr"] for row in out["pairs"]) / 3
    assert out["mean"]["psnr"] == pytest.approx(mean)
    table = runner.invoke(main, ["score", str(ref), str(dist)])
    assert "mean" in table.output and table.exit_code == 0
    mixed = runner.invoke(main, ["score", str(ref), str(dist / "coffee.png")])
    assert mixed.exit_code == 2 and "both be files or both be folders" in mixed.output


def test_metric_specs_on_the_command_line(
    runner: CliRunner, tmp_path: Path, astronaut: np.ndarray
) -> None:
    from restorelab.app.cli import _split_specs

    assert _split_specs("psnr, lpips:net=vgg,weights_dir=/w ,ssim") == [
        "psnr",
        "lpips:net=vgg,weights_dir=/w",
        "ssim",
    ]
    blurred = degrade(astronaut, "gaussian_blur", 3)
    Image.fromarray(astronaut).save(tmp_path / "clean.png")
    Image.fromarray(blurred).save(tmp_path / "blurred.png")
    spec = "consistency:degradation=gaussian_blur,severity=3"
    # consistency's reference is the degraded input: the clean image explains it exactly
    result = runner.invoke(
        main,
        [
            "score",
            str(tmp_path / "blurred.png"),
            str(tmp_path / "clean.png"),
            "--json",
            "--metrics",
            f"psnr,{spec},psnr:crop_border=8",
            "--crop-border",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    values = json.loads(result.stdout)
    assert list(values) == ["psnr", spec, "psnr:crop_border=8"]
    assert values[spec] is None  # infinite: JSON null
    expected = create_metric("psnr", crop_border=4)(blurred, astronaut)
    assert values["psnr"] == pytest.approx(expected)  # --crop-border applies where not given
    assert values["psnr:crop_border=8"] == pytest.approx(
        create_metric("psnr", crop_border=8)(blurred, astronaut)
    )
    twice = runner.invoke(
        main,
        [
            "score",
            str(tmp_path / "clean.png"),
            str(tmp_path / "clean.png"),
            "--metrics",
            "psnr,psnr",
        ],
    )
    assert twice.exit_code == 1 and "listed twice" in twice.output
