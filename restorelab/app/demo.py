"""``restorelab demo``: the whole pipeline on photographs that ship with scikit-image.

curate (with planted problems, so the rejection report has content) → degrade → restore with
the classical baselines → score → results ready for the dashboard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from restorelab.benchmark import BenchmarkSummary, run_benchmark
from restorelab.curation import CurationConfig, CurationResult, curate
from restorelab.degradations.grid import Grid, load_grid

#: scikit-image sample photographs used by the demo, with a caption for each.
SAMPLE_PHOTOS: dict[str, str] = {
    "astronaut": "Portrait of astronaut Eileen Collins in an orange flight suit in front of "
    "the American flag and a model of the space shuttle, studio lighting.",
    "coffee": "Top-down photo of a cup of coffee with latte art on a saucer with a spoon, "
    "on a red wooden table.",
    "chelsea": "Close-up photo of a tabby cat named Chelsea looking to the side, soft "
    "indoor light.",
    "rocket": "A Falcon rocket on the launch pad against a clear blue sky, with a service "
    "tower and lightning masts.",
    "retina": "Fundus photograph of a human retina showing the optic disc and branching "
    "blood vessels on an orange background.",
    "hubble_deep_field": "Hubble deep field: hundreds of distant galaxies of many shapes "
    "and colours on a black sky.",
    "motorcycle_left": "Stereo photograph (left view) of a motorcycle in a workshop, "
    "with shelves and tools behind it.",
    "motorcycle_right": "Stereo photograph (right view) of a motorcycle in a workshop, "
    "with shelves and tools behind it.",
}

DEMO_RESTORERS = ("identity", "nlm", "tv", "wavelet", "rl")


@dataclass
class DemoResult:
    """Where the demo wrote each stage."""

    sources: Path
    corpus: Path
    run: Path
    curation: CurationResult
    benchmark: BenchmarkSummary


def _sample(name: str) -> np.ndarray:
    from skimage import data

    if name == "motorcycle_left":
        return data.stereo_motorcycle()[0]
    if name == "motorcycle_right":
        return data.stereo_motorcycle()[1]
    return getattr(data, name)()


def build_sample_sources(folder: str | os.PathLike, *, max_side: int = 512) -> Path:
    """Write the sample photos (scaled so the long side is ``max_side``) with sidecar captions.

    Also plants what curation must catch: an exact duplicate in another format, a truncated
    file, a file that is not an image and a thumbnail (``max_side / 8`` pixels) below the
    demo's size limit (``max_side / 4``).
    """
    folder = Path(folder)
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    (folder / "planted").mkdir(parents=True, exist_ok=True)
    for name, caption in SAMPLE_PHOTOS.items():
        image = Image.fromarray(np.asarray(_sample(name)).astype(np.uint8)).convert("RGB")
        scale = max_side / max(image.size)
        if scale < 1:
            size = (round(image.width * scale), round(image.height * scale))
            image = image.resize(size, Image.Resampling.LANCZOS)
        image.save(folder / "photos" / f"{name}.png")
        (folder / "photos" / f"{name}.txt").write_text(caption + "\n", encoding="utf-8")
        if name == "astronaut":
            image.save(folder / "planted" / "astronaut_copy.bmp")
            image.save(folder / "planted" / "truncated.jpg", quality=90)
            data = (folder / "planted" / "truncated.jpg").read_bytes()
            (folder / "planted" / "truncated.jpg").write_bytes(data[: len(data) // 3])
            side = max(8, max_side // 8)
            image.resize((side, side)).save(folder / "planted" / "thumbnail.png")
    (folder / "planted" / "notes.png").write_text("this is not an image\n", encoding="utf-8")
    return folder


def run_demo(
    out: str | os.PathLike,
    *,
    grid: Grid | None = None,
    restorers: tuple[str, ...] = DEMO_RESTORERS,
    workers: int | None = None,
    max_side: int = 512,
    progress: bool = True,
) -> DemoResult:
    """Run the whole pipeline into ``out`` (``sources/``, ``corpus/``, ``run/``)."""
    out = Path(out)
    sources = build_sample_sources(out / "sources", max_side=max_side)
    corpus = out / "corpus"
    # The sample photos are small (a few hundred pixels, where fine texture reads as noise)
    # and two are not everyday photographs (a retina, the Hubble deep field's black sky): the
    # demo keeps every photo that is large enough, decodable and not a duplicate, instead of
    # applying the SDXL-training quality filters.
    quality_filters = (
        "min_sharpness",
        "max_noise_sigma",
        "min_jpeg_quality",
        "max_clipped_dark",
        "max_clipped_bright",
        "min_entropy",
    )
    config = CurationConfig(
        filters={"min_side": max(1, max_side // 4), **dict.fromkeys(quality_filters)},
        target=None,
    )
    curation = curate([sources], corpus, config, progress=progress)
    run_dir = out / "run"
    summary = run_benchmark(
        corpus,
        grid or load_grid("mini"),
        list(restorers),
        run_dir,
        workers=workers if workers is not None else (os.cpu_count() or 1),
        progress=progress,
    )
    return DemoResult(sources, corpus, run_dir, curation, summary)
