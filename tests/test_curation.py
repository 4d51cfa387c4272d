"""Curation end to end, on folders made from scikit-image's photos: planted duplicates
(resized, re-encoded, cropped), degraded copies, broken and odd files, captions, exact-N
selection, the cache, the exported imagefolder and its dataset card."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from test_captioner import tiny_blip  # noqa: F401  (fixture)

from restorelab.config import ConfigError
from restorelab.curation import CurationConfig, CurationError, curate, iter_sources
from restorelab.imageio import decode_image, pixel_hash, read_image

#: Filters for these ~0.2-0.4 MP test photos: SDXL's 1024 px would reject them all.
SMALL = {"min_side": 200}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _rejected(out: Path) -> dict[str, str]:
    with open(out / "rejected.csv", encoding="utf-8") as handle:
        return {Path(r["source"]).name: r["reason"] for r in csv.DictReader(handle)}


def _kept(out: Path) -> dict[str, dict]:
    return {Path(r["source"]).name: r for r in _rows(out / "metadata.jsonl")}


def _save_jpeg(image: np.ndarray, path: Path, quality: int, **kwargs) -> None:
    Image.fromarray(image).save(path, format="JPEG", quality=quality, **kwargs)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    pil = Image.fromarray(image)
    return np.asarray(
        pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.LANCZOS)
    )


PHOTOS = {
    "astronaut": data.astronaut,
    "coffee": data.coffee,
    "chelsea": data.chelsea,
    "rocket": data.rocket,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good photos, planted duplicates, degraded copies and broken files."""
    src = tmp_path_factory.mktemp("library")
    (src / "good").mkdir()
    (src / "planted").mkdir()
    photos = {name: make() for name, make in PHOTOS.items()}
    for name, image in photos.items():
        Image.fromarray(image).save(src / "good" / f"{name}.png")
    (src / "good" / "astronaut.txt").write_text("An astronaut in an orange suit.", "utf-8")
    (src / "good" / "coffee.json").write_text(json.dumps({"caption": "A cup of coffee."}), "utf-8")
    astro = photos["astronaut"]
    # near duplicates of the astronaut: a third the size re-encoded at q60, a 4 % crop
    _save_jpeg(_resize(astro, 1 / 3), src / "planted" / "astronaut_third_q60.jpg", 60)
    h, w = astro.shape[:2]
    crop = astro[int(0.04 * h) : int(0.96 * h), int(0.04 * w) : int(0.96 * w)]
    Image.fromarray(crop).save(src / "planted" / "astronaut_crop4.png")
    Image.fromarray(astro).save(src / "planted" / "astronaut_copy.bmp")  # exact duplicate
    # degraded copies of other photos
    import cv2

    chelsea = photos["chelsea"]
    Image.fromarray(cv2.GaussianBlur(chelsea, (0, 0), 2.0)).save(src / "planted" / "blurry.png")
    noisy = np.clip(chelsea + np.random.default_rng(0).normal(0, 12, chelsea.shape), 0, 255)
    Image.fromarray(noisy.astype(np.uint8)).save(src / "planted" / "noisy.png")
    _save_jpeg(photos["rocket"], src / "planted" / "rocket_q40.jpg", 40)
    # broken and odd files
    (src / "planted" / "empty.jpg").write_bytes(b"")
    (src / "planted" / "not_an_image.png").write_text("hello", "utf-8")
    buffer = io.BytesIO()
    _save_jpeg(photos["coffee"], buffer, 95)
    (src / "planted" / "truncated.jpg").write_bytes(buffer.getvalue()[:5000])
    Image.fromarray(np.full((1, 900, 3), 128, np.uint8)).save(src / "planted" / "strip.png")
    return src


@pytest.fixture(scope="module")
def curated(library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("curated")
    curate([library], out, CurationConfig(filters=SMALL, target=None), progress=False)
    return out


def test_every_input_is_accounted_for_exactly_once(library: Path, curated: Path) -> None:
    inputs = {item.source for item in iter_sources([library])}
    kept = {r["source"] for r in _rows(curated / "metadata.jsonl")}
    with open(curated / "rejected.csv", encoding="utf-8") as handle:
        rejected = [r["source"] for r in csv.DictReader(handle)]
    assert len(inputs) == 15
    assert kept.isdisjoint(rejected) and len(rejected) == len(set(rejected))
    assert kept | set(rejected) == inputs


def test_good_photos_stay_and_duplicates_keep_their_best(curated: Path) -> None:
    kept = _kept(curated)
    assert set(kept) == {f"{name}.png" for name in PHOTOS}
    reasons = _rejected(curated)
    assert reasons["astronaut_copy.bmp"].startswith("exact duplicate: same pixels as ")
    assert reasons["astronaut_copy.bmp"].endswith("astronaut.png")
    for copy in ("astronaut_third_q60.jpg", "astronaut_crop4.png"):
        assert reasons[copy].startswith("near duplicate: of "), reasons[copy]
        assert reasons[copy].split(";")[0].endswith("good/astronaut.png")


def test_degraded_and_broken_files_are_rejected_with_reasons(curated: Path) -> None:
    reasons = _rejected(curated)
    # degraded copies are near duplicates of their originals, and say what else is wrong
    assert reasons["blurry.png"].startswith("near duplicate: of ")
    assert "; also blurry: sharpness" in reasons["blurry.png"]
    assert reasons["noisy.png"].startswith("near duplicate: of ")
    assert "noisy: noise_sigma" in reasons["noisy.png"]
    assert "compressed: jpeg_quality 40 < 85" in reasons["rocket_q40.jpg"]
    assert reasons["empty.jpg"] == "undecodable: empty file"
    assert reasons["not_an_image.png"] == "undecodable: not a recognised image format"
    assert reasons["truncated.jpg"].startswith("undecodable: cannot decode")
    assert "too small: short_side 1 < 200" in reasons["strip.png"]


def test_signals_are_recorded_for_kept_and_rejected(curated: Path) -> None:
    kept = _kept(curated)["rocket.png"]
    assert kept["width"] == 640 and kept["height"] == 427
    assert kept["sharpness"] > 1.6 and kept["noise_sigma"] < 3 and kept["jpeg_quality"] is None
    with open(curated / "rejected.csv", encoding="utf-8") as handle:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(handle)}
    assert float(rows["blurry.png"]["sharpness"]) < 1.6
    assert rows["rocket_q40.jpg"]["jpeg_quality"] == "40"
    assert rows["empty.jpg"]["sharpness"] == ""


def test_captions_from_sidecars_and_the_imagefolder_loads(curated: Path) -> None:
    datasets = pytest.importorskip("datasets")
    kept = _kept(curated)
    assert kept["astronaut.png"]["text"] == "An astronaut in an orange suit."
    assert kept["coffee.png"]["text"] == "A cup of coffee."
    ds = datasets.load_dataset("imagefolder", data_dir=str(curated), split="train")
    assert ds.num_rows == 5
    assert "An astronaut in an orange suit." in ds["text"]
    assert {"image", "text", "source", "sharpness", "noise_sigma"} <= set(ds.column_names)


def test_dataset_card(curated: Path) -> None:
    card = (curated / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlicense: other\n")
    assert "| min_side | short_side | >= | 200 |" in card
    assert "| min_sharpness | sharpness | >= | 1.6 |" in card
    assert "| undecodable | 3 |" in card
    assert "| near duplicate | 5 |" in card  # 2 astronaut copies, 3 degraded copies
    assert "## Signal distributions (kept images)" in card and "| sharpness | 5 |" in card
    summary = json.loads((curated / "curation.json").read_text(encoding="utf-8"))
    assert summary["inputs"] == 15 and summary["kept"] == 5


def test_exact_n_selection_is_deterministic(library: Path, tmp_path: Path) -> None:
    config = CurationConfig(filters=SMALL, target=3)
    first = curate([library], tmp_path / "a", config, progress=False)
    second = curate([library], tmp_path / "b", config, progress=False)
    assert first.kept == 3 and first.shortfall == 0
    assert sorted(_kept(tmp_path / "a")) == sorted(_kept(tmp_path / "b"))
    not_selected = [r for r in _rejected(tmp_path / "a").values() if r.startswith("not selected")]
    assert len(not_selected) == 2
    assert first.cache_hits == second.cache_hits == 0  # each out folder has its own cache
    again = curate([library], tmp_path / "a", config, progress=False)
    assert again.cache_hits == 15  # broken files too: their errors are cached
    assert sorted(_kept(tmp_path / "a")) == sorted(_kept(tmp_path / "b"))


def test_shortfall_is_reported(library: Path, tmp_path: Path) -> None:
    result = curate(
        [library], tmp_path / "out", CurationConfig(filters=SMALL, target=9), progress=False
    )
    assert result.kept == 5 and result.shortfall == 4
    assert "**Shortfall:** only 5 images passed, 4 fewer" in (
        tmp_path / "out" / "README.md"
    ).read_text("utf-8")


def test_a_killed_run_resumes_from_its_cache(library: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    partial = curate(
        [library / "good"],
        tmp_path / "first",
        CurationConfig(filters=SMALL),
        cache_dir=cache,
        progress=False,
    )
    assert partial.cache_hits == 0
    full = curate(
        [library],
        tmp_path / "second",
        CurationConfig(filters=SMALL, target=None),
        cache_dir=cache,
        progress=False,
    )
    assert full.cache_hits == 5  # the five good photos were analysed by the first run
    assert full.kept == 5


def test_odd_images_are_kept_correctly(tmp_path: Path) -> None:
    src = tmp_path / "odd"
    src.mkdir()
    astro = data.astronaut()
    Image.fromarray(astro).convert("CMYK").save(src / "cmyk.jpg", quality=95)
    grey16 = np.asarray(Image.fromarray(data.coffee()).convert("L"), np.uint16) * 257
    Image.fromarray(grey16).save(src / "grey16.png")
    Image.fromarray(data.chelsea()).convert("P", palette=Image.Palette.ADAPTIVE).save(
        src / "palette.png"
    )
    rgba = np.dstack([data.rocket(), np.full(data.rocket().shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(data.stereo_motorcycle()[1]).save(src / "rotated.jpg", quality=95, exif=exif)
    (src / "ünïcødé 写真").mkdir()
    Image.fromarray(data.astronaut()[::-1]).save(src / "ünïcødé 写真" / "flipped.png")
    Image.fromarray(np.zeros((1200, 1200, 3), np.uint8)).save(src / "bomb.png")
    config = CurationConfig(
        filters={
            **SMALL,
            "min_sharpness": None,
            "max_noise_sigma": None,
            "min_entropy": None,
            "max_clipped_dark": None,
            "reject_grayscale": None,
        },
        target=None,
        max_pixels=1_000_000,
        near_duplicates=False,
    )
    out = tmp_path / "out"
    curate([src], out, config, progress=False)
    kept, reasons = _kept(out), _rejected(out)
    assert set(kept) == {
        "cmyk.jpg",
        "grey16.png",
        "palette.png",
        "alpha.png",
        "rotated.jpg",
        "flipped.png",
    }
    assert reasons["bomb.png"].startswith("undecodable: too many pixels")
    rotated = kept["rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (500, 741)  # upright
    assert read_image(out / rotated["file_name"]).shape == (741, 500, 3)
    assert kept["grey16.png"]["is_grayscale"] is True
    assert kept["grey16.png"]["mode"] == "I;16"
    # converted files are stored as PNG; a plain RGB JPEG would have been copied
    assert kept["cmyk.jpg"]["file_name"].endswith(".png")


def test_plain_files_are_copied_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _save_jpeg(data.astronaut(), src / "astro.jpg", 95)
    out = tmp_path / "out"
    curate([src], out, CurationConfig(filters=SMALL, target=None), progress=False)
    row = _kept(out)["astro.jpg"]
    assert row["file_name"].endswith(".jpg")
    assert (out / row["file_name"]).read_bytes() == (src / "astro.jpg").read_bytes()
    # provenance: the source file's SHA-256 and the decoded pixels' hash
    assert row["sha256"] == hashlib.sha256((src / "astro.jpg").read_bytes()).hexdigest()
    assert row["pixel_hash"] == pixel_hash(read_image(src / "astro.jpg"))


def test_in_memory_sources_export(tmp_path: Path) -> None:
    """Parquet rows have no file on disk: export goes through the content cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffers = []
    for make in (data.astronaut, data.coffee):
        buffer = io.BytesIO()
        Image.fromarray(make()).save(buffer, format="PNG")
        buffers.append(buffer.getvalue())
    table = pa.table({"image": buffers, "text": ["an astronaut", "a coffee cup"]})
    pq.write_table(table, tmp_path / "shard.parquet")
    out = tmp_path / "out"
    result = curate(
        [tmp_path / "shard.parquet"],
        out,
        CurationConfig(filters=SMALL, target=None),
        progress=False,
    )
    assert result.kept == 2
    rows = _rows(out / "metadata.jsonl")
    assert {r["text"] for r in rows} == {"an astronaut", "a coffee cup"}
    assert rows[0]["source"].endswith("shard.parquet#row=0")
    assert np.array_equal(read_image(out / rows[0]["file_name"]), data.astronaut())
    assert _load(out).num_rows == 2  # the exported blobs load with datasets too


def test_quotas_by_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for folder, names in {
        "people": ["astronaut"],
        "things": ["coffee", "rocket", "chelsea"],
    }.items():
        (src / folder).mkdir(parents=True)
        for name in names:
            Image.fromarray(PHOTOS[name]()).save(src / folder / f"{name}.png")
    config = CurationConfig(filters=SMALL, target=2, category="folder", quotas={"people": 1})
    out = tmp_path / "out"
    curate([src], out, config, progress=False)
    kept = _kept(out)
    assert len(kept) == 2 and "astronaut.png" in kept
    assert kept["astronaut.png"]["category"] == "people"


def test_captioner_fills_missing_captions(tiny_blip: Path, tmp_path: Path) -> None:  # noqa: F811
    from restorelab.curation.captioner import Captioner

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "astronaut.png")
    (src / "astronaut.txt").write_text("given caption", "utf-8")
    Image.fromarray(data.coffee()).save(src / "coffee.png")
    captioner = Captioner.from_pretrained(tiny_blip, prompt=None, max_new_tokens=8)
    out = tmp_path / "out"
    curate(
        [src], out, CurationConfig(filters=SMALL, target=None), captioner=captioner, progress=False
    )
    kept = _kept(out)
    assert kept["astronaut.png"]["text"] == "given caption"
    assert isinstance(kept["coffee.png"]["text"], str)
    summary = json.loads((out / "curation.json").read_text("utf-8"))
    assert summary["captioner"] == captioner.identity
    assert "were written by the local model" in (out / "README.md").read_text("utf-8")


def test_required_captions_are_checked(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name, caption in (
        ("astronaut", "An astronaut poses in an orange flight suit."),
        ("coffee", "coffee"),
        ("chelsea", ""),
    ):
        Image.fromarray(PHOTOS[name]()).save(src / f"{name}.png")
        (src / f"{name}.txt").write_text(caption, "utf-8")
    out = tmp_path / "out"
    curate(
        [src],
        out,
        CurationConfig(filters=SMALL, target=None, require_captions=True),
        progress=False,
    )
    reasons = _rejected(out)
    assert set(_kept(out)) == {"astronaut.png"}
    assert reasons["coffee.png"] == "caption: caption too short (1 words < 5)"
    assert reasons["chelsea.png"] == "caption: empty caption"


def test_config_validation(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("target: 100\nfilters:\n  min_side: 512\n  max_noise_sigma: null\n", "utf-8")
    config = CurationConfig.from_yaml(good)
    assert config.target == 100 and config.filters["min_side"] == 512
    assert "max_noise_sigma" not in config.active_filters()
    assert config.filters["min_sharpness"] == 1.6  # defaults kept
    assert CurationConfig().filters["min_side"] == 1024 and CurationConfig().target == 2600
    bad = tmp_path / "bad.yaml"
    bad.write_text("filters:\n  min_sid: 256\n", "utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: filters: unknown filter\(s\) 'min_sid'"):
        CurationConfig.from_yaml(bad)
    bad.write_text("targt: 5\n", "utf-8")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'targt'"):
        CurationConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="quotas: need a category"):
        CurationConfig(quotas={"face": 0.3})


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="source not found"):
        curate([tmp_path / "nope"], tmp_path / "out", progress=False)


def test_duplicate_groups_keep_the_original_over_degraded_re_saves(tmp_path: Path) -> None:
    """The original (JPEG q75) is kept over a blurred and a noisy copy of it saved at q95, and
    an exact copy loses to the file seen first."""
    import cv2

    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    photo = data.astronaut()
    _save_jpeg(photo, src / "a" / "original.jpg", 75)
    original = read_image(src / "a" / "original.jpg")
    _save_jpeg(cv2.GaussianBlur(original, (0, 0), 1.5), src / "b" / "blurred.jpg", 95)
    noise = np.random.default_rng(0).normal(0, 10, original.shape)
    _save_jpeg(np.clip(original + noise, 0, 255).astype(np.uint8), src / "b" / "noisy.jpg", 95)
    Image.fromarray(original).save(src / "b" / "same_pixels.png")
    out = tmp_path / "out"
    filters = {**SMALL, "min_jpeg_quality": None, "min_sharpness": None, "max_noise_sigma": None}
    curate([src], out, CurationConfig(filters=filters, target=None), progress=False)
    assert list(_kept(out)) == ["original.jpg"]
    rejected = _rejected(out)
    assert rejected["same_pixels.png"].startswith("exact duplicate: same pixels as ")
    assert rejected["same_pixels.png"].endswith("original.jpg")
    for name in ("blurred.jpg", "noisy.jpg"):
        assert rejected[name].startswith("near duplicate: of ")
        assert rejected[name].split(";")[0].endswith("original.jpg")


def test_progress_bars_with_totals_and_unreadable_sources(tmp_path: Path, capsys) -> None:
    """With progress on, the analyse bar knows its total; a damaged Parquet file is still just
    a rejection."""
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(data.astronaut()).save(src / "astronaut.png")
    (src / "junk.parquet").write_bytes(b"not parquet at all")
    out = tmp_path / "out"
    result = curate(
        [src / "astronaut.png", src / "junk.parquet"],
        out,
        CurationConfig(filters=SMALL, target=None),
        progress=True,
    )
    assert (result.kept, result.rejected) == (1, 1)
    assert _rejected(out)["junk.parquet"].startswith("unreadable: parquet file: ")
    errors = capsys.readouterr().err
    assert "analyse" in errors


# --------------------------------------------------------------------------- issue 15 replays


def _two_photo_source(root: Path) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    for name in ("astronaut", "coffee"):
        Image.fromarray(PHOTOS[name]()).save(src / f"{name}.png")
    return src


def _load(out: Path):
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset("imagefolder", data_dir=str(out), split="train")


def test_a_late_failure_leaves_the_previous_dataset_loadable(tmp_path: Path, monkeypatch) -> None:
    """Finding 1: a failure after the analysis (here: selection raising) used to leave an
    empty images/ folder beside the old metadata.jsonl; now the old dataset stays whole."""
    from restorelab.curation import pipeline

    src = _two_photo_source(tmp_path)
    out = tmp_path / "out"
    curate([src], out, CurationConfig(filters=SMALL, target=None), progress=False)
    before = (out / "metadata.jsonl").read_bytes()
    (out / "notes.txt").write_text("mine", "utf-8")  # a user's file: carried over

    def broken(*args, **kwargs):
        raise RuntimeError("late failure")

    monkeypatch.setattr(pipeline, "_select", broken)
    with pytest.raises(RuntimeError, match="late failure"):
        curate([src], out, CurationConfig(filters=SMALL, target=None), progress=False)
    assert (out / "metadata.jsonl").read_bytes() == before
    assert _load(out).num_rows == 2
    assert not list(tmp_path.glob(".out.curating-*"))  # staging removed
    # a config error is caught before any work (and names the file and key)
    bad = tmp_path / "bad.yaml"
    bad.write_text("category: folder\nquotas: {red: 2.0}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: quotas\.red: expected a share"):
        CurationConfig.from_yaml(bad)
    monkeypatch.undo()
    curate([src], out, CurationConfig(filters=SMALL, target=1), progress=False)
    assert _load(out).num_rows == 1 and (out / "notes.txt").read_text("utf-8") == "mine"
    assert (out / ".cache" / "analysis.sqlite").is_file()


_SLOW_RUN = """
import sys, time
from pathlib import Path
from restorelab.curation import CurationConfig, curate, pipeline
real = pipeline.analyse
def slow(*args, **kwargs):
    Path(sys.argv[3]).touch()
    time.sleep(0.5)
    return real(*args, **kwargs)
pipeline.analyse = slow
curate([sys.argv[1]], sys.argv[2], CurationConfig(filters={"min_side": 200}, target=None,
       workers=1), progress=False)
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_an_interrupted_run_leaves_the_previous_dataset(tmp_path: Path, signal_name: str) -> None:
    """Finding 1: Ctrl-C or kill -9 during a re-run keeps the old dataset loadable; the next
    run cleans up what a killed run left."""
    import signal
    import subprocess
    import sys
    import time

    src = _two_photo_source(tmp_path)
    out = tmp_path / "out"
    curate([src], out, CurationConfig(filters=SMALL, target=None), progress=False)
    before = (out / "metadata.jsonl").read_bytes()
    for name in ("chelsea", "rocket", "motorcycle"):
        Image.fromarray(PHOTOS[name]()).save(src / f"{name}.png")
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(src), str(out), str(marker)])
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the run never started analysing"
        proc.send_signal(getattr(signal, signal_name))
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert (out / "metadata.jsonl").read_bytes() == before
    assert _load(out).num_rows == 2
    leftovers = list(tmp_path.glob(".out.curating-*"))
    assert bool(leftovers) == (signal_name == "SIGKILL")  # Ctrl-C cleans up at once
    result = curate([src], out, CurationConfig(filters=SMALL, target=None), progress=False)
    assert result.kept == 5 and _load(out).num_rows == 5
    assert not list(tmp_path.glob(".out.curating-*"))


def test_recovery_brings_back_a_cache_moved_before_a_kill(tmp_path: Path) -> None:
    """A kill between moving OUT's cache into the staging folder and the swap: the next run
    moves the cache back before doing anything."""
    from restorelab.curation.output import recover

    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    staging = tmp_path / ".out.curating-99999999"
    (staging / ".cache").mkdir(parents=True)
    (staging / ".cache" / "analysis.sqlite").write_bytes(b"db")
    (staging / "metadata.jsonl").write_text("{}\n", "utf-8")
    assert recover(out) == [staging]
    assert (out / ".cache" / "analysis.sqlite").read_bytes() == b"db"
    assert not staging.exists() and not (out / "metadata.jsonl").exists()


def _jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


_NO_QUALITY_FILTERS = {
    **SMALL,
    "min_jpeg_quality": None,
    "min_sharpness": None,
    "max_noise_sigma": None,
    "reject_grayscale": None,
}


def _keeper_of(tmp_path: Path, files: dict[str, bytes], captions: dict[str, str] | None = None):
    src = tmp_path / "src"
    src.mkdir(parents=True)
    for name, payload in files.items():
        (src / name).write_bytes(payload)
    for name, text in (captions or {}).items():
        (src / name).with_suffix(".txt").write_text(text, "utf-8")
    out = tmp_path / "out"
    curate([src], out, CurationConfig(filters=_NO_QUALITY_FILTERS, target=None), progress=False)
    return _kept(out), _rejected(out)


def test_a_higher_quality_re_encode_does_not_beat_its_jpeg(tmp_path: Path) -> None:
    """Finding 2: a q85 original and its own re-encode at q98 (same size): the original is
    kept; the other way round (a q98 original and a q85 copy), the q98 file is kept."""
    photo = data.astronaut()
    original = _jpeg_bytes(photo, 85)
    re_encode = _jpeg_bytes(decode_image(original), 98)
    kept, rejected = _keeper_of(tmp_path / "a", {"a_q98.jpg": re_encode, "b_q85.jpg": original})
    assert list(kept) == ["b_q85.jpg"]
    assert "re-encode of the JPEG" in rejected["a_q98.jpg"]
    camera = _jpeg_bytes(photo, 98)
    copy = _jpeg_bytes(decode_image(camera), 85)
    kept, _ = _keeper_of(tmp_path / "b", {"a_q85.jpg": copy, "b_q98.jpg": camera})
    assert list(kept) == ["b_q98.jpg"]
    # a q98 re-encode does not launder a q80 JPEG past the min_jpeg_quality filter
    src = tmp_path / "c"
    src.mkdir()
    poor = _jpeg_bytes(photo, 80)
    (src / "a_q98.jpg").write_bytes(_jpeg_bytes(decode_image(poor), 98))
    (src / "b_q80.jpg").write_bytes(poor)
    out = tmp_path / "c_out"
    with pytest.raises(CurationError):
        curate([src], out, CurationConfig(filters=SMALL, target=None), progress=False)
    reasons = _rejected(tmp_path / ".c_out.failed")
    assert reasons["b_q80.jpg"].startswith("compressed: jpeg_quality 80 < 85")
    assert reasons["a_q98.jpg"].startswith("near duplicate: of ")
    assert "re-encode of the JPEG" in reasons["a_q98.jpg"]


def test_png_alpha_cmyk_and_tone_shifted_copies_lose_to_their_source(tmp_path: Path) -> None:
    """Finding 2: a PNG of a JPEG's pixels (exact and after a tiny edit), a washed-out RGBA
    copy (alpha 200), a CMYK copy and a brightened PNG copy all lose to the source JPEG."""
    photo = data.chelsea()
    original = _jpeg_bytes(photo, 85)
    pixels = decode_image(original)

    def png(image: np.ndarray, mode: str | None = None) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image, mode).save(buffer, format="PNG" if mode != "CMYK" else "JPEG")
        return buffer.getvalue()

    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 200, np.uint8)])
    edited = pixels.copy()
    edited[:4, :4] = 0
    cmyk = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(cmyk, format="JPEG", quality=98)
    bright = np.clip(pixels.astype(np.float32) * 1.1, 0, 255).astype(np.uint8)
    files = {
        "a_same_pixels.png": png(pixels),
        "b_edited.png": png(edited),
        "c_alpha.png": png(rgba, "RGBA"),
        "d_cmyk.jpg": cmyk.getvalue(),
        "e_bright.png": png(bright),
        "z_original.jpg": original,
    }
    kept, rejected = _keeper_of(tmp_path, files)
    assert list(kept) == ["z_original.jpg"]
    assert rejected["a_same_pixels.png"].startswith("exact duplicate: same pixels as ")
    assert "lossless copy of the JPEG" in rejected["b_edited.png"]
    assert "RGBA copy" in rejected["c_alpha.png"]
    assert "CMYK copy" in rejected["d_cmyk.jpg"]
    assert "tone-shifted copy" in rejected["e_bright.png"]


def test_captions_of_dropped_duplicates_go_to_the_keeper(tmp_path: Path) -> None:
    """Finding 3: only the dropped copy has a caption: the keeper gets it, says where it came
    from, and survives require_captions."""
    photo = data.astronaut()
    original = _jpeg_bytes(photo, 90)
    buffer = io.BytesIO()
    Image.fromarray(decode_image(original)).save(buffer, format="PNG")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a_copy.png").write_bytes(buffer.getvalue())
    (src / "a_copy.txt").write_text("An astronaut in a white suit beside a flag.", "utf-8")
    (src / "b_original.jpg").write_bytes(original)
    out = tmp_path / "out"
    config = CurationConfig(filters=_NO_QUALITY_FILTERS, target=None, require_captions=True)
    curate([src], out, config, progress=False)
    row = _kept(out)["b_original.jpg"]
    assert row["text"] == "An astronaut in a white suit beside a flag."
    assert row["caption_source"] == "duplicate"
    assert row["caption_origin"].endswith("a_copy.png (sidecar .txt)")


def test_every_output_variant_loads_with_datasets(library: Path, tmp_path: Path) -> None:
    """Finding 4 and deliverable 7: with parquet_shard_rows the imagefolder still loads, and
    so do the Parquet shards; the card's loading snippets say how."""
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    config = CurationConfig(filters=SMALL, target=None, parquet_shard_rows=2)
    curate([library], out, config, progress=False)
    folder = _load(out)
    shards = sorted((out / "parquet").glob("*.parquet"))
    assert [p.name for p in shards] == [f"part-{k:05d}-of-00003.parquet" for k in range(3)]
    table = datasets.load_dataset("parquet", data_dir=str(out / "parquet"), split="train")
    assert folder.num_rows == table.num_rows == 5
    assert sorted(folder["source"]) == sorted(table["source"])
    card = (out / "README.md").read_text("utf-8")
    assert 'load_dataset("parquet", data_dir="PATH/TO/THIS/FOLDER/parquet"' in card
    plain = tmp_path / "plain"
    curate([library], plain, CurationConfig(filters=SMALL, target=2), progress=False)
    assert _load(plain).num_rows == 2


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("target: abc\n", r"target: expected an integer >= 1 or null, got 'abc' \(str\)"),
        ("target: 2.5\n", r"target: expected an integer >= 1 or null, got 2\.5"),
        ("hamming_radius: -4\n", r"hamming_radius: expected an integer from 0 to 64"),
        ('near_duplicates: "no"\n', r"near_duplicates: expected true or false, got 'no'"),
        ("filters: {min_sharpness: .nan}\n", r"filters\.min_sharpness: expected a number .*nan"),
        ("filters: {min_side: true}\n", r"filters\.min_side: expected an integer >= 1"),
        ("filters: {reject_grayscale: 1}\n", r"filters\.reject_grayscale: expected true \(on\)"),
        ("quality_pool: .inf\n", r"quality_pool: expected a number >= 1, got inf"),
        ("quotas: {a: 1}\n", r"quotas: need a category"),
        (
            "category: folder\nquotas: {a: 2000, b: 700}\n",
            r"quotas: expected counts that add up to at most the target 2600",
        ),
        ("targte: 5\n", r"unknown key\(s\) 'targte' \(did you mean 'target'\?\)"),
        (
            "filters: {min_sid: 5}\n",
            r"filters: unknown filter\(s\) 'min_sid' \(did you mean 'min_side'",
        ),
    ],
)
def test_config_errors_name_file_key_and_allowed_values(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    """Finding 5: every bad value is refused when the config is read, naming the file."""
    path = tmp_path / "curation.yaml"
    path.write_text(yaml_text, "utf-8")
    with pytest.raises(ConfigError, match=r"curation\.yaml: " + message):
        CurationConfig.from_yaml(path)


def test_cli_refuses_conflicting_flags_and_documents_every_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from restorelab.app.cli import main
    from restorelab.curation import CONFIG_KEYS, FILTERS

    runner = CliRunner()
    result = runner.invoke(main, ["curate", str(tmp_path), "--out", "x", "--target", "3", "--all"])
    assert result.exit_code == 2 and "--target 3 and --all contradict" in result.output
    result = runner.invoke(main, ["curate", str(tmp_path), "--out", "x", "--workers", "-1"])
    assert result.exit_code == 1 and "workers: expected an integer >= 0" in result.output
    for args in (["list"], ["curate", "--help-config"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        for key in CONFIG_KEYS:
            assert f"  {key.name}:" in result.output
        for name in FILTERS:
            assert f"    {name}:" in result.output
    assert "    reject_grayscale: true" in result.output
    assert "  target: 2600\n" in result.output


def test_output_inside_a_source_and_repeated_sources_are_read_once(tmp_path: Path) -> None:
    """Finding 6: --out inside the source folder is never read back as input; the same
    source given twice lists each image once."""
    src = _two_photo_source(tmp_path)
    out = src / "curated"
    for _ in range(2):
        result = curate([src, src], out, CurationConfig(filters=SMALL, target=None), progress=False)
        assert (result.kept, result.rejected) == (2, 0)
    assert result.sources["repeated_inputs"] == 2 and result.sources["excluded"] == 2
    assert result.cache_hits == 2
    with pytest.raises(ValueError, match="is empty"):
        curate([out], out, CurationConfig(filters=SMALL), progress=False)


def test_selection_says_quality_or_diversity_and_kept_rows_carry_score_and_rank(
    tmp_path: Path,
) -> None:
    """Finding 7."""
    import cv2

    src = tmp_path / "src"
    src.mkdir()
    for name, make in PHOTOS.items():
        Image.fromarray(make()).save(src / f"{name}.png")
    # a blurred copy scores lowest: it loses on quality (outside the pool of the best 4)
    Image.fromarray(cv2.GaussianBlur(data.chelsea(), (0, 0), 1.2)[:, ::-1]).save(src / "z.png")
    out = tmp_path / "out"
    config = CurationConfig(
        filters=_NO_QUALITY_FILTERS, target=2, quality_pool=2.0, near_duplicates=False
    )
    curate([src], out, config, progress=False)
    kept = _kept(out)
    assert sorted(r["selection_rank"] for r in kept.values()) == [1, 2]
    assert all(0 < r["quality_score"] <= 1 for r in kept.values())
    reasons = [r for r in _rejected(out).values() if r.startswith("not selected")]
    quality = [r for r in reasons if r.startswith("not selected: quality: score ")]
    diversity = [r for r in reasons if r.startswith("not selected: diversity: ")]
    assert len(quality) == 2 and len(diversity) == 2
    assert all("(embedding distance) from kept" in r for r in diversity)
    assert _rejected(out)["z.png"].startswith("not selected: quality: score ")


def test_progress_totals_provenance_cache_hits_and_bit_identical_results(
    library: Path, tmp_path: Path, capsys
) -> None:
    """Finding 8: a total for tar and saved-dataset sources and a near-duplicate bar;
    caption_source per row; in-run identical files are no cache hits; metadata.jsonl is the
    same for --workers 1, the default and a resumed run."""
    import tarfile

    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for name in ("astronaut", "coffee"):
            payload = (library / "good" / f"{name}.png").read_bytes()
            info = tarfile.TarInfo(f"{name}.png")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    out = tmp_path / "bars"
    result = curate([library, shard], out, CurationConfig(filters=SMALL, target=None))
    errors = capsys.readouterr().err
    assert "analyse: 100%" in errors and "/17 " in errors  # 15 files + 2 tar samples
    assert "near duplicates: candidates" in errors and "near duplicates: align" in errors
    assert result.cache_hits == 0  # the tar samples repeat files of this run: no hits
    rows = _kept(out)
    assert rows["astronaut.png"]["caption_source"] == "source"
    assert rows["rocket.png"]["caption_source"] is None
    one = curate(
        [library], tmp_path / "one", CurationConfig(filters=SMALL, workers=1), progress=False
    )
    many = curate(
        [library], tmp_path / "many", CurationConfig(filters=SMALL, workers=3), progress=False
    )
    assert one.kept == many.kept == 5
    reference = (tmp_path / "one" / "metadata.jsonl").read_bytes()
    assert (tmp_path / "many" / "metadata.jsonl").read_bytes() == reference
    cache = tmp_path / "cache"
    curate(
        [library / "good"],
        tmp_path / "part",
        CurationConfig(filters=SMALL),
        cache_dir=cache,
        progress=False,
    )
    resumed = curate(
        [library],
        tmp_path / "resumed",
        CurationConfig(filters=SMALL),
        cache_dir=cache,
        progress=False,
    )
    assert resumed.cache_hits == 5
    assert (tmp_path / "resumed" / "metadata.jsonl").read_bytes() == reference


def test_a_transient_failure_is_not_cached(library: Path, tmp_path: Path, monkeypatch) -> None:
    """Issue 13.7: MemoryError (or a timeout) rejects the image for this run only."""
    from restorelab.curation import pipeline

    real = pipeline.analyse

    def flaky(data, source, *args):
        if source.endswith("coffee.png"):
            raise MemoryError("no room")
        return real(data, source, *args)

    monkeypatch.setattr(pipeline, "analyse", flaky)
    config = CurationConfig(filters=SMALL, target=None)
    out = tmp_path / "out"
    curate([library / "good"], out, config, progress=False)
    assert _rejected(out)["coffee.png"].startswith("analysis failed (transient, not cached")
    monkeypatch.undo()
    again = curate([library / "good"], out, config, progress=False)
    assert again.cache_hits == 4 and "coffee.png" in _kept(out)


def test_export_is_a_copy_or_a_link_and_a_re_run_writes_the_same_bytes(tmp_path: Path) -> None:
    """Issue 14.1: converted images are encoded once per pixel hash into the cache (fast PNG
    level) and linked from there; plain files are copied once and linked from the previous
    dataset on a re-run; a re-run with a changed threshold writes the same bytes."""
    import os

    src = tmp_path / "src"
    src.mkdir()
    _save_jpeg(data.astronaut(), src / "astro.jpg", 95)
    Image.fromarray(data.coffee()).convert("CMYK").save(src / "cmyk.jpg", quality=95)
    rgba = np.dstack([data.chelsea(), np.full(data.chelsea().shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    out = tmp_path / "out"
    config = CurationConfig(filters={**SMALL, "max_noise_sigma": None}, target=None)
    curate([src], out, config, progress=False)
    first = {k: (out / r["file_name"]).read_bytes() for k, r in _kept(out).items()}
    inodes = {k: (out / r["file_name"]).stat().st_ino for k, r in _kept(out).items()}
    assert set(first) == {"astro.jpg", "cmyk.jpg", "alpha.png"}
    assert first["astro.jpg"] == (src / "astro.jpg").read_bytes()
    row = _kept(out)["cmyk.jpg"]
    cached = out / ".cache" / "exports" / row["pixel_hash"][:2] / f"{row['pixel_hash']}.png"
    assert os.path.samefile(cached, out / row["file_name"])  # linked, not a second copy
    assert np.array_equal(read_image(cached), read_image(src / "cmyk.jpg"))
    idat = first["cmyk.jpg"].index(b"IDAT")
    assert first["cmyk.jpg"][idat + 4 : idat + 6] == b"\x78\x01"  # zlib level 1 header
    # a re-run with another threshold: the same files, linked from the previous dataset
    curate(
        [src],
        out,
        CurationConfig(filters={**SMALL, "max_noise_sigma": 50}, target=None),
        progress=False,
    )
    again = {k: (out / r["file_name"]).read_bytes() for k, r in _kept(out).items()}
    assert again == first
    assert {k: (out / r["file_name"]).stat().st_ino for k, r in _kept(out).items()} == inodes


def test_sharded_analysis_merges_into_one_curation(library: Path, tmp_path: Path) -> None:
    """Issue 14.3: two analysis shards (RANK/WORLD_SIZE style), each with its own cache, then
    one run merging the caches: every input comes from the merged cache and the result is
    the unsharded run's, byte for byte."""
    from click.testing import CliRunner

    from restorelab.app.cli import main

    config = CurationConfig(filters=SMALL, target=3)
    curate([library], tmp_path / "single", config, progress=False)
    counts = []
    for rank in (0, 1):
        shard = curate(
            [library],
            tmp_path / "unused",
            config,
            cache_dir=tmp_path / f"shard{rank}",
            shard=(rank, 2),
            progress=False,
        )
        counts.append(shard.sources["analysed"])
    assert counts == [8, 7] and not (tmp_path / "unused").exists()
    merged = curate(
        [library],
        tmp_path / "merged",
        config,
        merge_caches=[tmp_path / "shard0", tmp_path / "shard1"],
        progress=False,
    )
    assert merged.cache_hits == 15
    assert (tmp_path / "merged" / "metadata.jsonl").read_bytes() == (
        tmp_path / "single" / "metadata.jsonl"
    ).read_bytes()
    result = CliRunner().invoke(
        main,
        ["curate", str(library), "--out", str(tmp_path / "x"), "--shard", "env"],
        env={"RANK": "1", "WORLD_SIZE": "2"},
    )
    assert result.exit_code == 0, result.output
    assert "shard 1/2: analysed 7 inputs" in result.output


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_rotated_and_grey_jpegs_decode_through_opencv_as_pillow_does(mode: str) -> None:
    """Issue 14.2: every EXIF orientation and grey JPEGs take the fast OpenCV decode, with
    exactly Pillow's pixels, mode and orientation."""
    from restorelab.curation.pipeline import _decode_plain_jpeg
    from restorelab.imageio import decode_image_info

    image = data.astronaut()[:120, :90]
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        buffer = io.BytesIO()
        Image.fromarray(image).convert(mode).save(buffer, format="JPEG", quality=90, exif=exif)
        fast = _decode_plain_jpeg(buffer.getvalue(), 10**9)
        reference = decode_image_info(buffer.getvalue())
        assert fast is not None and fast.pixels.flags.c_contiguous
        assert np.array_equal(fast.pixels, reference.pixels), orientation
        assert (fast.mode, fast.orientation) == (reference.mode, reference.orientation)


def test_a_users_source_file_is_copied_not_linked(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _save_jpeg(data.astronaut(), src / "astro.jpg", 95)
    out = tmp_path / "out"
    curate([src], out, CurationConfig(filters=SMALL, target=None), progress=False)
    exported = out / _kept(out)["astro.jpg"]["file_name"]
    assert exported.read_bytes() == (src / "astro.jpg").read_bytes()
    assert not exported.samefile(src / "astro.jpg")
