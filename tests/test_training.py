"""LoRA training (``restorelab train-lora``) on a tiny random-weight SDXL and a tiny corpus
curated from scikit-image photos: subsets, captions, buckets, the prior and restore
objectives, the diffusers-format output, checkpoints and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data

from restorelab.app.cli import main
from restorelab.benchmark.training import (
    SubsetError,
    TrainConfig,
    latest_checkpoint,
    parse_subset,
    select_examples,
    train_lora,
)
from restorelab.benchmark.training.data import (
    TrainingDataset,
    assign_bucket,
    crop_box,
    sdxl_buckets,
)
from restorelab.benchmark.training.lq import LQCell, make_lq

ROOT = Path(__file__).resolve().parents[1]

#: name → (caption, source folder): two portraits (the astronaut has a face) and two scenes.
PHOTOS = {
    "astronaut": ("An astronaut in an orange suit in front of a flag.", "portraits"),
    "coffee": ("A cup of coffee with latte art on a red table.", "scenes"),
    "chelsea": ("A tabby cat looking to the side.", "portraits"),
    "rocket": ("A rocket on the launch pad under a blue sky.", "scenes"),
}


def _photo(name: str) -> Image.Image:
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    image.thumbnail((96, 96), Image.Resampling.LANCZOS)
    return image


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four photos with sidecar captions in two source folders, run through ``curate``."""
    from restorelab.curation import CurationConfig, curate

    root = tmp_path_factory.mktemp("train_corpus")
    for name, (caption, folder) in PHOTOS.items():
        (root / "src" / folder).mkdir(parents=True, exist_ok=True)
        _photo(name).save(root / "src" / folder / f"{name}.png")
        (root / "src" / folder / f"{name}.txt").write_text(caption, encoding="utf-8")
    quality = (
        "min_sharpness",
        "max_noise_sigma",
        "min_jpeg_quality",
        "max_clipped_dark",
        "max_clipped_bright",
        "min_entropy",
    )
    config = CurationConfig(filters={"min_side": 32, **dict.fromkeys(quality)}, target=None)
    result = curate([root / "src"], root / "corpus", config, progress=False)
    assert result.kept == 4
    # curation records no face flag without a face quota: add one, as a user's tagger would
    path = root / "corpus" / "metadata.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row["face"] = "astronaut" in row["source"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root / "corpus"


def _config(corpus: Path, base: Path, out: Path, **changes) -> TrainConfig:
    options = {
        "corpus": str(corpus),
        "base": str(base),
        "out": str(out),
        "steps": 3,
        "batch_size": 2,
        "resolution": 32,
        "rank": 4,
        "lr": 1e-2,
        "mixed_precision": "no",
        "checkpoint_every": 2,
    }
    return TrainConfig(**{**options, **changes})


def _generate(base: Path, lora: Path | None = None) -> np.ndarray:
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(base, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(lora)
    generator = torch.Generator().manual_seed(0)
    return pipe(
        "a photo of a cat",
        num_inference_steps=2,
        height=32,
        width=32,
        generator=generator,
        output_type="np",
    ).images[0]


# --- subsets and corpus rows ---------------------------------------------------------------


ROWS = [
    {"face": True, "source": "/a/portraits/1.jpg", "sharpness": 120.0, "category": "x"},
    {"face": "false", "source": "/a/scenes/2.jpg", "sharpness": 40},
    {"source": "/b/portraits/3.jpg", "sharpness": None},
]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("face == true", [True, False, False]),
        ("face", [True, False, False]),
        ("not face", [False, True, True]),
        ("source ~ 'portraits/'", [True, False, True]),
        ("source !~ 'portraits/'", [False, True, False]),
        ("face == true and source ~ 'portraits/'", [True, False, False]),
        ("face == true || sharpness < 50", [True, True, False]),
        ("(face or sharpness >= 100) && not source ~ '^/b/'", [True, False, False]),
        ("sharpness == null", [False, False, True]),
        ("face != true", [False, True, True]),
        ('category in ["x", "y"]', [True, False, False]),
        ("category not in ['x']", [False, True, True]),
        ("sharpness > 1e1", [True, True, False]),
        ("face == 1", [True, False, False]),
    ],
)
def test_subset_expressions(expression: str, expected: list[bool]) -> None:
    predicate = parse_subset(expression)
    assert [predicate(row) for row in ROWS] == expected


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("", "empty"),
        ("face ==", "expected a value"),
        ("(face == true", r"expected '\)'"),
        ("__import__('os').system('true')", "unexpected"),
        ("face == true extra", "unexpected token"),
        ("sharpness < true", "not ordered"),
        ("source ~ '('", "bad pattern"),
        ("category in 'x'", r"needs a \[list\]"),
        ("face $ 1", "unexpected character"),
    ],
)
def test_subset_errors(expression: str, match: str) -> None:
    with pytest.raises(SubsetError, match=match):
        parse_subset(expression)


def test_subset_picks_the_right_rows(curated: Path) -> None:
    def names(selection) -> list[str]:
        return sorted(Path(e.key).stem.rsplit("-", 1)[0] for e in selection.examples)

    everything = select_examples(curated)
    assert names(everything) == sorted(PHOTOS)
    assert everything.total == 4
    assert names(select_examples(curated, "face == true")) == ["astronaut"]
    assert names(select_examples(curated, "source ~ 'portraits/'")) == ["astronaut", "chelsea"]
    assert names(select_examples(curated, "not source ~ 'portraits/'")) == ["coffee", "rocket"]
    scenes = select_examples(curated, "source ~ 'scenes/'")
    assert scenes.fingerprint != everything.fingerprint
    assert scenes.fingerprint == select_examples(curated, "source ~ 'scenes/'").fingerprint
    with pytest.raises(ValueError, match="uses colour, which no row"):
        select_examples(curated, "colour == 'red'")
    with pytest.raises(ValueError, match="selects none of the 4 images"):
        select_examples(curated, "source ~ 'nowhere/'")


def test_face_column_derived_from_curation_category(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _photo("coffee").save(tmp_path / f"{name}.png")
    rows = [
        {"file_name": "a.png", "text": "one", "category": "face"},
        {"file_name": "b.png", "text": "two", "category": "no_face"},
    ]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [e.key for e in select_examples(tmp_path, "face == true").examples] == ["a.png"]


def test_missing_captions_are_refused_with_a_count(tmp_path: Path, tiny_sdxl: Path) -> None:
    rows = []
    for i, name in enumerate(PHOTOS):
        _photo(name).save(tmp_path / f"{name}.png")
        rows.append({"file_name": f"{name}.png", "text": "a photo" if i == 0 else ""})
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="3 of 4 selected images have no caption"):
        select_examples(tmp_path)
    assert select_examples(tmp_path, allow_empty_captions=True).empty_captions == 3
    result = CliRunner().invoke(
        main,
        ["train-lora", "--corpus", str(tmp_path), "--base", str(tiny_sdxl), "--out", "x"],
    )
    assert result.exit_code == 1
    assert "Error: 3 of 4 selected images have no caption" in result.output
    assert "--allow-empty-captions" in result.output
    assert "Traceback" not in result.output


def test_missing_base_is_one_line(curated: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["train-lora", "--corpus", str(curated), "--base", str(tmp_path / "nope"), "--out", "x"],
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert str(tmp_path / "nope") in lines[0] and "huggingface-cli download" in lines[0]
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "model_index.json").write_text("{}")
    result = CliRunner().invoke(
        main,
        ["train-lora", "--corpus", str(curated), "--base", str(tmp_path / "partial"), "--out", "x"],
    )
    assert "lacks unet/config.json" in result.output


# --- buckets and crops ------------------------------------------------------------------------


def test_buckets_cover_sdxl_sizes() -> None:
    buckets = sdxl_buckets(1024)
    assert (1024, 1024) in buckets
    assert all(w % 64 == 0 and h % 64 == 0 for w, h in buckets)
    assert all(w * h <= 1024 * 1024 for w, h in buckets)
    assert all(max(w / h, h / w) <= 2.0 for w, h in buckets)
    assert assign_bucket(3000, 2000, buckets) == (1216, 832)  # 1.5 → nearest 1.46
    assert assign_bucket(500, 500, buckets) == (1024, 1024)


def test_crops_and_sdxl_conditioning(curated: Path) -> None:
    selection = select_examples(curated)
    dataset = TrainingDataset(selection.examples, resolution=64, seed=3)
    for index, example in enumerate(selection.examples):
        item = dataset[(5, index)]
        original = np.asarray(Image.open(example.path).convert("RGB"))
        assert item["original_size"] == original.shape[:2]
        target_h, target_w = item["target_size"]
        assert item["pixels"].shape == (3, target_h, target_w)
        assert (target_w, target_h) == assign_bucket(
            original.shape[1], original.shape[0], sdxl_buckets(64)
        )
        # the crop is where the time ids say it is, in the image scaled to cover the bucket
        (rw, rh), (top, left) = crop_box(
            original.shape[1], original.shape[0], (target_w, target_h), None
        )
        assert item["crop_top_left"] == dataset.crop_of(5, index)[1]
        top, left = item["crop_top_left"]
        resized = Image.fromarray(original).resize((rw, rh), Image.Resampling.LANCZOS)
        expected = np.asarray(resized)[top : top + target_h, left : left + target_w] / 255.0
        assert np.allclose(item["pixels"].permute(1, 2, 0).numpy(), expected, atol=1e-6)
        assert dataset[(5, index)]["crop_top_left"] == item["crop_top_left"]  # seeded
    square = TrainingDataset(selection.examples, resolution=64, buckets=False, seed=3)
    wide = next(i for i, (w, h) in enumerate(square.sizes) if w != h)
    moves = {square.crop_of(epoch, wide)[1] for epoch in range(20)}
    assert len(moves) > 1  # random crops move between epochs
    centred = TrainingDataset(selection.examples, resolution=64, center_crop=True, buckets=False)
    item = centred[(0, 0)]
    assert item["target_size"] == (64, 64)


# --- training ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prior_run(curated: Path, tiny_sdxl: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("prior") / "lora"
    seen: list[dict] = []
    result = train_lora(
        _config(curated, tiny_sdxl, out, sample_every=3, sample_steps=2),
        progress=False,
        on_batch=seen.append,
    )
    return result, seen


def test_prior_training_writes_a_loadable_lora(prior_run, tiny_sdxl: Path) -> None:
    result, seen = prior_run
    assert result.step == 3
    assert [s for s, _ in result.loss_history] == [1, 2, 3]
    assert all(np.isfinite(v) and v > 0 for _, v in result.loss_history)
    # batches of at most 2 from one aspect bucket each; time ids (orig h, w, top, left, h, w)
    assert len(seen) == 3 and all(b["lq"] is None for b in seen)
    for batch in seen:
        ids = batch["time_ids"]
        assert ids.shape[1] == 6 and 1 <= ids.shape[0] <= 2
        assert (ids[:, 4:] == ids[0, 4:]).all()
        assert tuple(ids[0, 4:].int().tolist()) == tuple(batch["pixels"].shape[-2:])
    from safetensors.torch import load_file

    state = load_file(result.lora)
    assert state and all(k.startswith("unet.") for k in state)
    assert any(".lora.down." in k for k in state) and any(".lora.up." in k for k in state)
    base_image = _generate(tiny_sdxl)
    adapted = _generate(tiny_sdxl, result.out)
    assert np.abs(adapted - base_image).mean() > 1e-4


def test_prior_training_log_plot_and_samples(prior_run, curated: Path) -> None:
    result, _ = prior_run
    record = json.loads((result.out / "training.json").read_text(encoding="utf-8"))
    assert record["step"] == 3 and record["finished"] is True
    assert record["corpus_fingerprint"] == select_examples(curated).fingerprint
    assert record["images"] == 4 and record["subset"] is None
    assert record["options"]["rank"] == 4 and record["options"]["objective"] == "prior"
    assert [s for s, _ in record["loss_history"]] == [1, 2, 3]
    assert record["seconds"] > 0 and record["optimizer"] == "torch.optim.AdamW"
    assert record["versions"]["peft"]
    with Image.open(result.out / "loss.png") as plot:
        assert plot.format == "PNG" and plot.width > 100
    samples = sorted((result.out / "samples" / "step-000003").glob("*.png"))
    assert [p.name for p in samples] == ["00.png", "01.png"]
    assert latest_checkpoint(result.out).name == "step-000003"
    assert sorted(p.name for p in (result.out / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000003",
    ]


def test_eight_bit_adam_falls_back_on_cpu(curated: Path, tiny_sdxl: Path, tmp_path: Path) -> None:
    result = train_lora(
        _config(curated, tiny_sdxl, tmp_path / "o", steps=1, use_8bit_adam=True, subset="face"),
        progress=False,
    )
    assert any("8-bit Adam needs bitsandbytes on a CUDA device" in n for n in result.notes)
    record = json.loads((tmp_path / "o" / "training.json").read_text(encoding="utf-8"))
    assert record["images"] == 1 and record["subset"] == "face"


def test_dora_and_text_encoder_lora_load_in_diffusers(
    curated: Path, tiny_sdxl: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import load_file

    result = train_lora(
        _config(
            curated,
            tiny_sdxl,
            tmp_path / "dora",
            steps=1,
            dora=True,
            text_encoder_lora=True,
            gradient_checkpointing=True,
            checkpoint_every=0,
        ),
        progress=False,
    )
    state = load_file(result.lora)
    assert {k.split(".")[0] for k in state} == {"unet", "text_encoder", "text_encoder_2"}
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl, local_files_only=True)
    pipe.load_lora_weights(result.out)
    for prefix, model in (("unet.", pipe.unet), ("text_encoder.", pipe.text_encoder)):
        name, param = next((n, p) for n, p in model.named_parameters() if "magnitude" in n)
        key = prefix + name.replace(".default_0", "").replace(".weight", "")
        stored = next(v for k, v in state.items() if k.startswith(key))
        assert torch.equal(param.detach().float(), stored.float())


def test_cache_latents_reuses_files(curated: Path, tiny_sdxl: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    config = _config(
        curated, tiny_sdxl, tmp_path / "a", steps=2, cache_latents=True, cache_dir=str(cache)
    )
    first = train_lora(config, progress=False)
    files = sorted(p.name for p in cache.rglob("*.pt"))
    assert len(list((cache / "latents").glob("*.pt"))) == 4
    assert len(list((cache / "text").glob("*.pt"))) == 5  # 4 captions + the empty prompt
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.pt")}
    config.out = str(tmp_path / "b")
    second = train_lora(config, progress=False)
    assert sorted(p.name for p in cache.rglob("*.pt")) == files
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.pt")} == stamps
    assert [v for _, v in second.loss_history] == pytest.approx(
        [v for _, v in first.loss_history], rel=1e-5
    )


def test_resume_after_kill_continues_the_same_curve(
    curated: Path, tiny_sdxl: Path, tmp_path: Path
) -> None:
    steps = 6
    reference = train_lora(
        _config(curated, tiny_sdxl, tmp_path / "straight", steps=steps), progress=False
    )
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "restorelab",
        "train-lora",
        "--corpus",
        str(curated),
        "--base",
        str(tiny_sdxl),
        "--out",
        str(out),
        "--steps",
        "50",
        "--batch-size",
        "2",
        "--resolution",
        "32",
        "--rank",
        "4",
        "--lr",
        "0.01",
        "--mixed-precision",
        "no",
        "--checkpoint-every",
        "2",
        "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while latest_checkpoint(out) is None:
            if process.poll() is not None:
                pytest.fail(f"training exited early: {process.stdout.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("no checkpoint within 240 s")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    checkpoint = latest_checkpoint(out)
    done = int(checkpoint.name.split("-")[1])
    assert 2 <= done < steps and not (out / "pytorch_lora_weights.safetensors").exists()
    config = _config(curated, tiny_sdxl, out, steps=steps)
    with pytest.raises(ValueError, match="pass --resume"):
        train_lora(config, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume with other options \(lr"):
        train_lora(_config(curated, tiny_sdxl, out, steps=steps, lr=1e-3, resume=True))
    config.resume = True
    resumed = train_lora(config, progress=False)
    assert resumed.resumed_from == done and resumed.step == steps
    assert f"at Adam step {done}" in " ".join(resumed.notes)  # optimizer state restored
    assert [s for s, _ in resumed.loss_history] == list(range(1, steps + 1))
    # data order, crops, noise and timesteps are functions of (seed, step): the same curve
    assert [v for _, v in resumed.loss_history] == pytest.approx(
        [v for _, v in reference.loss_history], rel=1e-4
    )
    record = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert record["resumed_from"] == done and record["step"] == steps


def test_restore_objective_feeds_zoo_degraded_lq(
    curated: Path, tiny_sdxl: Path, tiny_controlnet: Path, tmp_path: Path
) -> None:
    from restorelab.degradations import degrade
    from restorelab.degradations.grid import load_grid

    grid_file = tmp_path / "lq.yaml"
    grid_file.write_text(
        "name: lq\ndegradations: [gaussian_blur, gaussian_noise]\nseverities: [2, 4]\nseeds: [0]\n",
        encoding="utf-8",
    )
    grid = load_grid(grid_file)
    weights = sorted(tiny_controlnet.glob("*.safetensors"))[0]
    before = weights.read_bytes()
    seen: list[dict] = []
    result = train_lora(
        _config(
            curated,
            tiny_sdxl,
            tmp_path / "restore",
            steps=2,
            resolution=64,
            objective="restore",
            controlnet=str(tiny_controlnet),
            lq_grid=str(grid_file),
            checkpoint_every=0,
            sample_every=2,
            sample_steps=1,
        ),
        progress=False,
        on_batch=seen.append,
    )
    samples = sorted(p.name for p in (tmp_path / "restore" / "samples" / "step-000002").glob("*"))
    assert samples == ["00.png", "00_lq.png", "01.png", "01_lq.png", "prompts.json"]
    assert all(np.isfinite(v) for _, v in result.loss_history)
    assert weights.read_bytes() == before  # the ControlNet is frozen
    cells_seen = set()
    for batch in seen:
        clean, lq = batch["pixels"], batch["lq"]
        assert lq.shape == clean.shape and 0 <= float(lq.min()) <= float(lq.max()) <= 1
        for i, cell in enumerate(batch["lq_cells"]):
            cells_seen.add((cell.degradation, cell.severity))
            mse = float(((lq[i] - clean[i]) ** 2).mean())
            psnr = 10 * np.log10(1 / mse)
            assert 10 < psnr < 40, (cell, psnr)
            # it is the zoo's op: the same as the batched op alone, and close to numpy's
            again = make_lq(clean[i : i + 1], [cell], grid)
            assert torch.equal(again[0], lq[i])
            if cell.degradation == "gaussian_blur":
                image = (clean[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
                ref = degrade(image, cell.degradation, cell.severity, cell.seed) / 255.0
                err = float(((lq[i].permute(1, 2, 0).numpy() - ref) ** 2).mean())
                assert 10 * np.log10(1 / err) > 40
    assert len(cells_seen) >= 2  # cells vary per sample
    record = json.loads((tmp_path / "restore" / "training.json").read_text(encoding="utf-8"))
    assert record["options"]["objective"] == "restore" and record["controlnet"]


def test_numpy_path_lq_for_chains(curated: Path) -> None:
    from restorelab.degradations.grid import Grid

    grid = Grid(name="c", chains=["gaussian_blur:2+jpeg_compression:3"], severities=[1])
    clean = torch.rand(1, 3, 40, 48)
    lq = make_lq(clean, [LQCell("gaussian_blur:2+jpeg_compression:3", 0, 5)], grid)
    assert lq.shape == clean.shape and not torch.equal(lq, clean)


def test_restore_needs_a_controlnet(curated: Path, tiny_sdxl: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "train-lora",
            "--corpus",
            str(curated),
            "--base",
            str(tiny_sdxl),
            "--out",
            str(tmp_path / "x"),
            "--objective",
            "restore",
        ],
    )
    assert result.exit_code == 1 and "pass --controlnet PATH" in result.output
    result = CliRunner().invoke(
        main,
        [
            "train-lora",
            "--corpus",
            str(curated),
            "--base",
            str(tiny_sdxl),
            "--out",
            str(tmp_path / "x"),
            "--objective",
            "restore",
            "--controlnet",
            str(tmp_path / "nocn"),
        ],
    )
    assert result.exit_code == 1 and "ControlNet not found" in result.output


def test_csv_imagefolder_and_unreadable_images(tmp_path: Path) -> None:
    _photo("coffee").save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "metadata.csv").write_text(
        "file_name,caption,split\ngood.png,A cup.,a\nbroken.png,Broken.,b\n", encoding="utf-8"
    )
    selection = select_examples(tmp_path)
    assert [(e.key, e.caption) for e in selection.examples] == [
        ("broken.png", "Broken."),
        ("good.png", "A cup."),
    ]
    assert [e.key for e in select_examples(tmp_path, "split == 'a'").examples] == ["good.png"]
    dataset = TrainingDataset(selection.examples, resolution=32)
    assert [e.key for e in dataset.examples] == ["good.png"] and len(dataset) == 1
    assert dataset.skipped[0][0] == "broken.png"
    with pytest.raises(ValueError, match="none of the 1 images opens"):
        TrainingDataset(selection.examples[:1], resolution=32)


def test_two_processes_under_torchrun(curated: Path, tiny_sdxl: Path, tmp_path: Path) -> None:
    """Two CPU processes (gloo): each trains on its shard, gradients are averaged by DDP."""
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free port: other test runs may use torchrun at the same time
        "--nproc_per_node",
        "2",
        "-m",
        "restorelab",
        "train-lora",
        "--corpus",
        str(curated),
        "--base",
        str(tiny_sdxl),
        "--out",
        str(out),
        "--steps",
        "2",
        "--resolution",
        "32",
        "--rank",
        "4",
        "--mixed-precision",
        "no",
        "--checkpoint-every",
        "2",
        "--text-encoder-lora",
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    record = json.loads((out / "training.json").read_text(encoding="utf-8"))
    assert record["processes"] == 2 and record["images_per_step"] == 2
    assert record["step"] == 2 and all(np.isfinite(v) for _, v in record["loss_history"])
    assert (out / "checkpoints" / "step-000002" / "lora_0.safetensors").is_file()


def test_bf16_frozen_weights_and_fp32_lora(curated: Path, tiny_sdxl: Path, tmp_path: Path) -> None:
    result = train_lora(
        _config(
            curated,
            tiny_sdxl,
            tmp_path / "bf16",
            steps=1,
            mixed_precision="bf16",
            checkpoint_every=0,
        ),
        progress=False,
    )
    record = json.loads((result.out / "training.json").read_text(encoding="utf-8"))
    assert record["mixed_precision"] == "bf16"
    assert record["weight_dtypes"] == {"frozen": ["torch.bfloat16"], "trainable": ["torch.float32"]}
    assert np.isfinite(result.loss_history[0][1])
    from safetensors.torch import load_file

    assert {v.dtype for v in load_file(result.lora).values()} == {torch.float32}


def test_ctrl_c_saves_the_last_finished_step(
    curated: Path, tiny_sdxl: Path, tmp_path: Path
) -> None:
    def interrupt(batch: dict) -> None:
        if batch["step"] == 2:  # two steps finished, the third begins
            raise KeyboardInterrupt

    out = tmp_path / "ctrl_c"
    config = _config(curated, tiny_sdxl, out, steps=3, checkpoint_every=0)
    with pytest.raises(KeyboardInterrupt):
        train_lora(config, progress=False, on_batch=interrupt)
    assert latest_checkpoint(out).name == "step-000002"
    config.resume = True
    resumed = train_lora(config, progress=False)
    assert resumed.resumed_from == 2 and resumed.step == 3
    assert [s for s, _ in resumed.loss_history] == [1, 2, 3]


def test_plain_folder_with_sidecar_captions(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        _photo("chelsea").save(tmp_path / f"{name}.jpg")
    (tmp_path / "a.txt").write_text("A cat.\n", encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps({"caption": "Another cat."}), encoding="utf-8")
    with pytest.raises(ValueError, match="1 of 3 selected images have no caption"):
        select_examples(tmp_path)
    selection = select_examples(tmp_path, allow_empty_captions=True)
    assert [e.caption for e in selection.examples] == ["A cat.", "Another cat.", ""]


def test_trained_lora_is_used_by_restorelab_restore(
    prior_run, tiny_sdxl: Path, tmp_path: Path
) -> None:
    result, _ = prior_run
    _photo("astronaut").resize((64, 64)).save(tmp_path / "in.png")
    common = ["--base", str(tiny_sdxl), "--steps", "2", "--strength", "1.0", "--min-side", "0"]
    common += ["--colour-fix", "none", "--device", "cpu", "--prompt", "a photo"]
    outputs = {}
    for name, extra in (("plain", []), ("lora", ["--lora", f"trained={result.lora}:1.0"])):
        out = tmp_path / f"{name}.png"
        done = CliRunner().invoke(
            main, ["restore", str(tmp_path / "in.png"), str(out), *common, *extra]
        )
        assert done.exit_code == 0, done.output
        outputs[name] = np.asarray(Image.open(out), dtype=np.float64)
    assert outputs["plain"].shape == outputs["lora"].shape == (64, 64, 3)
    assert np.abs(outputs["plain"] - outputs["lora"]).mean() > 0.01
