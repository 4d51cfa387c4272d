"""The curation pipeline: sources → analysis (cached) → duplicates → filters → captions →
selection of exactly N → Hugging Face imagefolder with a dataset card.

Every input ends up in exactly one of ``OUT/metadata.jsonl`` (kept) and ``OUT/rejected.csv``
(with its reason and signal values); a broken file, a failed download or a failing caption is
a rejection, never a crash. Analysis results are cached by content hash
(``OUT/.cache`` by default), so a re-run — or a run killed half-way — skips finished work.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from restorelab.config import dataclass_from_dict, load_yaml
from restorelab.corpus import METADATA_FILE
from restorelab.curation.cache import AnalysisCache
from restorelab.curation.filters import FILTERS, default_thresholds
from restorelab.curation.signals import compute_signals
from restorelab.curation.sources import SourceItem, count_sources, iter_sources
from restorelab.imageio import (
    MAX_PIXELS,
    DecodedImage,
    ImageReadError,
    decode_image,
    decode_image_info,
    pixel_hash,
    write_image,
)
from restorelab.memory import keep_freed_memory
from restorelab.results import write_json_atomic

REJECTED_FILE = "rejected.csv"
SUMMARY_FILE = "curation.json"
CARD_FILE = "README.md"
IMAGES_DIR = "images"
PARQUET_DIR = "parquet"
CACHE_DIR = ".cache"

#: Formats copied byte for byte when the file needs no conversion; others are written as PNG.
_COPYABLE = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}

#: Signals written beside every image in metadata.jsonl and rejected.csv, in this order.
SIGNAL_COLUMNS = (
    "width",
    "height",
    "aspect",
    "megapixels",
    "sharpness",
    "noise_sigma",
    "jpeg_quality",
    "jpeg_nonstandard_tables",
    "clipped_dark",
    "clipped_bright",
    "colourfulness",
    "entropy",
    "is_grayscale",
    "format",
    "mode",
    "orientation",
)


@dataclass
class CurationConfig:
    """What a curation run keeps. YAML keys are the field names.

    Attributes
    ----------
    filters : dict
        Filter name → threshold, merged over the defaults (see ``restorelab list`` and
        :mod:`restorelab.curation.filters`); ``null`` switches a filter off.
    target : int or None
        How many images to keep (None: every image that passes). The reference recipe: 2600.
    near_duplicates : bool
        Group near duplicates (resized, re-encoded, slightly cropped copies) and keep one.
    hamming_radius, min_similarity : optional
        Near-duplicate thresholds (None: :mod:`restorelab.curation.dedup`'s defaults).
    require_captions : bool
        Reject images whose caption is empty, shorter than ``min_caption_words`` or the same
        text as another kept image's.
    quality_pool : float
        Selection keeps the best ``quality_pool × target`` images by quality, then picks the
        most diverse ``target`` of them.
    category : str or None
        Where quotas read an image's category: ``"folder"`` (its folder in the source),
        ``"face"`` (OpenCV face detector: ``face`` / ``no_face``) or a metadata column.
    quotas : dict
        Category → share (≤ 1) or count of the target, filled first.
    max_pixels : int
        Larger images are rejected without decoding (decompression-bomb guard).
    parquet_shard_rows : int
        Also write Parquet shards of this many rows under ``OUT/parquet`` (0: none).
    license : str
        Licence field of the dataset card (check your sources' licences).
    workers : int
        Analysis threads (0: one per CPU core).
    """

    filters: dict[str, Any] = field(default_factory=dict)
    target: int | None = 2600
    near_duplicates: bool = True
    hamming_radius: int | None = None
    min_similarity: float | None = None
    require_captions: bool = False
    min_caption_words: int = 5
    quality_pool: float = 2.0
    category: str | None = None
    quotas: dict[str, float] = field(default_factory=dict)
    max_pixels: int = MAX_PIXELS
    parquet_shard_rows: int = 0
    license: str = "other"
    workers: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.filters, dict):
            raise ValueError(
                f"filters must be a mapping of filter name to threshold, got "
                f"{type(self.filters).__name__}"
            )
        unknown = sorted(set(self.filters) - set(FILTERS.names()))
        if unknown:
            raise ValueError(f"unknown filter(s) {unknown}; known: {', '.join(FILTERS.names())}")
        self.filters = {**default_thresholds(), **self.filters}
        for name, value in self.filters.items():
            if value is not None and not isinstance(value, (int, float, bool)):
                raise ValueError(
                    f"threshold of {name} must be a number, a boolean or null, got {value!r}"
                )
        if self.target is not None and (isinstance(self.target, bool) or self.target < 1):
            raise ValueError(f"target must be a positive integer or null, got {self.target!r}")
        if self.quality_pool < 1:
            raise ValueError(f"quality_pool must be >= 1, got {self.quality_pool}")
        if self.quotas and not self.category:
            raise ValueError("quotas need a category (folder, face or a metadata column)")
        if self.max_pixels < 1 or self.parquet_shard_rows < 0 or self.workers < 0:
            raise ValueError("max_pixels must be >= 1; parquet_shard_rows and workers >= 0")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> CurationConfig:
        """Read a config file; unknown keys or filters raise naming the valid ones."""
        return dataclass_from_dict(cls, load_yaml(path), source=str(path))

    def active_filters(self) -> dict[str, Any]:
        """Filter name → threshold for the filters that are on."""
        return {k: v for k, v in self.filters.items() if v is not None}


@dataclass
class CurationResult:
    """Counts and locations of a curation run."""

    out_dir: Path
    kept: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    shortfall: int = 0
    cache_hits: int = 0


# --- analysis (runs in worker processes) -----------------------------------------------------
def _decode_plain_jpeg(data: bytes, max_pixels: int) -> DecodedImage | None:
    """The pixels of a complete, upright, 3-component JPEG through OpenCV; None otherwise.

    OpenCV's libjpeg-turbo writes RGB straight into the array (no Pillow image, no copy): the
    same pixels as :func:`~restorelab.imageio.decode_image_info` at about half its cost. Every
    other file — PNG, grey, CMYK or rotated JPEGs, truncated ones (no end-of-image marker),
    anything OpenCV refuses — returns None and goes through Pillow, which also gives the
    error messages.
    """
    if not (data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            if img.format != "JPEG" or img.mode != "RGB":
                return None
            width, height = img.size
            if width * height > max_pixels or int(img.getexif().get(0x0112, 1) or 1) != 1:
                return None
    except Exception:
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape != (height, width, 3):
        return None
    return DecodedImage(pixels=pixels, format="JPEG", mode="RGB", orientation=1)


#: Held around Pillow decodes: ``decode_image_info`` sets process-wide state for the time of
#: a decode (Pillow's pixel limit, the warnings filters), which threads must not interleave.
_PILLOW_LOCK = threading.Lock()
#: Held around face detection: the cached detectors are not thread-safe.
_FACES_LOCK = threading.Lock()


def analyse(data: bytes, source: str, max_pixels: int, want_faces: bool) -> dict:
    """Decode one encoded image and measure everything curation needs (no pixels kept).

    Returns a record with ``error`` (None or the reason), ``signals``, ``pixel_hash``,
    ``fingerprint``, ``embedding``, ``faces`` and ``plain_rgb`` (the file decodes to its
    pixels with no conversion or rotation, so it can be copied byte for byte).
    """
    from restorelab.curation.dedup import fingerprint, working_copy
    from restorelab.curation.selection import detect_faces, embed

    decoded = _decode_plain_jpeg(data, max_pixels)
    if decoded is None:
        try:
            with _PILLOW_LOCK:
                decoded = decode_image_info(data, source=source, max_pixels=max_pixels)
        except ImageReadError as exc:
            return {"error": f"undecodable: {exc.reason}"}
    pixels = decoded.pixels
    small = working_copy(pixels)  # shared by the fingerprint and the embedding
    faces = None
    if want_faces:
        with _FACES_LOCK:
            faces = detect_faces(pixels)
    return {
        "error": None,
        "signals": compute_signals(decoded, data),
        "pixel_hash": pixel_hash(pixels),
        "fingerprint": fingerprint(small),
        "embedding": embed(small),
        "faces": faces,
        "plain_rgb": decoded.is_plain_rgb and decoded.format in _COPYABLE,
        "format": decoded.format,
    }


@dataclass
class _Record:
    """One input and everything known about it."""

    index: int
    source: str
    path: str | None
    caption: str
    metadata: dict
    sha: str = ""
    analysis: dict = field(default_factory=dict)
    reason: str | None = None
    from_blob: bool = False

    @property
    def signals(self) -> dict:
        return self.analysis.get("signals", {})


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def _analysed(
    items: Iterable[SourceItem],
    cache: AnalysisCache,
    config: CurationConfig,
    progress: bool,
    total: int | None = None,
) -> Iterator[_Record]:
    """Analysis records in input order, from the cache or a bounded pool of threads.

    Threads, not processes: the analysis is OpenCV, libjpeg, SHA-256 and NumPy work on whole
    images, all of which release the GIL, so two threads keep two cores busy; there is no
    worker start-up (a fork server and its imports cost seconds), no pickling, one copy of
    the imported modules in memory, and no fork of a process that may run threads. OpenCV
    runs one thread per call meanwhile (the analysis threads fill the cores; about 10 %
    faster than both calling into OpenCV's own pool), restored afterwards.
    """
    workers = config.workers or os.cpu_count() or 1
    want_faces = config.category == "face"
    window = 4 * workers
    pool = ThreadPoolExecutor(workers, thread_name_prefix="analyse") if workers > 1 else None
    opencv_threads, started = cv2.getNumThreads(), False
    pending: list[tuple[_Record, Future | None]] = []
    bar = tqdm(desc="analyse", unit="img", total=total, disable=not progress)

    def finish(record: _Record, future: Future | None) -> _Record:
        if future is not None:
            try:
                record.analysis = future.result()
            except Exception as exc:  # a worker crash is this image's problem only
                record.analysis = {"error": f"analysis failed: {type(exc).__name__}: {exc}"}
            cache.put(record.sha, record.analysis)
        if record.analysis.get("error") and record.reason is None:
            record.reason = record.analysis["error"]
        bar.update(1)
        return record

    try:
        for index, item in enumerate(items):
            record = _Record(
                index,
                item.source,
                str(item.path) if item.path else None,
                item.sidecar_caption() or "",
                dict(item.metadata or {}),
            )
            future = None
            try:
                data = item.read_bytes()
            except OSError as exc:
                message = str(exc.strerror or exc)
                record.reason = f"unreadable: {message.removeprefix('unreadable ')}"
                pending.append((record, None))
            else:
                record.sha = hashlib.sha256(data).hexdigest()
                if record.path is None:
                    cache.put_blob(record.sha, data)
                    record.from_blob = True
                cached = cache.get(record.sha)
                if cached is not None and (
                    not want_faces or cached.get("faces") is not None or cached.get("error")
                ):
                    record.analysis = cached
                    record.metadata["_cache_hit"] = True
                elif pool is None:
                    record.analysis = analyse(data, item.source, config.max_pixels, want_faces)
                    cache.put(record.sha, record.analysis)
                else:
                    if not started:  # the first image to analyse
                        started = True
                        cv2.setNumThreads(1)
                        # imported here rather than by a thread, where importing would hold
                        # the GIL against the other analysis threads
                        import restorelab.curation.dedup
                        import restorelab.curation.selection  # noqa: F401
                    future = pool.submit(analyse, data, item.source, config.max_pixels, want_faces)
                pending.append((record, future))
            while len(pending) > window or (pending and pending[0][1] is None):
                yield finish(*pending.pop(0))
        while pending:
            yield finish(*pending.pop(0))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
            if started:
                cv2.setNumThreads(opencv_threads)


def _category(record: _Record, config: CurationConfig) -> str | None:
    if config.category is None:
        return None
    if config.category == "face":
        return "face" if (record.analysis.get("faces") or 0) > 0 else "no_face"
    if config.category == "folder":
        return str(record.metadata.get("category", "")) or "(root)"
    value = record.metadata.get(config.category)
    return None if value is None else str(value)


def _quality(record: _Record) -> dict:
    keys = ("width", "height", "jpeg_quality", "sharpness", "noise_sigma")
    return {k: record.signals.get(k) for k in keys}


def _keeper(
    group: list[_Record], passes: Callable[[_Record], bool], *, exact: bool = False
) -> _Record:
    """The member a duplicate group keeps, among those that pass the filters (all, when none
    does): for exact duplicates (the same pixels) the first in input order, otherwise
    :func:`~restorelab.curation.dedup.choose_keeper`'s best (largest, not blurred or noisy
    against the others, least compressed, sharpest)."""
    from restorelab.curation.dedup import choose_keeper

    candidates = [r for r in group if passes(r)] or group
    if exact:
        return min(candidates, key=lambda r: r.index)
    return candidates[choose_keeper(range(len(candidates)), [_quality(r) for r in candidates])]


def _drop_duplicates(
    records: list[_Record], config: CurationConfig, *, passes: Callable[[_Record], bool]
) -> None:
    """Reject all but the best member of each exact and each near-duplicate group."""
    from restorelab.curation.dedup import find_duplicate_groups

    by_hash: dict[str, list[_Record]] = {}
    for record in records:
        by_hash.setdefault(record.analysis["pixel_hash"], []).append(record)
    for group in by_hash.values():
        if len(group) > 1:
            keeper = _keeper(group, passes, exact=True)
            for record in group:
                if record is not keeper:
                    record.reason = f"exact duplicate: same pixels as {keeper.source}"
    if not config.near_duplicates:
        return
    alive = [r for r in records if r.reason is None]
    options = {
        k: v
        for k, v in (
            ("hamming_radius", config.hamming_radius),
            ("min_similarity", config.min_similarity),
        )
        if v is not None
    }
    groups = find_duplicate_groups([r.analysis["fingerprint"] for r in alive], **options)
    for group in groups:
        members = [alive[i] for i in group]
        keeper = _keeper(members, passes)
        for record in members:
            if record is not keeper:
                record.reason = f"near duplicate: of {keeper.source}"


def _pixels(record: _Record, cache: AnalysisCache) -> np.ndarray:
    path = cache.blob_path(record.sha) if record.from_blob else record.path
    return decode_image(path, source=record.source)


def _caption(
    records: list[_Record],
    captioner: Any,
    cache: AnalysisCache,
    config: CurationConfig,
    progress: bool,
) -> None:
    """Fill missing captions with the captioner; apply the caption checks if required."""
    from restorelab.curation.captioner import CaptionCache, caption_problems

    if captioner is not None:
        todo = [r for r in records if not r.caption.strip()]
        caption_cache = CaptionCache(cache.folder / "captions.sqlite")
        batch = max(1, getattr(captioner, "batch_size", 8))
        for start in tqdm(
            range(0, len(todo), batch),
            desc="caption",
            unit="batch",
            disable=not progress or not todo,
        ):
            chunk = todo[start : start + batch]
            images = []
            for record in chunk:
                try:
                    images.append(_pixels(record, cache))
                except ImageReadError as exc:
                    record.reason = f"undecodable: {exc.reason}"
            chunk = [r for r in chunk if r.reason is None]
            texts = captioner.caption(images, cache=caption_cache) if images else []
            for record, text in zip(chunk, texts, strict=True):
                record.caption = text
                record.metadata["captioned_by"] = getattr(captioner, "identity", "captioner")
    if config.require_captions:
        alive = [r for r in records if r.reason is None]
        problems = caption_problems([r.caption for r in alive], min_words=config.min_caption_words)
        for record, problem in zip(alive, problems, strict=True):
            if problem:
                record.reason = f"caption: {problem}"


def _select(records: list[_Record], config: CurationConfig) -> int:
    """Mark all but the chosen ``target`` as not selected; returns the shortfall."""
    from restorelab.curation.selection import quality_score, select

    alive = [r for r in records if r.reason is None]
    if config.target is None or len(alive) <= config.target:
        return 0 if config.target is None else config.target - len(alive)
    scores = np.array([quality_score(r.signals) for r in alive])
    embeddings = np.stack([r.analysis["embedding"] for r in alive])
    categories = [_category(r, config) for r in alive] if config.category else None
    chosen = set(
        select(
            config.target,
            scores,
            embeddings,
            categories=categories,
            quotas=config.quotas or None,
            quality_pool=config.quality_pool,
        )
    )
    for i, record in enumerate(alive):
        if i not in chosen:
            record.reason = (
                f"not selected: target {config.target} reached (quality score {scores[i]:.3f})"
            )
    return 0


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem, flags=re.UNICODE).strip("._") or "image"
    return stem[:80]


def _export_image(record: _Record, cache: AnalysisCache, out: Path) -> str:
    """Write a kept image under ``out/images``; returns its path relative to ``out``."""
    analysis = record.analysis
    digest = analysis["pixel_hash"]
    name_hint = record.path or record.source.split("#")[-1].split("/")[-1]
    if analysis.get("plain_rgb"):
        suffix = _COPYABLE[analysis["format"]]
        name = f"{_safe_stem(name_hint)}-{digest[:10]}{suffix}"
        source = cache.blob_path(record.sha) if record.from_blob else Path(record.path)
        target = out / IMAGES_DIR / name
        tmp = target.with_name(f".{name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    else:
        name = f"{_safe_stem(name_hint)}-{digest[:10]}.png"
        write_image(out / IMAGES_DIR / name, _pixels(record, cache))
    return f"{IMAGES_DIR}/{name}"


def _signal_columns(record: _Record) -> dict:
    return {k: record.signals.get(k) for k in SIGNAL_COLUMNS}


def curate(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    config: CurationConfig | None = None,
    *,
    captioner: Any = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> CurationResult:
    """Curate images from ``sources`` into a Hugging Face imagefolder at ``out``.

    Writes ``out/images/``, ``out/metadata.jsonl`` (``file_name``, ``text``, ``source``,
    ``sha256`` of the source file's bytes, ``pixel_hash`` of the decoded pixels
    (:func:`~restorelab.imageio.pixel_hash`), ``category`` and the signals),
    ``out/rejected.csv`` (``source``, ``reason`` and the signals), the dataset card
    ``out/README.md``, ``out/curation.json`` (config, counts, timings) and, if configured,
    Parquet shards. ``out`` is rewritten except for its
    cache. ``captioner`` (a :class:`~restorelab.curation.captioner.Captioner`) captions
    images that have no caption from their source.
    """
    config = config or CurationConfig()
    out = Path(out)
    started = time.time()
    for name in (IMAGES_DIR, PARQUET_DIR):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    cache = AnalysisCache(Path(cache_dir) if cache_dir else out / CACHE_DIR)
    try:
        items = iter_sources(list(sources))
        total = count_sources(list(sources)) if progress else None
        with keep_freed_memory():
            records = list(_analysed(items, cache, config, progress, total))
        result = CurationResult(out_dir=out)
        result.cache_hits = sum(1 for r in records if r.metadata.pop("_cache_hit", False))
        # Duplicates first, among every decodable image, so that each group is reported as
        # duplicates of its best member (one that passes the filters, when any does); then
        # the filters judge the survivors.
        thresholds = config.active_filters()
        failures: dict[int, str] = {}
        for record in records:
            if record.reason is None:
                reasons = [
                    reason
                    for name, threshold in thresholds.items()
                    if (reason := FILTERS.get(name).check(record.signals, threshold))
                ]
                if reasons:
                    failures[record.index] = "; ".join(reasons)
        _drop_duplicates(
            [r for r in records if r.reason is None],
            config,
            passes=lambda r: r.index not in failures,
        )
        for record in records:
            if record.index in failures:
                if record.reason is None:
                    record.reason = failures[record.index]
                elif "duplicate" in _reason_kind(record.reason):
                    record.reason += f"; also {failures[record.index]}"
        _caption([r for r in records if r.reason is None], captioner, cache, config, progress)
        result.shortfall = _select(records, config)
        kept_rows, rejected_rows = [], []
        for record in tqdm(records, desc="export", unit="img", disable=not progress):
            if record.reason is None:
                try:
                    file_name = _export_image(record, cache, out)
                except (ImageReadError, OSError) as exc:
                    record.reason = f"export failed: {exc}"
                else:
                    kept_rows.append(
                        {
                            "file_name": file_name,
                            "text": record.caption,
                            "source": record.source,
                            "sha256": record.sha,
                            "pixel_hash": record.analysis["pixel_hash"],
                            "category": _category(record, config),
                            **_signal_columns(record),
                        }
                    )
                    continue
            rejected_rows.append(
                {"source": record.source, "reason": record.reason, **_signal_columns(record)}
            )
        result.kept, result.rejected = len(kept_rows), len(rejected_rows)
        result.reasons = dict(Counter(_reason_kind(r["reason"]) for r in rejected_rows))
        _write_tables(out, kept_rows, rejected_rows)
        if config.parquet_shard_rows and kept_rows:
            _write_parquet_shards(out, config.parquet_shard_rows)
        summary = {
            "sources": [os.fspath(s) for s in sources],
            "config": asdict(config),
            "inputs": len(records),
            "kept": result.kept,
            "rejected": result.rejected,
            "rejection_reasons": result.reasons,
            "target": config.target,
            "shortfall": result.shortfall,
            "cache_hits": result.cache_hits,
            "captioner": getattr(captioner, "identity", None) if captioner else None,
            "captioner_prompt": getattr(captioner, "prompt", None) if captioner else None,
            "seconds": round(time.time() - started, 3),
        }
        write_json_atomic(out / SUMMARY_FILE, summary)
        from restorelab.curation.card import write_dataset_card

        write_dataset_card(out / CARD_FILE, summary, kept_rows, config)
    finally:
        cache.close()
    return result


def _write_tables(out: Path, kept_rows: list[dict], rejected_rows: list[dict]) -> None:
    tmp = out / f".{METADATA_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in kept_rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, out / METADATA_FILE)
    tmp = out / f".{REJECTED_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "reason", *SIGNAL_COLUMNS])
        writer.writeheader()
        writer.writerows(rejected_rows)
    os.replace(tmp, out / REJECTED_FILE)


def _write_parquet_shards(out: Path, rows_per_shard: int) -> None:
    """Parquet shards of the exported imagefolder (image bytes embedded), for the Hub."""
    import datasets

    dataset = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    shards = max(1, -(-len(dataset) // rows_per_shard))
    (out / PARQUET_DIR).mkdir(exist_ok=True)
    for index in range(shards):
        part = dataset.shard(num_shards=shards, index=index, contiguous=True)
        part.to_parquet(str(out / PARQUET_DIR / f"train-{index:05d}-of-{shards:05d}.parquet"))
