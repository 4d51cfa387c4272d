"""The curation pipeline: sources → decode → filters → exact de-duplication → imagefolder.

Every input ends up in exactly one of ``OUT/metadata.jsonl`` (kept) and ``OUT/rejected.csv``
(with its reason); a broken file is a rejection, never a crash.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from restorelab.config import dataclass_from_dict, load_yaml
from restorelab.corpus import METADATA_FILE
from restorelab.curation.filters import FILTERS
from restorelab.curation.sources import SourceItem, iter_sources
from restorelab.imageio import (
    DecodedImage,
    ImageReadError,
    decode_image_info,
    pixel_hash,
    write_image,
)
from restorelab.results import write_json_atomic

REJECTED_FILE = "rejected.csv"
SUMMARY_FILE = "curation.json"
IMAGES_DIR = "images"

#: Formats copied byte for byte when the file needs no conversion; others are written as PNG.
_COPYABLE = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


@dataclass
class CurationConfig:
    """Thresholds of the curation filters (``None`` switches a filter off).

    Defaults suit SDXL training data: a short side of at least 1024 pixels.
    """

    min_side: int | None = 1024
    max_aspect: float | None = 4.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
            ):
                raise ValueError(f"{name} must be a positive number or null, got {value!r}")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> CurationConfig:
        """Read a config file; unknown keys raise naming the valid ones."""
        return dataclass_from_dict(cls, load_yaml(path), source=str(path))

    def thresholds(self) -> dict:
        """Filter name → threshold for the filters that are on."""
        return {k: v for k, v in asdict(self).items() if k in FILTERS and v is not None}


@dataclass
class CurationResult:
    """Counts and locations of a curation run."""

    out_dir: Path
    kept: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _safe_stem(path: Path) -> str:
    stem = re.sub(r"[^\w.-]+", "_", path.stem, flags=re.UNICODE).strip("._") or "image"
    return stem[:80]


def _export(item: SourceItem, data: bytes, decoded: DecodedImage, digest: str, out: Path) -> str:
    """Write the kept image under ``out/images``; returns its path relative to ``out``."""
    suffix = _COPYABLE.get(decoded.format or "")
    copy_bytes = suffix is not None and decoded.is_plain_rgb
    name = f"{_safe_stem(item.path)}-{digest[:10]}{suffix if copy_bytes else '.png'}"
    target = out / IMAGES_DIR / name
    if copy_bytes:
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    else:
        write_image(target, decoded.pixels)
    return f"{IMAGES_DIR}/{name}"


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def curate(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    config: CurationConfig | None = None,
    *,
    progress: bool = True,
) -> CurationResult:
    """Curate images from ``sources`` into a Hugging Face imagefolder at ``out``.

    Writes ``out/images/``, ``out/metadata.jsonl`` (``file_name``, ``text``, ``source``,
    ``width``, ``height``, ``sha256``), ``out/rejected.csv`` (``source``, ``reason``) and
    ``out/curation.json`` (config and counts). Captions come from a sidecar ``.txt`` file
    beside each image. Exact duplicates (same decoded pixels) keep the first source in sorted
    order. ``out`` is rewritten from scratch.
    """
    config = config or CurationConfig()
    out = Path(out)
    if out.exists():
        for name in (IMAGES_DIR,):
            shutil.rmtree(out / name, ignore_errors=True)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    thresholds = config.thresholds()
    result = CurationResult(out_dir=out)
    kept_rows: list[dict] = []
    rejected_rows: list[dict] = []
    first_source_of: dict[str, str] = {}

    def reject(source: str, reason: str) -> None:
        rejected_rows.append({"source": source, "reason": reason})
        kind = _reason_kind(reason)
        result.reasons[kind] = result.reasons.get(kind, 0) + 1

    started = time.time()
    items = list(iter_sources(sources))
    for item in tqdm(items, desc="curate", unit="img", disable=not progress):
        try:
            data = item.read_bytes()
            decoded = decode_image_info(data, source=item.source)
        except ImageReadError as exc:
            reject(item.source, f"undecodable: {exc.reason}")
            continue
        except OSError as exc:
            reject(item.source, f"unreadable: {exc}")
            continue
        reasons = [
            reason
            for name, threshold in thresholds.items()
            if (reason := FILTERS.get(name).fn(decoded.pixels, threshold))
        ]
        if reasons:
            reject(item.source, "; ".join(reasons))
            continue
        digest = pixel_hash(decoded.pixels)
        if digest in first_source_of:
            reject(item.source, f"exact duplicate: same pixels as {first_source_of[digest]}")
            continue
        first_source_of[digest] = item.source
        h, w = decoded.pixels.shape[:2]
        kept_rows.append(
            {
                "file_name": _export(item, data, decoded, digest, out),
                "text": item.sidecar_caption(),
                "source": item.source,
                "width": w,
                "height": h,
                "sha256": digest,
            }
        )

    with open(out / METADATA_FILE, "w", encoding="utf-8") as handle:
        for row in kept_rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(out / REJECTED_FILE, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "reason"])
        writer.writeheader()
        writer.writerows(rejected_rows)
    result.kept, result.rejected = len(kept_rows), len(rejected_rows)
    write_json_atomic(
        out / SUMMARY_FILE,
        {
            "sources": [os.fspath(s) for s in sources],
            "config": asdict(config),
            "inputs": len(items),
            "kept": result.kept,
            "rejected": result.rejected,
            "rejection_reasons": result.reasons,
            "seconds": round(time.time() - started, 3),
        },
    )
    return result
