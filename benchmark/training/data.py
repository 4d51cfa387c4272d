"""Training data for LoRA fine-tuning: corpus rows, ``--subset``, aspect buckets and crops.

A corpus is a folder written by ``restorelab curate`` (images + ``metadata.jsonl`` with
``file_name``, ``text`` and the curation signals) or any Hugging Face imagefolder
(``metadata.jsonl`` or ``metadata.csv`` at its root or in ``train/``; the caption column is
``text``, else ``caption``). A folder without metadata is scanned for images, each captioned
by a sidecar ``NAME.txt`` (or ``NAME.json`` with ``caption``) when there is one.

SDXL conditioning
-----------------
SDXL's UNet is conditioned on six "time ids" per image: ``original_size`` (h, w) of the
image as loaded, ``crops_coords_top_left`` (top, left) of the crop in the resized image, and
``target_size`` (h, w) of the crop (Podell et al. 2023, "SDXL", section 2.2). With aspect
buckets the image is scaled to cover its bucket and cropped to it (random offset, or centred
with ``center_crop``); without buckets it is scaled so its short side is ``resolution`` and a
``resolution``² square is cropped. Sampling at (0, 0) crop coordinates then asks for
well-framed pictures.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restorelab.imageio import iter_image_files, read_image

from .subset import parse_subset, subset_columns

__all__ = [
    "BucketBatchSampler",
    "Example",
    "Selection",
    "TrainingDataset",
    "assign_bucket",
    "crop_box",
    "read_corpus_rows",
    "sdxl_buckets",
    "select_examples",
]

CAPTION_COLUMNS = ("text", "caption")


@dataclass(frozen=True)
class Example:
    """One training image: its file, caption and metadata row."""

    key: str
    path: Path
    caption: str
    row: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Selection:
    """The examples a run trains on, and how they were chosen."""

    corpus: Path
    examples: list[Example]
    total: int
    subset: str | None
    fingerprint: str
    empty_captions: int = 0


def _metadata_file(folder: Path) -> Path | None:
    for base in (folder, folder / "train"):
        for name in ("metadata.jsonl", "metadata.csv"):
            if (base / name).is_file():
                return base / name
    return None


def _sidecar(path: Path) -> str:
    """The caption beside an image: ``NAME.txt``, or ``caption``/``text`` of ``NAME.json``."""
    text_file, json_file = path.with_suffix(".txt"), path.with_suffix(".json")
    if text_file.is_file():
        return text_file.read_text(encoding="utf-8").strip()
    if json_file.is_file():
        try:
            data = json.loads(json_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{json_file}: not JSON ({exc})") from exc
        if isinstance(data, dict):
            return str(data.get("caption") or data.get("text") or "").strip()
    return ""


def _derived(row: dict) -> dict:
    """Columns a subset may use beyond the stored ones: ``face`` from curation's ``category``."""
    row = dict(row)
    if "face" not in row and row.get("category") in ("face", "no_face"):
        row["face"] = row["category"] == "face"
    return row


def read_corpus_rows(corpus: str | os.PathLike) -> tuple[Path, list[dict]]:
    """The metadata rows of a corpus: ``(folder the file names are relative to, rows)``.

    Every row has ``file_name`` and ``text`` (the caption, ``""`` when missing).

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    ValueError
        A malformed metadata row (file and line named), or no images at all.
    """
    folder = Path(corpus)
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {folder}")
    metadata = _metadata_file(folder)
    rows: list[dict] = []
    if metadata is not None and metadata.suffix == ".jsonl":
        for line_no, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                row["file_name"]  # a KeyError names the missing column
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{metadata}:{line_no}: bad metadata row ({exc})") from exc
            rows.append(row)
    elif metadata is not None:
        with open(metadata, encoding="utf-8", newline="") as handle:
            for line_no, row in enumerate(csv.DictReader(handle), 2):
                if not row.get("file_name"):
                    raise ValueError(f"{metadata}:{line_no}: row without file_name")
                rows.append(dict(row))
    else:
        for path in iter_image_files(folder):
            rows.append({"file_name": path.relative_to(folder).as_posix(), "text": _sidecar(path)})
    if not rows:
        raise ValueError(f"{folder}: no images found")
    root = metadata.parent if metadata is not None else folder
    for row in rows:
        caption = next((row[c] for c in CAPTION_COLUMNS if row.get(c)), "")
        row["text"] = str(caption or "").strip()
    return root, [_derived(row) for row in rows]


def _file_identity(path: Path, row: dict) -> str:
    if row.get("sha256"):
        return str(row["sha256"])
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def select_examples(
    corpus: str | os.PathLike,
    subset: str | None = None,
    *,
    allow_empty_captions: bool = False,
) -> Selection:
    """The corpus rows a training run uses.

    Parameters
    ----------
    corpus : path
        Curated folder, Hugging Face imagefolder or plain image folder.
    subset : str, optional
        A :mod:`~restorelab.benchmark.training.subset` expression over the metadata
        (``face == true``, ``source ~ 'portraits/'``).
    allow_empty_captions : bool
        Train images without a caption on the empty prompt instead of refusing them.

    Returns
    -------
    Selection
        With a fingerprint (SHA-256, 16 hex digits) over the selected files' identities
        (curation's ``sha256``, else size and mtime) and captions.

    Raises
    ------
    ValueError
        The subset names a column no row has, selects nothing, or selected images lack
        captions (the message gives the count and the first few files).
    """
    root, rows = read_corpus_rows(corpus)
    total = len(rows)
    if subset:
        predicate = parse_subset(subset)
        known = set().union(*(row.keys() for row in rows))
        unknown = sorted(subset_columns(subset) - known)
        if unknown:
            raise ValueError(
                f"subset {subset!r} uses {', '.join(unknown)}, which no row of "
                f"{root} has; columns: {', '.join(sorted(known))}"
            )
        rows = [row for row in rows if predicate(row)]
        if not rows:
            raise ValueError(f"subset {subset!r} selects none of the {total} images of {root}")
    empty = [row["file_name"] for row in rows if not row["text"]]
    if empty and not allow_empty_captions:
        shown = ", ".join(empty[:3]) + (", …" if len(empty) > 3 else "")
        raise ValueError(
            f"{len(empty)} of {len(rows)} selected images have no caption ({shown}); caption "
            "them (restorelab curate --captioner DIR) or pass --allow-empty-captions"
        )
    examples = []
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r["file_name"]):
        path = root / row["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in the corpus metadata but missing")
        examples.append(Example(row["file_name"], path, row["text"], row))
        digest.update(f"{row['file_name']}\0{_file_identity(path, row)}\0{row['text']}\n".encode())
    return Selection(
        corpus=Path(corpus),
        examples=examples,
        total=total,
        subset=subset,
        fingerprint=digest.hexdigest()[:16],
        empty_captions=len(empty),
    )


# ---------------------------------------------------------------------------------------------
# buckets and crops


def bucket_step(resolution: int) -> int:
    """Side granularity of the buckets: 64 px at SDXL sizes, down to 8 px for tiny tests."""
    return int(max(8, min(64, resolution // 8 // 8 * 8)))


def sdxl_buckets(
    resolution: int, *, max_aspect: float = 2.0, step: int | None = None
) -> list[tuple[int, int]]:
    """Aspect-ratio buckets ``(width, height)`` of about ``resolution``² pixels.

    Sides are multiples of ``step`` (default :func:`bucket_step`), the area is at most
    ``resolution``², and the aspect ratio (long / short side) at most ``max_aspect``. At 1024
    this gives SDXL's training buckets from 704×1408 (0.5) through 1024×1024 to 1408×704.
    """
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 px, got {resolution}")
    step = step or bucket_step(resolution)
    area = resolution * resolution
    buckets = set()
    width = step
    while width <= resolution * max_aspect:
        height = (area // width) // step * step
        if height >= step and max(width / height, height / width) <= max_aspect + 1e-9:
            buckets.add((width, height))
            buckets.add((height, width))
        width += step
    return sorted(buckets, key=lambda wh: wh[0] / wh[1])


def assign_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is nearest the image's (in log ratio)."""
    ratio = math.log(width / height)
    return min(buckets, key=lambda wh: (abs(math.log(wh[0] / wh[1]) - ratio), -wh[0] * wh[1]))


def crop_box(
    width: int,
    height: int,
    target: tuple[int, int],
    rng: np.random.Generator | None,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Scale and crop an image to ``target = (w, h)``.

    Returns ``((resized_w, resized_h), (top, left))``: the image is resized so it covers the
    target, then cropped at (top, left); ``rng`` None centres the crop.
    """
    target_w, target_h = target
    scale = max(target_w / width, target_h / height)
    resized_w = max(target_w, round(width * scale))
    resized_h = max(target_h, round(height * scale))
    spare_w, spare_h = resized_w - target_w, resized_h - target_h
    if rng is None:
        top, left = spare_h // 2, spare_w // 2
    else:
        top = int(rng.integers(0, spare_h + 1))
        left = int(rng.integers(0, spare_w + 1))
    return (resized_w, resized_h), (top, left)


def _seed_of(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(p) for p in parts]))


class TrainingDataset:
    """Images as crops with their SDXL size/crop conditioning, indexed by ``(epoch, index)``.

    ``dataset[(epoch, i)]`` returns a dict: ``pixels`` float32 tensor (3, H, W) in [0, 1],
    ``caption``, ``original_size`` (h, w), ``crop_top_left`` (top, left), ``target_size``
    (h, w), ``index`` and ``key``. The random crop of image ``i`` in epoch ``e`` is drawn from
    a generator seeded by ``(seed, e, i)``, so a resumed run sees the same crops; with
    ``fixed_crops`` (used with the latent cache) the epoch is ignored.
    """

    def __init__(
        self,
        examples: list[Example],
        *,
        resolution: int,
        buckets: bool = True,
        center_crop: bool = False,
        seed: int = 0,
        fixed_crops: bool = False,
        max_aspect: float = 2.0,
        load_pixels: bool = True,
    ) -> None:
        from PIL import Image

        self.load_pixels = load_pixels
        self.resolution = resolution
        self.center_crop = center_crop
        self.seed = seed
        self.fixed_crops = fixed_crops
        self.examples: list[Example] = []
        self.sizes: list[tuple[int, int]] = []
        #: ``(key, reason)`` of images left out because they do not open.
        self.skipped: list[tuple[str, str]] = []
        for example in examples:
            try:
                width, height = _image_size(example, Image)
            except (OSError, ValueError) as exc:
                self.skipped.append((example.key, f"{type(exc).__name__}: {exc}"))
                continue
            self.examples.append(example)
            self.sizes.append((width, height))
        if not self.examples:
            raise ValueError(f"none of the {len(examples)} images opens: {self.skipped[:3]}")
        if buckets:
            choices = sdxl_buckets(resolution, max_aspect=max_aspect)
            self.targets = [assign_bucket(w, h, choices) for w, h in self.sizes]
        else:
            self.targets = [(resolution, resolution)] * len(self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def crop_of(self, epoch: int, index: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((resized_w, resized_h), (top, left))`` of image ``index`` in ``epoch``."""
        width, height = self.sizes[index]
        rng = (
            None
            if self.center_crop
            else _seed_of(self.seed, 0 if self.fixed_crops else epoch, index)
        )
        return crop_box(width, height, self.targets[index], rng)

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, Any]:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        return self.item(epoch, index, load_pixels=self.load_pixels)

    def item(self, epoch: int, index: int, *, load_pixels: bool = True) -> dict[str, Any]:
        """Image ``index`` as cropped in ``epoch``; ``pixels`` is None without ``load_pixels``
        (the conditioning is known from the image size alone)."""
        import torch
        from PIL import Image

        example = self.examples[index]
        width, height = self.sizes[index]
        (resized_w, resized_h), (top, left) = self.crop_of(epoch, index)
        target_w, target_h = self.targets[index]
        pixels = None
        if load_pixels:
            image = read_image(example.path)
            height, width = image.shape[:2]
            pil = Image.fromarray(image)
            if (resized_w, resized_h) != (width, height):
                pil = pil.resize((resized_w, resized_h), Image.Resampling.LANCZOS)
            pil = pil.crop((left, top, left + target_w, top + target_h))
            array = np.asarray(pil, dtype=np.float32) / 255.0
            pixels = torch.from_numpy(array).permute(2, 0, 1).contiguous()
        return {
            "pixels": pixels,
            "caption": example.caption,
            "original_size": (height, width),
            "crop_top_left": (top, left),
            "target_size": (target_h, target_w),
            "index": index,
            "epoch": epoch,
            "key": example.key,
        }


def _image_size(example: Example, image_module: Any) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the metadata when curation recorded it."""
    row = example.row
    try:
        width, height = int(row["width"]), int(row["height"])
        if width > 0 and height > 0:
            return width, height
    except (KeyError, TypeError, ValueError):
        pass
    from PIL import ImageOps

    with image_module.open(example.path) as handle:
        return ImageOps.exif_transpose(handle).size


def collate(items: list[dict]) -> dict[str, Any]:
    """Stack a list of dataset items (all of one bucket) into a batch."""
    import torch

    batch: dict[str, Any] = {
        "pixels": None
        if any(item["pixels"] is None for item in items)
        else torch.stack([item["pixels"] for item in items]),
        "captions": [item["caption"] for item in items],
        "time_ids": torch.tensor(
            [[*i["original_size"], *i["crop_top_left"], *i["target_size"]] for i in items],
            dtype=torch.float32,
        ),
        "indices": [item["index"] for item in items],
        "epochs": [item["epoch"] for item in items],
        "keys": [item["key"] for item in items],
    }
    return batch


class BucketBatchSampler:
    """Batches of ``(epoch, index)`` drawn from one bucket each, reshuffled every epoch.

    The order of epoch ``e`` depends only on ``(seed, e)``: a resumed run replays it and
    skips the batches already done. Every image appears once per epoch; a bucket's last batch
    may be short.
    """

    def __init__(self, targets: list[tuple[int, int]], batch_size: int, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        groups: dict[tuple[int, int], list[int]] = {}
        for index, target in enumerate(targets):
            groups.setdefault(target, []).append(index)
        self.groups = [groups[key] for key in sorted(groups)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        rng = _seed_of(self.seed, epoch, 7)
        batches = []
        for group in self.groups:
            order = [group[i] for i in rng.permutation(len(group))]
            for start in range(0, len(order), self.batch_size):
                batches.append([(epoch, i) for i in order[start : start + self.batch_size]])
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        return iter(self.batches(self.epoch))

    def __len__(self) -> int:
        return sum(math.ceil(len(g) / self.batch_size) for g in self.groups)
