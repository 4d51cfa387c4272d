"""``restorelab recipe`` end to end on a tiny random-weight SDXL, four photos and a one-cell
grid: curate → two adapters → bench base / each / both → report, one run for the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image
from skimage import data

from restorelab.app.cli import main
from restorelab.app.recipe import RecipeConfig, sdxl_spec
from restorelab.benchmark.restorers import RESTORERS
from restorelab.config import ConfigError

PHOTOS = {
    "astronaut": ("An astronaut in an orange suit in front of a flag.", "portraits"),
    "coffee": ("A cup of coffee with latte art on a red table.", "scenes"),
    "chelsea": ("A tabby cat looking to the side.", "portraits"),
    "rocket": ("A rocket on the launch pad under a blue sky.", "scenes"),
}


def test_sdxl_spec_and_config_checks() -> None:
    spec = sdxl_spec(
        "/m/b", [("scene", "/l/s.safetensors", 1), ("face", "/l/f.safetensors", 0.5)], steps=2
    )
    assert spec == (
        "sdxl:base=/m/b,lora=scene=/l/s.safetensors:1.0+face=/l/f.safetensors:0.5,steps=2"
    )
    config = RecipeConfig(sources=["x"])
    assert config.bench_configs() == ["base", "scene", "face", "scene+face"]
    assert config.bench.grid == "extreme"
    assert config.adapters["face"]["subset"] == "face == true"
    with pytest.raises(ConfigError, match="'hands', which is not an adapter"):
        RecipeConfig(sources=["x"], bench={"configs": ["base", "hands"]})
    with pytest.raises(ConfigError, match="give sources"):
        RecipeConfig()
    with pytest.raises(ConfigError, match="cannot hold a comma"):
        sdxl_spec("/m/b", [], prompt="a, b")


@pytest.mark.skipif(
    "sdxl" not in RESTORERS.names(), reason="the sdxl restorer is not registered (issue 10)"
)
def test_recipe_end_to_end_on_a_tiny_model(tmp_path: Path, tiny_sdxl: Path) -> None:
    from restorelab.results import load_results

    for name, (caption, folder) in PHOTOS.items():
        (tmp_path / "photos" / folder).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image.thumbnail((64, 64))
        image.save(tmp_path / "photos" / folder / f"{name}.png")
        (tmp_path / "photos" / folder / f"{name}.txt").write_text(caption, encoding="utf-8")
    grid = tmp_path / "one.yaml"
    grid.write_text("name: one\ndegradations: [gaussian_blur]\nseverities: [2]\nseeds: [0]\n")
    quality = [
        "min_sharpness",
        "max_noise_sigma",
        "min_jpeg_quality",
        "max_clipped_dark",
        "max_clipped_bright",
        "min_entropy",
    ]
    recipe = {
        "sources": [str(tmp_path / "photos")],
        "base": str(tiny_sdxl),
        "out": str(tmp_path / "recipe"),
        "curation": {"filters": {"min_side": 32, **dict.fromkeys(quality)}, "target": None},
        "train": {
            "steps": 2,
            "resolution": 32,
            "batch_size": 2,
            "rank": 4,
            "lr": 0.01,
            "mixed_precision": "no",
            "checkpoint_every": 0,
        },
        "adapters": {
            "scene": {"subset": "source ~ 'scenes/'"},
            "face": {"subset": "source ~ 'portraits/'"},
        },
        "bench": {
            "grid": str(grid),
            "weights": {"scene": 1.0, "face": 0.8},
            "max_images": 2,
            "restorer": {"steps": 2, "strength": 1.0, "min_side": 0, "colour_fix": "none"},
            "n_boot": 50,
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["recipe", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "restorelab dashboard" in result.output
    out = tmp_path / "recipe"
    for name in ("scene", "face"):
        info = json.loads((out / "adapters" / name / "training.json").read_text())
        assert info["finished"] and info["images"] == 2 and info["step"] == 2
    record = json.loads((out / "recipe.json").read_text())
    labels = record["stages"]["bench"]["labels"]
    assert list(labels) == ["base", "scene", "face", "scene+face"]
    assert "lora=" not in labels["base"] and "face=" in labels["scene+face"]
    assert ":0.8" in labels["face"]
    rows = load_results(out / "run")
    assert set(rows["restorer"]) == set(labels.values())
    assert len(rows) == 2 * 4  # 2 images × 1 cell × 4 set-ups
    assert rows["psnr"].notna().all()
    assert (out / "run" / "report" / "summary.parquet").is_file()
    assert any(p.name.startswith("paired_") for p in (out / "run" / "report").iterdir())
    # a second run skips every finished stage and writes no new rows
    again = CliRunner().invoke(main, ["recipe", str(path), "--quiet"])
    assert again.exit_code == 0, again.output
    assert "bench:    0 rows" in again.output
    record = json.loads((out / "recipe.json").read_text())
    assert record["stages"]["train_face"]["skipped"] == "already trained"
