"""Curation on folders of real photos with planted problems: every input is accounted for."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restorelab.config import ConfigError
from restorelab.curation import CurationConfig, curate, iter_sources
from restorelab.imageio import read_image


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def messy_folder(tmp_path: Path, photos: dict[str, np.ndarray]) -> Path:
    src = tmp_path / "src"
    (src / "nested" / "déjà vu").mkdir(parents=True)
    Image.fromarray(photos["astronaut"]).save(src / "astronaut.png")
    (src / "astronaut.txt").write_text("An astronaut in a flight suit.\n", encoding="utf-8")
    Image.fromarray(photos["coffee"]).save(src / "nested" / "coffee.jpg", quality=95)
    # an EXIF-rotated JPEG: kept, written upright as PNG
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photos["chelsea"]).save(src / "nested" / "déjà vu" / "cat.jpg", exif=exif)
    # planted problems
    Image.fromarray(photos["astronaut"]).save(src / "nested" / "copy.bmp")  # same pixels
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("hello", encoding="utf-8")
    data = (src / "nested" / "coffee.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(photos["coffee"][:20, :20]).save(src / "tiny.png")
    Image.fromarray(np.zeros((300, 30, 3), np.uint8)).save(src / "strip.png")
    return src


def test_every_input_is_kept_or_rejected_with_a_reason(tmp_path: Path, messy_folder: Path) -> None:
    out = tmp_path / "out"
    result = curate([messy_folder], out, CurationConfig(min_side=48), progress=False)
    kept = _rows(out / "metadata.jsonl")
    with open(out / "rejected.csv", encoding="utf-8") as handle:
        rejected = list(csv.DictReader(handle))
    inputs = {item.source for item in iter_sources([messy_folder])}
    assert len(inputs) == 9
    assert {r["source"] for r in kept} | {r["source"] for r in rejected} == inputs
    assert len(kept) + len(rejected) == len(inputs)
    assert (result.kept, result.rejected) == (3, 6)

    reasons = {Path(r["source"]).name: r["reason"] for r in rejected}
    assert reasons["copy.bmp"].startswith("exact duplicate: same pixels as ")
    assert reasons["copy.bmp"].endswith("astronaut.png")
    assert reasons["empty.png"] == "undecodable: empty file"
    assert reasons["text.jpg"] == "undecodable: not a recognised image format"
    assert reasons["truncated.jpg"].startswith("undecodable: cannot decode")
    assert reasons["tiny.png"] == "too small: short side 20 px < 48 px"
    assert (
        reasons["strip.png"]
        == "too small: short side 30 px < 48 px; extreme aspect ratio 10.00 > 4.0"
    )
    assert result.reasons["undecodable"] == 3


def test_exports_captions_sizes_and_upright_pixels(
    tmp_path: Path, messy_folder: Path, photos: dict
) -> None:
    out = tmp_path / "out"
    curate([messy_folder], out, CurationConfig(min_side=48), progress=False)
    kept = {Path(r["source"]).name: r for r in _rows(out / "metadata.jsonl")}
    assert kept["astronaut.png"]["text"] == "An astronaut in a flight suit."
    assert kept["coffee.jpg"]["text"] == ""
    # a plain RGB JPEG is copied byte for byte
    assert kept["coffee.jpg"]["file_name"].endswith(".jpg")
    assert (out / kept["coffee.jpg"]["file_name"]).read_bytes() == (
        messy_folder / "nested" / "coffee.jpg"
    ).read_bytes()
    # the rotated one is stored upright (rotated 90°: width and height swap)
    cat = kept["cat.jpg"]
    h, w = photos["chelsea"].shape[:2]
    assert (cat["width"], cat["height"]) == (h, w)
    assert cat["file_name"].endswith(".png")
    assert read_image(out / cat["file_name"]).shape == (w, h, 3)


def test_output_loads_as_a_hugging_face_imagefolder(tmp_path: Path, messy_folder: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    curate([messy_folder], out, CurationConfig(min_side=48), progress=False)
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert ds.num_rows == 3
    assert "An astronaut in a flight suit." in ds["text"]
    assert {"image", "text", "source", "width", "height"} <= set(ds.column_names)


def test_summary_file(tmp_path: Path, messy_folder: Path) -> None:
    out = tmp_path / "out"
    curate([messy_folder], out, CurationConfig(min_side=48), progress=False)
    summary = json.loads((out / "curation.json").read_text(encoding="utf-8"))
    assert summary["inputs"] == 9 and summary["kept"] == 3
    assert summary["config"]["min_side"] == 48


def test_default_threshold_suits_sdxl(photo_folder: Path, tmp_path: Path) -> None:
    result = curate([photo_folder], tmp_path / "out", progress=False)
    assert CurationConfig().min_side == 1024
    assert result.kept == 0 and result.reasons == {"too small": 3}


def test_config_file_validation(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("min_side: 256\nmax_aspect: null\n", encoding="utf-8")
    config = CurationConfig.from_yaml(good)
    assert config.min_side == 256 and config.max_aspect is None
    assert config.thresholds() == {"min_side": 256}
    bad = tmp_path / "bad.yaml"
    bad.write_text("min_sid: 256\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key\(s\) min_sid"):
        CurationConfig.from_yaml(bad)
    negative = tmp_path / "neg.yaml"
    negative.write_text("min_side: -3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="min_side must be a positive number"):
        CurationConfig.from_yaml(negative)


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="source not found"):
        curate([tmp_path / "nope"], tmp_path / "out", progress=False)


def test_globs_and_overlapping_sources_are_read_once(messy_folder: Path) -> None:
    items = list(iter_sources([messy_folder, str(messy_folder / "*.png")]))
    names = [Path(i.source).name for i in items]
    assert len(names) == len({i.path.resolve() for i in items}) == 9
