"""The curation pipeline: sources → analysis (cached) → duplicates → filters → captions →
selection of exactly N → Hugging Face imagefolder with a dataset card.

Every input ends up in exactly one of ``OUT/metadata.jsonl`` (kept) and ``OUT/rejected.csv``
(with its reason and signal values); a broken file, a failed download or a failing caption is
a rejection, never a crash. Analysis results are cached by content hash
(``OUT/.cache`` by default), so a re-run — or a run killed half-way — skips finished work.

The config is validated before anything is read (:mod:`restorelab.curation.schema`). The new
dataset is built beside ``OUT`` and swapped in only when complete
(:mod:`restorelab.curation.output`): an interrupted or failed run leaves the previous
dataset as it was. Results do not depend on the number of analysis threads (OpenCV runs
single-threaded inside each analysis), so ``--workers 1``, the default and a resumed run
write the same ``metadata.jsonl``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import heapq
import io
import json
import math
import os
import re
import shutil
import struct
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from restorelab.corpus import METADATA_FILE
from restorelab.curation.cache import AnalysisCache
from restorelab.curation.filters import FILTERS
from restorelab.curation.output import CurationError, output_lock, staging_dir, swap_in
from restorelab.curation.records import Columns, DigestSet, RecordStore
from restorelab.curation.schema import CurationConfig
from restorelab.curation.signals import compute_signals, jpeg_quantization_tables
from restorelab.curation.sources import SourceItem, SourceStats, count_sources, iter_sources
from restorelab.imageio import (
    MAX_PIXELS,
    DecodedImage,
    ImageReadError,
    decode_image_info,
    pixel_hash,
)
from restorelab.memory import keep_freed_memory
from restorelab.progress import tqdm
from restorelab.results import write_json_atomic

REJECTED_FILE = "rejected.csv"
SUMMARY_FILE = "curation.json"
CARD_FILE = "README.md"
IMAGES_DIR = "images"
PARQUET_DIR = "parquet"
CACHE_DIR = ".cache"
#: The run's record and thumbnail stores, inside the staging folder (deleted before swap-in).
WORK_DIR = ".work"

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
class CurationResult:
    """Counts and locations of a curation run."""

    out_dir: Path
    kept: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    shortfall: int = 0
    #: Inputs whose analysis came from a cache entry written before this run.
    cache_hits: int = 0
    #: What the sources skipped and chose (:meth:`SourceStats.as_dict`).
    sources: dict[str, Any] = field(default_factory=dict)


#: Inputs listed ahead per analysis thread, the largest of which starts next (see
#: :func:`_analysed`); listing also stops while the listed inputs that hold their bytes in
#: memory (archive members, downloads, rows) hold more than :data:`LOOKAHEAD_BYTES`.
LOOKAHEAD = 32
LOOKAHEAD_BYTES = 256 * 2**20

#: Analysis failures that say nothing about the image (memory, time): never cached.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (MemoryError, TimeoutError)


# --- analysis (runs in worker processes) -----------------------------------------------------
def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) as Pillow's ``ImageOps.exif_transpose`` does."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.transpose(1, 0, 2)
    if orientation == 6:
        return pixels.transpose(1, 0, 2)[:, ::-1]
    if orientation == 7:
        return pixels[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return pixels.transpose(1, 0, 2)[::-1]
    return pixels


def _decode_plain_jpeg(data: bytes, max_pixels: int) -> DecodedImage | None:
    """The pixels of a complete RGB or grey JPEG through OpenCV; None otherwise.

    OpenCV's libjpeg-turbo writes RGB straight into the array (no Pillow image, no copy): the
    same pixels as :func:`~restorelab.imageio.decode_image_info` at about half its cost. The
    EXIF orientation is applied as Pillow applies it (flips and transposes, then one
    contiguous copy); grey JPEGs come out with R = G = B as Pillow's conversion gives. Every
    other file — PNG, CMYK JPEGs, truncated ones (no end-of-image marker), anything OpenCV
    refuses — returns None and goes through Pillow, which also gives the error messages.
    """
    if not (data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            if img.format != "JPEG" or img.mode not in ("RGB", "L"):
                return None
            mode = img.mode
            width, height = img.size
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            if width * height > max_pixels or not 1 <= orientation <= 8:
                return None
    except Exception:
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape != (height, width, 3):
        return None
    if orientation != 1:
        pixels = np.ascontiguousarray(_orient(pixels, orientation))
    return DecodedImage(pixels=pixels, format="JPEG", mode=mode, orientation=orientation)


def _alpha_on_white_table() -> np.ndarray:
    """``table[a << 8 | c]``: channel value ``c`` at alpha ``a`` composited on opaque white,
    with the integer arithmetic of Pillow's ``Image.alpha_composite`` (7 extra bits, rounded
    divisions by 255); equal to Pillow for all 65,536 pairs (tested)."""
    alpha, channel = np.divmod(np.arange(65536, dtype=np.uint32), 256)
    scaled = (channel * alpha + 255 * (255 - alpha)) * 128 + (0x80 << 7)
    return ((((scaled >> 8) + scaled) >> 8) >> 7).astype(np.uint8)


_ALPHA_ON_WHITE = _alpha_on_white_table()
#: ``table[v]``: a 16-bit grey value as :func:`restorelab.imageio._to_rgb` scales it to 8 bits
#: when the image holds values above 255 (``round(v / 65535 * 255)``, which is
#: ``(v + 128) // 257`` for every v: no v / 257 falls on a half); it keeps smaller ones.
_GREY16_TO_8 = ((np.arange(65536, dtype=np.uint32) + 128) // 257).astype(np.uint8)


def _composite_on_white(bgra: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` of an 8-bit BGRA array laid on opaque white as Pillow's
    ``alpha_composite`` does (:data:`_ALPHA_ON_WHITE`); opaque images just drop the alpha."""
    if int(bgra[..., 3].min(initial=255)) == 255:
        return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)
    index = bgra[..., :3].astype(np.uint16)
    index |= bgra[..., 3:4].astype(np.uint16) << 8
    return cv2.cvtColor(_ALPHA_ON_WHITE[index], cv2.COLOR_BGR2RGB)


def _decode_png(data: bytes, max_pixels: int) -> DecodedImage | None:
    """A PNG through OpenCV with exactly the pixels of the Pillow path; None otherwise.

    OpenCV's libpng releases the GIL for the whole decode and is about twice as fast as
    Pillow's. Each of Pillow's PNG modes is converted as :func:`restorelab.imageio._to_rgb`
    converts it (tested pixel for pixel against it):

    - ``1``, ``L``, ``P`` and ``RGB`` (8 or 16 bits per sample) without transparency: OpenCV
      expands them to RGB as Pillow does;
    - ``RGBA``, ``LA`` and ``P`` with a transparent palette entry: composited on white with
      Pillow's integer arithmetic (:func:`_composite_on_white`; 16-bit samples keep their
      high byte, as Pillow reads them);
    - ``I;16`` / ``I`` (16-bit grey): scaled to 8 bits as ``_to_rgb`` scales them.

    Grey or RGB PNGs with a colour-key transparency, PNGs with an EXIF chunk (orientation),
    animated PNGs, anything else Pillow reads differently, and damaged files return None and
    go through Pillow, which also words the errors. Neither applies gamma or ICC profiles.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the chunks before the pixels only
            if img.format != "PNG":
                return None
            mode, (width, height) = img.mode, img.size
            transparent = img.info.get("transparency") is not None
    except Exception:
        return None
    if width * height > max_pixels or b"eXIf" in data or b"acTL" in data:
        return None
    buffer = np.frombuffer(data, np.uint8)
    if mode in ("1", "L", "P", "RGB") and not transparent:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    elif mode in ("RGBA", "LA") or (mode == "P" and transparent):
        bgra = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
            return None
        if bgra.dtype == np.uint16:
            bgra = (bgra >> 8).astype(np.uint8)
        pixels = _composite_on_white(bgra) if bgra.dtype == np.uint8 else None
    elif mode in ("I;16", "I;16B", "I") and not transparent:
        grey = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if grey is None or grey.dtype != np.uint16 or grey.ndim != 2:
            return None
        grey8 = _GREY16_TO_8[grey] if int(grey.max(initial=0)) > 255 else grey.astype(np.uint8)
        pixels = cv2.cvtColor(grey8, cv2.COLOR_GRAY2RGB)
    else:
        return None
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape != (height, width, 3):
        return None
    return DecodedImage(pixels=pixels, format="PNG", mode=mode, orientation=1)


#: Held around Pillow decodes: ``decode_image_info`` sets process-wide state for the time of
#: a decode (Pillow's pixel limit, the warnings filters), which threads must not interleave.
_PILLOW_LOCK = threading.Lock()


def _decode_pillow_unlocked(data: bytes, max_pixels: int) -> DecodedImage | None:
    """Any image Pillow reads, decoded without the process-wide settings (and so without
    :data:`_PILLOW_LOCK`: two threads decode PNG, CMYK, 16-bit or rotated files at once).

    The same pixels, format, mode and orientation as
    :func:`~restorelab.imageio.decode_image_info`. Returns None — the caller then takes the
    locked path, which also words the errors — for anything unusual: a file Pillow refuses,
    or more pixels than ``max_pixels`` or than Pillow's own bomb limit.
    """
    from PIL import ImageOps

    from restorelab.imageio import _to_rgb

    try:
        with Image.open(io.BytesIO(data)) as img:
            pixels = img.width * img.height
            if pixels > max_pixels or pixels > (Image.MAX_IMAGE_PIXELS or pixels):
                return None
            img.load()
            fmt, mode = img.format, img.mode
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            rgb = np.array(_to_rgb(ImageOps.exif_transpose(img)), dtype=np.uint8)
    except Exception:
        return None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return None
    return DecodedImage(pixels=rgb, format=fmt, mode=mode, orientation=orientation)


#: Held around face detection: the cached detectors are not thread-safe.
_FACES_LOCK = threading.Lock()


def decode(data: bytes, source: str, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Decode an encoded image as :func:`~restorelab.imageio.decode_image_info` does (the
    same pixels, format, mode and orientation; tested), by the fastest path that gives them.

    JPEGs and PNGs go through OpenCV (:func:`_decode_plain_jpeg`, :func:`_decode_png`),
    other files through Pillow without process-wide settings; only files those refuse take
    the locked reference path, which also words the errors. Safe to call from several
    threads at once.

    Raises
    ------
    ImageReadError
        Not an image, damaged, or more than ``max_pixels`` pixels.
    """
    decoded = _decode_plain_jpeg(data, max_pixels) or _decode_png(data, max_pixels)
    if decoded is None:
        decoded = _decode_pillow_unlocked(data, max_pixels)
    if decoded is None:
        with _PILLOW_LOCK:
            decoded = decode_image_info(data, source=source, max_pixels=max_pixels)
    return decoded


def analyse(
    data: bytes,
    source: str,
    max_pixels: int,
    want_faces: bool,
    with_pixels: Callable[[dict, np.ndarray], None] | None = None,
) -> dict:
    """Decode one encoded image and measure everything curation needs (no pixels kept).

    Returns a record with ``error`` (None or the reason), ``signals``, ``pixel_hash``,
    ``fingerprint``, ``embedding``, ``faces`` and ``plain_rgb`` (the file decodes to its
    pixels with no conversion or rotation, so it can be copied byte for byte).
    ``with_pixels(record, pixels)``, when given, is called last with the decoded pixels
    (the one decode also serves the export's PNG; see :func:`_run`).
    """
    from restorelab.curation.dedup import fingerprint, working_copy
    from restorelab.curation.selection import detect_faces, embed

    try:
        decoded = decode(data, source, max_pixels)
    except ImageReadError as exc:
        return {"error": f"undecodable: {exc.reason}"}
    from restorelab.curation.provenance import tone_comb_of_histograms

    pixels = decoded.pixels
    small = working_copy(pixels)  # shared by the fingerprint and the embedding
    faces = None
    if want_faces:
        with _FACES_LOCK:
            faces = detect_faces(pixels)
    tables = jpeg_quantization_tables(data) if decoded.format in ("JPEG", "MPO") else None
    histograms: list = []
    signals = compute_signals(decoded, data, channel_histograms=histograms)
    record = {
        "error": None,
        "signals": signals,
        "pixel_hash": pixel_hash(pixels),
        "fingerprint": fingerprint(small),
        "embedding": embed(small),
        "faces": faces,
        "plain_rgb": decoded.is_plain_rgb and decoded.format in _COPYABLE,
        "format": decoded.format,
        "luma_table": None if tables is None else [int(v) for v in tables[0]],
        "tone_comb": tone_comb_of_histograms(histograms),
    }
    del small, histograms
    if with_pixels is not None:
        with_pixels(record, pixels)
    return record


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
    #: "source" (its own), "duplicate" (merged from a dropped duplicate), "model" or None.
    caption_source: str | None = None
    #: Detail: the column or sidecar, the duplicate's source, the model.
    caption_origin: str | None = None
    cache_hit: bool = False
    quality_score: float | None = None
    selection_rank: int | None = None
    #: Why the filters reject it ("blurry (...)"; joined by "; "), or None.
    failure: str | None = None

    @property
    def signals(self) -> dict:
        return self.analysis.get("signals", {})


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class _LargestFirst:
    """Inputs listed but not started yet: :meth:`pop` gives the largest, unless the oldest
    has waited while ``patience`` newer inputs were listed (then the oldest), so that every
    input starts within a bounded distance of its place and records can be returned in
    input order with little held back. O(log n) per input.

    The entries live in one dict; the size heap and the listing order hold indices only,
    and an index taken through one of them is dropped from the other when it comes up (or
    when the heap has grown to twice the waiting inputs): nothing of a started input stays
    behind, so that this queue's memory does not grow with the pool (an index left in the
    heap with its record pinned Python's small-object arenas for the whole run)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self._entries: dict[int, tuple[Any, int]] = {}
        self._heap: list[tuple[int, int]] = []
        self._order: deque[int] = deque()
        self._newest = -1
        #: bytes of the waiting inputs that hold their data in memory
        self.memory_bytes = 0

    def add(self, index: int, size: int, entry: Any, in_memory: bool = False) -> None:
        held = size if in_memory else 0
        self._entries[index] = (entry, held)
        heapq.heappush(self._heap, (-size, index))
        self._order.append(index)
        self._newest = max(self._newest, index)
        self.memory_bytes += held

    def pop(self) -> Any:
        entries = self._entries
        while self._order[0] not in entries:
            self._order.popleft()
        if self._order[0] <= self._newest - self.patience:
            index = self._order.popleft()
        else:
            while self._heap[0][1] not in entries:
                heapq.heappop(self._heap)
            index = heapq.heappop(self._heap)[1]
        entry, held = entries.pop(index)
        self.memory_bytes -= held
        if len(self._heap) > 2 * len(entries) + 64:
            self._heap = [item for item in self._heap if item[1] in entries]
            heapq.heapify(self._heap)
        return entry

    def __len__(self) -> int:
        return len(self._entries)


def _size_hint(item: SourceItem) -> int:
    """The encoded size of ``item`` in bytes without reading it (0 when unknown)."""
    if item.data is not None:
        return len(item.data)
    if item.path is not None and item.error is None:
        try:
            return item.path.stat().st_size
        except OSError:
            return 0
    return 0


def _analysed(
    items: Iterable[SourceItem],
    cache: AnalysisCache,
    config: CurationConfig,
    progress: bool,
    total: int | Future | None = None,
    with_pixels: Callable[[dict, np.ndarray], None] | None = None,
) -> Iterator[_Record]:
    """Analysis records in input order, from the cache or a bounded pool of threads.

    Threads, not processes: the analysis is OpenCV, libjpeg, libpng, hashing and NumPy work
    on whole images, all of which release the GIL, so two threads keep two cores busy; there
    is no worker start-up (a fork server and its imports cost seconds), no pickling, one copy
    of the imported modules in memory, and no fork of a process that may run threads. OpenCV
    runs one thread per call meanwhile, whatever the number of workers (restored
    afterwards): its own parallel loops split sums differently with the thread count, which
    moved ``sharpness`` in its last bits; with one OpenCV thread the results are the same for
    any ``workers`` and for a resumed run.

    Scheduling: the first image starts as soon as it is listed (nothing is read or hashed
    ahead of the pool). While the threads are busy, up to :data:`LOOKAHEAD` per worker more
    inputs are listed (their sizes from the file system, not read), and a free thread takes
    the largest of them, so that a large photo late in the input does not run alone at the
    end while the other thread idles; an input waits at most two look-ahead windows.
    Completion order does not matter: records come out in input order, and each image's
    analysis does not depend on the others.

    Files with the same bytes met in one run are analysed once (the later ones wait for the
    first); only entries stored before this run count as cache hits. A transient failure
    (:data:`TRANSIENT_ERRORS`: out of memory, a timeout) rejects the image for this run
    only and is not cached. ``with_pixels(analysis, pixels)``, when given, is called in the
    analysing thread with each fresh analysis and its decoded pixels (the export encodes
    PNGs there, see :func:`_run`).
    """
    workers = config.workers or os.cpu_count() or 1
    want_faces = config.category == "face"
    lookahead = LOOKAHEAD * workers
    max_running = 2 * workers
    pool = ThreadPoolExecutor(workers, thread_name_prefix="analyse") if workers > 1 else None
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    # imported here rather than by a thread, where importing would hold the GIL against the
    # other analysis threads
    import restorelab.curation.dedup
    import restorelab.curation.provenance
    import restorelab.curation.selection  # noqa: F401

    #: every record not yet yielded, in input order; ``settled``: the indices of those done
    pending: deque[_Record] = deque()
    settled: set[int] = set()
    #: listed, not started: (record, item)
    waiting = _LargestFirst(patience=2 * lookahead)
    running: dict[Future, list[tuple[_Record, bool]]] = {}
    # files analysed in this run: in flight (sha -> future), finished (the first 64 bits of
    # the sha in a DigestSet, 8 bytes each and no analyses; a later identical file takes the
    # analysis from the cache, and a prefix collision only costs a re-analysis)
    this_run: dict[str, Future] = {}
    done_this_run = DigestSet(8)
    bar = tqdm(
        desc="analyse",
        unit="img",
        total=None if isinstance(total, Future) else total,
        disable=not progress,
    )

    def run(data: bytes, source: str) -> dict:
        try:
            return analyse(data, source, config.max_pixels, want_faces, with_pixels)
        except TRANSIENT_ERRORS as exc:
            return {
                "error": f"analysis failed (transient, not cached: re-run to retry): "
                f"{type(exc).__name__}: {exc}",
                "transient": True,
            }
        except Exception as exc:  # a crash on one image is this image's problem only
            return {"error": f"analysis failed: {type(exc).__name__}: {exc}"}

    def settle(record: _Record, analysis: dict | None = None) -> None:
        if analysis is not None:
            record.analysis = analysis
            if analysis.get("error") and record.reason is None:
                record.reason = analysis["error"]
        settled.add(record.index)
        bar.update(1)

    def collect(future: Future) -> None:
        analysis = future.result()
        for record, owner in running.pop(future):
            if owner:
                this_run.pop(record.sha, None)
                if not analysis.get("transient"):
                    cache.put(record.sha, analysis)
                    done_this_run.add(bytes.fromhex(record.sha[:16]))
            settle(record, analysis)

    def start(record: _Record, item: SourceItem) -> None:
        try:
            data = item.read_bytes()
        except OSError as exc:
            message = str(exc.strerror or exc)
            record.reason = f"unreadable: {message.removeprefix('unreadable ')}"
            settle(record)
            return
        record.sha = hashlib.sha256(data).hexdigest()
        if record.path is None:
            cache.put_blob(record.sha, data)
            record.from_blob = True
        key = bytes.fromhex(record.sha[:16])
        earlier = this_run.get(record.sha)
        cached = cache.get(record.sha) if earlier is None else None
        if earlier is not None:
            running[earlier].append((record, False))
        elif cached is not None and (
            not want_faces or cached.get("faces") is not None or cached.get("error")
        ):
            record.cache_hit = done_this_run.add(key)  # not analysed earlier in this run
            settle(record, cached)
        elif pool is None:
            analysis = run(data, item.source)
            if not analysis.get("transient"):
                cache.put(record.sha, analysis)
                done_this_run.add(key)
            settle(record, analysis)
        else:
            future = pool.submit(run, data, item.source)
            running[future] = [(record, True)]
            this_run[record.sha] = future

    def ready() -> Iterator[_Record]:
        while pending and pending[0].index in settled:
            settled.discard(pending[0].index)
            yield pending.popleft()

    source = enumerate(items)
    exhausted = False

    def list_one() -> None:
        nonlocal exhausted
        try:
            index, item = next(source)
        except StopIteration:
            exhausted = True
            return
        record = _Record(
            index,
            item.source,
            str(item.path) if item.path else None,
            item.sidecar_caption() or "",
            dict(item.metadata or {}),
        )
        if record.caption.strip():
            record.caption_source = "source"
            record.caption_origin = item.caption_from or "sidecar"
        pending.append(record)
        waiting.add(index, _size_hint(item), (record, item), in_memory=item.data is not None)

    try:
        while True:
            while waiting and len(running) < max_running:
                record, item = waiting.pop()
                start(record, item)
            yield from ready()
            if isinstance(total, Future) and total.done():
                bar.total, total = total.result(), None  # counted in the background
                bar.refresh()
            if not exhausted and len(running) < max_running:
                list_one()  # a thread is free: start the next input now
                continue
            # the threads are busy: list ahead, to start the largest next
            while (
                not exhausted
                and len(waiting) < lookahead
                and waiting.memory_bytes < LOOKAHEAD_BYTES
            ):
                list_one()
            if not running:
                if exhausted and not waiting:
                    break
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                collect(future)
        yield from ready()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
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


def _size(record: _Record) -> tuple[int, int]:
    return (int(record.signals.get("width") or 0), int(record.signals.get("height") or 0))


def _trace(
    copy: _Record, source: _Record, cache: AnalysisCache, decoded: dict | None = None
) -> float | None:
    """JPEG trace of ``source``'s table in ``copy``'s pixels (cached per pair of files).

    ``decoded`` keeps the copy's pixels (by record index) and its traces (by source table)
    for the next sources."""
    from restorelab.curation.provenance import jpeg_trace

    # the trace depends on the copy's pixels and the source's table only: sources that
    # share a table (a group of crops saved at one quality) share the value
    memo = ("trace", tuple(source.analysis["luma_table"]))
    if decoded is not None and memo in decoded:
        return decoded[memo]
    key = f"trace:{copy.sha}:{source.sha}"
    found, value = cache.get_pair(key)
    if found:
        return value
    try:
        pixels = None if decoded is None else decoded.get(copy.index)
        if pixels is None:
            pixels = _pixels(copy, cache)
            if decoded is not None:
                decoded[copy.index] = pixels
    except (ImageReadError, OSError):
        return None
    value = jpeg_trace(pixels, source.analysis["luma_table"], copy.analysis.get("luma_table"))
    cache.put_pair(key, value)
    if decoded is not None:
        decoded[memo] = value
    return value


def _derived_from(
    copy: _Record, source: _Record, cache: AnalysisCache, decoded: dict | None = None
) -> str | None:
    """Why ``copy`` was made from ``source`` (another member of its group), or None.

    See :mod:`restorelab.curation.provenance`: an alpha or CMYK file of a plain one at least
    as large; a tone-shifted copy (combed histograms) of one the same size; a copy the same
    size that keeps the quantisation lattice of a JPEG ``source`` (a re-encode at a higher
    quality, a PNG of its pixels).
    """
    from restorelab.curation.provenance import MIN_JPEG_TRACE, derived_mode, tone_shifted

    copy_mode, source_mode = copy.signals.get("mode"), source.signals.get("mode")
    copy_size, source_size = _size(copy), _size(source)
    larger = source_size[0] * source_size[1] >= copy_size[0] * copy_size[1]
    if derived_mode(copy_mode) and not derived_mode(source_mode) and larger:
        return f"{copy_mode} copy"
    if copy_size != source_size:
        return None
    if tone_shifted(copy.analysis.get("tone_comb"), source.analysis.get("tone_comb")):
        return "tone-shifted copy"
    if source.analysis.get("luma_table") is not None:
        trace = _trace(copy, source, cache, decoded)
        if trace is not None and trace >= MIN_JPEG_TRACE:
            kind = "re-encode" if copy.analysis.get("luma_table") is not None else "lossless copy"
            return f"{kind} of the JPEG"
    return None


def _keeper(
    group: list[_Record],
    passes: Callable[[_Record], bool],
    cache: AnalysisCache,
    *,
    exact: bool = False,
) -> tuple[_Record, dict[int, str]]:
    """The member a duplicate group keeps, among those that pass the filters (all, when none
    does), and why others are copies (record index → "re-encode of the JPEG", ...).

    Exact duplicates (the same decoded pixels): a member in a converted mode (alpha, CMYK)
    loses to a plain one; a JPEG beats lossless files of its pixels (they were made from
    it); then the first in input order. Near duplicates: provenance first (members derived
    from another member lose, and a passing copy of a failing source does not replace it),
    then :func:`~restorelab.curation.dedup.choose_keeper` (largest, not blurred or noisy
    against the others, least compressed, sharpest).
    """
    from restorelab.curation.dedup import choose_keeper
    from restorelab.curation.provenance import derived_mode

    if exact:
        candidates = [r for r in group if passes(r)] or group
        has_jpeg = any(r.analysis.get("luma_table") is not None for r in candidates)

        def rank(r: _Record) -> tuple[bool, bool, int]:
            lossless = r.analysis.get("luma_table") is None
            return (derived_mode(r.signals.get("mode")), has_jpeg and lossless, r.index)

        return min(candidates, key=rank), {}
    why: dict[int, str] = {}
    # Only a copy in a converted mode (alpha, CMYK) can come from a member of another
    # size (see _derived_from): the others are compared with the members of their size
    # only, in group order, so that a group of thousands (a chain of overlapping crops)
    # costs the sum of its size classes squared, not its size squared.
    by_size: dict[tuple[int, int], list[_Record]] = {}
    for record in group:
        by_size.setdefault(_size(record), []).append(record)
    for copy in group:
        converted = derived_mode(copy.signals.get("mode"))
        decoded: dict = {}
        for source in group if converted else by_size[_size(copy)]:
            if copy is not source and copy.index not in why:
                reason = _derived_from(copy, source, cache, decoded)
                if reason:
                    why[copy.index] = f"{reason} {source.source}"
    # a copy made from a member that fails the filters does not stand in for it (a q98
    # re-encode of a q80 JPEG still holds the q80 artefacts): when no passing member is
    # free of such provenance, the group keeps its source, which the filters then reject
    candidates = [r for r in group if passes(r) and r.index not in why] or group
    derived = [k for k, r in enumerate(candidates) if r.index in why]
    keep = choose_keeper(range(len(candidates)), [_quality(r) for r in candidates], derived)
    return candidates[keep], why


def _merge_into(keeper: _Record, group: list[_Record]) -> None:
    """Captions and metadata of the dropped members go to the keeper: the first non-empty
    caption in input order wins (the keeper's own when it comes first); metadata keys the
    keeper lacks are added in input order."""
    if not keeper.caption.strip():
        for record in sorted(group, key=lambda r: r.index):
            if record is not keeper and record.caption.strip():
                keeper.caption = record.caption
                keeper.caption_source = "duplicate"
                origin = record.caption_origin or "source"
                keeper.caption_origin = f"{record.source} ({origin})"
                break
    for record in sorted(group, key=lambda r: r.index):
        if record is not keeper:
            for key, value in record.metadata.items():
                keeper.metadata.setdefault(key, value)


def _drop_duplicates(
    store: RecordStore,
    columns: Columns,
    thumbs: Any,
    config: CurationConfig,
    cache: AnalysisCache,
    *,
    work: Path,
    progress: bool = False,
) -> dict:
    """Reject all but the best member of each exact and each near-duplicate group.

    Works on the compact columns: exact duplicates are runs of equal pixel hashes among the
    inputs still alive; near duplicates come from
    :func:`~restorelab.curation.dedup.group_store` over the thumbnails on disk. Only each
    group's records are read back (to choose its keeper, merge captions and write the
    reasons). Returns the near-duplicate search's counts.
    """
    from restorelab.curation.dedup import group_store

    def passes(record: _Record) -> bool:
        return not columns.fails[record.index]

    alive = np.flatnonzero(columns.alive)
    hashes = columns.pixel_hash[alive]
    order = np.argsort(hashes, kind="stable")
    bounds = np.flatnonzero(hashes[order][1:] != hashes[order][:-1]) + 1
    for run in np.split(order, bounds):
        if len(run) > 1:
            group = store.get(alive[np.sort(run)])
            keeper, _ = _keeper(group, passes, cache, exact=True)
            for record in group:
                if record is not keeper:
                    record.reason = f"exact duplicate: same pixels as {keeper.source}"
                    columns.alive[record.index] = False
            _merge_into(keeper, group)
            store.put(group)
    if not config.near_duplicates:
        return {}
    alive = np.flatnonzero(columns.alive)
    options = {
        k: v
        for k, v in (
            ("hamming_radius", config.hamming_radius),
            ("min_similarity", config.min_similarity),
        )
        if v is not None
    }
    stats: dict = {}
    groups = group_store(
        thumbs,
        alive,
        progress=progress,
        spool_dir=work / "pairs",
        stats=stats,
        workers=config.workers or os.cpu_count() or 1,
        memo=cache,
        **options,
    )
    bar = tqdm(
        total=sum(len(g) for g in groups),
        desc="near duplicates: keepers",
        unit="img",
        disable=not progress or not groups,
    )
    for group in groups:
        members = store.get(alive[group])
        keeper, why = _keeper(members, passes, cache)
        for record in members:
            if record is not keeper:
                detail = f" ({why[record.index]})" if record.index in why else ""
                record.reason = f"near duplicate: of {keeper.source}{detail}"
                columns.alive[record.index] = False
        _merge_into(keeper, members)
        store.put(members)
        bar.update(len(group))
    bar.close()
    return stats


def _pixels(record: _Record, cache: AnalysisCache) -> np.ndarray:
    """The decoded pixels of ``record`` again (:func:`decode`; safe in several threads)."""
    path = cache.blob_path(record.sha) if record.from_blob else Path(record.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(record.source, f"cannot read: {exc.strerror or exc}") from exc
    return decode(data, record.source).pixels


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
        identity = getattr(captioner, "identity", "captioner")
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
                record.caption_source, record.caption_origin = "model", identity
                record.metadata["captioned_by"] = identity
    if config.require_captions:
        alive = [r for r in records if r.reason is None]
        problems = caption_problems([r.caption for r in alive], min_words=config.min_caption_words)
        for record, problem in zip(alive, problems, strict=True):
            if problem:
                record.reason = f"caption: {problem}"


def _selection_pool(
    scores: np.ndarray, codes: np.ndarray | None, counts: dict[int, int], n: int, pool: float
) -> np.ndarray:
    """Positions (ascending) that :func:`~restorelab.curation.selection.select_explained`
    can pick or compare: the best ``ceil(pool × n)`` by quality and, per quota category, its
    best ``ceil(pool × count) + n``. Farthest-point sampling reads only the embeddings of
    its candidate pools, which lie in this set, so selecting among these positions alone
    gives the same picks and reasons as selecting among all.
    """
    ranked = np.argsort(-scores, kind="stable")  # descending score, ties by position
    keep = [ranked[: math.ceil(pool * n)]]
    for code, count in counts.items():
        in_category = ranked[codes[ranked] == code]
        keep.append(in_category[: math.ceil(pool * count) + n])
    return np.unique(np.concatenate(keep))


def _select(store: RecordStore, columns: Columns, config: CurationConfig) -> int:
    """Score every surviving image, keep ``target`` of them and say why the rest lost.

    Kept images get their quality score and selection rank (the order in which selection
    picked them; by quality when every image is kept). An image not selected lost on
    *quality* (outside the quality pool: its score is below the pool's lowest) or on
    *diversity* (in the pool, but farthest-point sampling kept others: the reason gives its
    embedding distance to the nearest kept image). Only the embeddings of the images that
    can be candidates (:func:`_selection_pool`) are read from the record store. Returns the
    shortfall.
    """
    from restorelab.curation.selection import _quota_counts, select_explained

    alive = np.flatnonzero(columns.alive)
    if not len(alive):
        return config.target or 0
    scores = columns.quality[alive].copy()
    if config.target is None or len(alive) <= config.target:
        order = np.argsort(-scores, kind="stable")
        columns.rank[alive[order]] = np.arange(1, len(alive) + 1)
        return 0 if config.target is None else config.target - len(alive)
    codes = columns.category[alive] if config.category else None
    counts = {}
    if config.category and config.quotas:
        names = {name: k for k, name in enumerate(columns.category_names)}
        counts = {
            names[name]: count
            for name, count in _quota_counts(config.quotas, config.target).items()
            if name in names
        }
    sub = _selection_pool(scores, codes, counts, config.target, config.quality_pool)
    records = store.get(alive[sub])
    embeddings = np.stack([r.analysis["embedding"] for r in records]).astype(np.float64)
    categories = [columns.category_of(r.index) for r in records] if config.category else None
    chosen, candidates = select_explained(
        config.target,
        scores[sub],
        embeddings,
        categories=categories,
        quotas=config.quotas or None,
        quality_pool=config.quality_pool,
    )
    for rank, i in enumerate(chosen, 1):
        columns.rank[records[i].index] = rank
    lost = np.ones(len(alive), bool)
    lost[sub[chosen]] = False
    columns.alive[alive[lost]] = False
    reasons = _selection_reasons(records, embeddings, scores, sub, alive, chosen, candidates)
    store.set_reasons(reasons)
    return 0


def _selection_reasons(
    records, embeddings, scores, sub, alive, chosen, candidates
) -> Iterator[tuple]:
    """(input index, reason) of every image selection did not keep, streamed."""
    chosen_set = set(chosen)
    kept = embeddings[chosen]
    pool_floor = min(float(scores[sub[i]]) for i in candidates)
    for i in sorted(candidates - chosen_set):
        distances = np.sqrt(np.maximum(((kept - embeddings[i]) ** 2).sum(axis=1), 0.0))
        nearest = int(np.argmin(distances))
        yield (
            records[i].index,
            f"not selected: diversity: quality score {scores[sub[i]]:.3f} was in the "
            f"quality pool, but it lies {distances[nearest]:.3f} (embedding distance) "
            f"from kept {records[chosen[nearest]].source}; farthest-point sampling kept "
            "images farther apart",
        )
    in_pool = np.zeros(len(alive), bool)
    in_pool[sub[sorted(candidates)]] = True
    for position in np.flatnonzero(~in_pool).tolist():
        yield (
            int(alive[position]),
            f"not selected: quality: score {scores[position]:.3f} is below the quality "
            f"pool (the best {len(candidates)} of {len(alive)}, lowest score "
            f"{pool_floor:.3f})",
        )


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem, flags=re.UNICODE).strip("._") or "image"
    return stem[:80]


#: Rows of an exported PNG compressed as one independent piece (fixed, so that the bytes do
#: not depend on how many threads compress the pieces).
PNG_STRIP_ROWS = 128


def _deflate_strip(rows: memoryview) -> bytes:
    """Raw deflate of filtered PNG rows, Huffman coding only (no matches, so no reference
    reaches into another strip), ending byte-aligned so that strips concatenate into one
    valid stream. zlib releases the GIL while it compresses."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_HUFFMAN_ONLY)
    return compressor.compress(rows) + compressor.flush(zlib.Z_SYNC_FLUSH)


def _chunk(kind: bytes, parts: list[bytes]) -> list[bytes]:
    crc, length = zlib.crc32(kind), 0
    for part in parts:
        crc, length = zlib.crc32(part, crc), length + len(part)
    return [struct.pack(">I", length), kind, *parts, struct.pack(">I", crc)]


def _png_parts(pixels: np.ndarray, pool: ThreadPoolExecutor | None = None) -> list[bytes]:
    """The bytes of :func:`encode_png`, in pieces (written one after the other, no join)."""
    rgb = np.ascontiguousarray(pixels)
    height, width, channels = rgb.shape
    if rgb.dtype != np.uint8 or channels != 3:
        raise ValueError(f"PNG export needs RGB uint8 pixels, got {rgb.dtype} {rgb.shape}")
    rows = rgb.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), np.uint8)
    filtered[:, 0] = 1  # the SUB filter: each byte minus the same channel one pixel left
    filtered[:, 1:4] = rows[:, :3]
    np.subtract(rows[:, 3:], rows[:, :-3], out=filtered[:, 4:])  # modulo 256
    strips = [filtered[k : k + PNG_STRIP_ROWS].data for k in range(0, height, PNG_STRIP_ROWS)]
    compressed = list(pool.map(_deflate_strip, strips)) if pool else map(_deflate_strip, strips)
    stream = [
        b"\x78\x01",  # zlib header: deflate, 32 KiB window, fastest
        *compressed,
        b"\x03\x00",  # an empty final block
        struct.pack(">I", zlib.adler32(filtered.data)),
    ]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return [
        b"\x89PNG\r\n\x1a\n",
        *_chunk(b"IHDR", [header]),
        *_chunk(b"IDAT", stream),
        *_chunk(b"IEND", []),
    ]


def encode_png(pixels: np.ndarray, pool: ThreadPoolExecutor | None = None) -> bytes:
    """The PNG that curation exports for RGB ``uint8`` pixels that cannot be copied
    (converted modes, rotated, 16-bit, CMYK, formats other than JPEG/PNG/WebP).

    8-bit RGB, the SUB filter on every row, zlib with Huffman coding only, no metadata: the
    same pixels always give the same bytes. The rows are compressed in strips of
    :data:`PNG_STRIP_ROWS`, on ``pool``'s threads when given (the bytes do not depend on
    it). On the mate-backgrounds photos (4-18 MP) that is 6-17x faster than Pillow's
    default (level 6, adaptive filters) for files 11-47 % larger (flat renders: about 2x
    larger), and 5-20 % less CPU than OpenCV's encoder with the same settings (the same
    size within 0.5 %); see docs/PERFORMANCE.md, "Curation".
    """
    return b"".join(_png_parts(pixels, pool))


def _write_png(path: Path, pixels: np.ndarray, pool: ThreadPoolExecutor | None = None) -> None:
    """Write :func:`encode_png`'s bytes to ``path`` atomically (piece by piece, no joined
    copy); nothing when ``path`` exists."""
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}-{threading.get_ident()}.png")
    try:
        with open(tmp, "wb") as handle:
            handle.writelines(_png_parts(pixels, pool))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _png_while_analysing(
    cache: AnalysisCache, config: CurationConfig, total: int | Future | None
) -> Callable[[dict, np.ndarray], None] | None:
    """The analysis hook that writes the export PNG of an image that will probably be kept,
    from the analysis's own decode; None when most images will be dropped.

    An image that cannot be copied (converted mode, rotated, 16-bit, CMYK, ...) must be
    encoded as PNG for the dataset. Encoding it while its pixels are decoded for the analysis
    saves a second decode at export time and spreads the encoding over the analysis threads
    with the rest of the work (largest images first), instead of a serial tail after it.
    The keep decision is not known yet (duplicates are grouped over all images), so this
    is done only for images that pass the per-image filters, and only in runs that keep
    most of what passes: without a ``target``, or with a target of at least half the
    inputs (``total``: their number, or the future of the count that runs beside the
    analysis; nothing is written ahead while it is unknown). A PNG written for an image
    that is dropped in the end stays in the cache (``exports/``, by pixel hash), where a
    later run that keeps the image finds it.
    """
    target = config.target
    if target is not None and (total is None or (isinstance(total, int) and 2 * target < total)):
        return None
    thresholds = config.active_filters()

    def write(analysis: dict, pixels: np.ndarray) -> None:
        if analysis.get("plain_rgb"):
            return
        if target is not None and isinstance(total, Future):  # counted beside the analysis
            count = total.result() if total.done() else None
            if count is None or 2 * target < count:
                return
        for name, threshold in thresholds.items():
            if FILTERS.get(name).check(analysis["signals"], threshold):
                return
        # ahead of time only: a failure here must not fail the analysis; the export tries
        # again and reports it
        with contextlib.suppress(Exception):
            _write_png(cache.export_path(analysis["pixel_hash"]), pixels)

    return write


def _link_or_copy(source: Path, target: Path, *, link: bool = True) -> None:
    """Hard-link ``source`` at ``target`` (same file system), else copy it; atomic.

    Only files this package owns are linked (the cache's, the previous dataset's); a user's
    source file is copied (``link=False``), so that editing it in place never changes the
    dataset.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError("copy requested")
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _previous_files(out: Path) -> dict[str, tuple[str, int]]:
    """``file_name`` → (sha256 of the source, size) of the dataset already in ``out``."""
    found: dict[str, tuple[str, int]] = {}
    try:
        with open(out / METADATA_FILE, encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                    path = out / row["file_name"]
                    found[row["file_name"]] = (row.get("sha256", ""), path.stat().st_size)
                except (ValueError, KeyError, TypeError, OSError):
                    continue
    except OSError:
        pass
    return found


def _export_image(
    record: _Record,
    cache: AnalysisCache,
    staging: Path,
    out: Path | None = None,
    previous: dict[str, tuple[str, int]] | None = None,
    strips: ThreadPoolExecutor | None = None,
) -> str:
    """Write a kept image under ``staging/images``; returns its path relative to the dataset.

    A plain RGB JPEG, PNG or WebP is its source file, byte for byte: hard-linked from the
    previous dataset in ``out`` when that holds the same file (same name, source SHA-256 and
    size) or from the cache (images from memory), else copied from the user's file. Any
    other image is written as PNG (:func:`encode_png`) once per pixel hash into the cache
    (``exports/``) and hard-linked (or copied) from there, so a re-run writes the same bytes
    without decoding or encoding again.
    """
    analysis = record.analysis
    digest = analysis["pixel_hash"]
    name_hint = record.path or record.source.split("#")[-1].split("/")[-1]
    if analysis.get("plain_rgb"):
        suffix = _COPYABLE[analysis["format"]]
        name = f"{_safe_stem(name_hint)}-{digest[:10]}{suffix}"
        source = cache.blob_path(record.sha) if record.from_blob else Path(record.path)
        owned = record.from_blob
        earlier = (previous or {}).get(f"{IMAGES_DIR}/{name}")
        if out is not None and earlier and earlier == (record.sha, source.stat().st_size):
            source, owned = out / IMAGES_DIR / name, True
        _link_or_copy(source, staging / IMAGES_DIR / name, link=owned)
    else:
        name = f"{_safe_stem(name_hint)}-{digest[:10]}.png"
        cached = cache.export_path(digest)
        if not cached.is_file():
            _write_png(cached, _pixels(record, cache), strips)
        _link_or_copy(cached, staging / IMAGES_DIR / name)
    return f"{IMAGES_DIR}/{name}"


def _signal_columns(record: _Record) -> dict:
    return {k: record.signals.get(k) for k in SIGNAL_COLUMNS}


def _resolved_cache(out: Path, cache_dir: str | os.PathLike | None) -> Path:
    return (Path(cache_dir) if cache_dir else out / CACHE_DIR).resolve()


def curate(
    sources: list[str | os.PathLike],
    out: str | os.PathLike,
    config: CurationConfig | None = None,
    *,
    captioner: Any = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    shard: tuple[int, int] | None = None,
    merge_caches: Iterable[str | os.PathLike] = (),
) -> CurationResult:
    """Curate images from ``sources`` into a Hugging Face imagefolder at ``out``.

    Writes ``out/images/``, ``out/metadata.jsonl`` (``file_name``, ``text``,
    ``caption_source`` — ``source``, ``duplicate`` or ``model`` — and ``caption_origin``,
    ``source``, ``sha256`` of the source file's bytes, ``pixel_hash`` of the decoded pixels
    (:func:`~restorelab.imageio.pixel_hash`), ``category``, ``quality_score``,
    ``selection_rank`` and the signals), ``out/rejected.csv`` (``source``, ``reason`` and the
    signals), the dataset card ``out/README.md``, ``out/curation.json`` (config, counts,
    what the sources skipped) and, if configured, Parquet shards under ``out/parquet``.

    The new dataset is built beside ``out`` and replaces the previous one only when complete
    (:mod:`restorelab.curation.output`); ``out``'s cache and other files stay. The output
    folder and the cache are never read as input, even when a source contains them.
    ``captioner`` (a :class:`~restorelab.curation.captioner.Captioner`) captions images that
    have no caption from their source or from a dropped duplicate.

    Raises
    ------
    ValueError, FileNotFoundError
        A bad source (missing, empty, of unknown kind), before any work.
    CurationError
        No image was kept; the previous dataset stays, the rejection report of this run is
        written to ``.OUT.failed/rejected.csv`` beside ``out``.

    Notes
    -----
    A pool too large for one machine: run the analysis as shards, each with its own cache
    (``shard=(rank, world_size)``: inputs ``k`` with ``k % world_size == rank``, in source
    order; analysis only, ``out`` is not touched), then one run with ``merge_caches`` (the
    shards' cache folders, copied to that machine) merges them into its cache and does the
    grouping, filtering, selection and export on every input at once, reading each input
    again only to hash it (URLs are downloaded again).
    """
    config = config or CurationConfig()
    if not isinstance(config, CurationConfig):
        raise TypeError(f"config must be a CurationConfig, got {type(config).__name__}")
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} exists and is not a folder")
    started = time.time()
    cache_path = _resolved_cache(out, cache_dir)
    exclude = [out, cache_path]
    stats = SourceStats()
    sources = list(sources)
    items = iter_sources(sources, exclude=exclude, stats=stats, split=config.split)
    if shard is not None:
        return _analyse_shard(items, cache_path, config, shard, progress)
    with output_lock(out):
        staging = staging_dir(out)
        shutil.rmtree(staging, ignore_errors=True)
        (staging / IMAGES_DIR).mkdir(parents=True)
        cache = AnalysisCache(cache_path)
        for other in merge_caches:
            cache.merge_from(other)
        try:
            count = functools.partial(count_sources, sources, exclude=exclude, split=config.split)
            result = _run(
                sources, items, out, staging, cache, config, captioner, progress, count, stats
            )
            result.out_dir = out
            result.sources = stats.as_dict()
            cache.close()
            if result.kept == 0:
                failed = out.parent / f".{out.name}.failed"
                shutil.rmtree(failed, ignore_errors=True)
                shutil.rmtree(staging / IMAGES_DIR, ignore_errors=True)
                os.replace(staging, failed)
                raise CurationError(
                    f"no image was kept of {result.rejected} inputs ({result.reasons}); "
                    f"{out} was left as it was; this run's report: {failed / REJECTED_FILE}"
                )
            summary_path = staging / SUMMARY_FILE
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            summary["seconds"] = round(time.time() - started, 3)
            write_json_atomic(summary_path, summary)
            swap_in(staging, out)
        finally:
            cache.close()
            shutil.rmtree(staging, ignore_errors=True)
    return result


def _analyse_shard(
    items: Iterable[SourceItem],
    cache_path: Path,
    config: CurationConfig,
    shard: tuple[int, int],
    progress: bool,
) -> CurationResult:
    """Analyse shard ``rank`` of ``world_size`` into the cache only (see :func:`curate`)."""
    rank, world = shard
    if isinstance(rank, bool) or isinstance(world, bool) or not 0 <= rank < world:
        raise ValueError(
            f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}"
        )
    mine = (item for k, item in enumerate(items) if k % world == rank)
    cache = AnalysisCache(cache_path)
    analysed, hits, reasons = 0, 0, Counter()
    try:
        with keep_freed_memory(threads=True):
            for record in _analysed(mine, cache, config, progress):
                analysed += 1
                hits += record.cache_hit
                if record.reason:
                    reasons[_reason_kind(record.reason)] += 1
    finally:
        cache.close()
    result = CurationResult(out_dir=cache_path)
    result.cache_hits = hits
    result.rejected = sum(reasons.values())
    result.reasons = dict(reasons)
    result.sources = {"shard": [rank, world], "analysed": analysed}
    return result


def _slim(record: _Record, config: CurationConfig) -> _Record:
    """The record as the record store keeps it: its analysis without the fingerprint (the
    thumbnail store has it), with the filters' verdict in ``failure``."""
    analysis = {k: v for k, v in record.analysis.items() if k != "fingerprint"}
    record.analysis = analysis
    if record.reason is None:
        reasons = [
            reason
            for name, threshold in config.active_filters().items()
            if (reason := FILTERS.get(name).check(record.signals, threshold))
        ]
        record.failure = "; ".join(reasons) or None
    return record


def _run(
    sources: list,
    items: Iterable[SourceItem],
    out: Path,
    staging: Path,
    cache: AnalysisCache,
    config: CurationConfig,
    captioner: Any,
    progress: bool,
    count: Callable[[], int | None],
    stats: SourceStats,
) -> CurationResult:
    """Analyse, filter, de-duplicate, caption, select and export into ``staging``.

    Memory does not grow with the pool beyond about 100 bytes an input: each record goes to
    the run's record store as it is analysed (:mod:`restorelab.curation.records`), its
    thumbnail to the thumbnail store, and only compact columns stay in memory; the stages
    read back the records they need (duplicate groups, the selection pool, the kept
    images), and ``rejected.csv`` is streamed from the store. Both stores live in
    ``staging/.work`` and are deleted before the dataset is swapped in.

    ``count()`` (the number of inputs, for the progress bar and :func:`_png_while_analysing`)
    runs on a thread beside the analysis, not before it: listing a large pool takes seconds
    that the analysis threads need not wait for.
    """
    from restorelab.curation.dedup import ThumbnailStore
    from restorelab.curation.selection import quality_score

    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 3)
        clock = now

    work = staging / WORK_DIR
    store = RecordStore(work / "records.sqlite")
    thumbs = ThumbnailStore(work / "thumbs")
    columns = Columns()
    result = CurationResult(out_dir=out)
    try:
        with keep_freed_memory(threads=True):  # before any thread starts (see its docstring)
            counter = ThreadPoolExecutor(1, thread_name_prefix="count")
            total = counter.submit(count)
            counter.shutdown(wait=False)
            ahead = _png_while_analysing(cache, config, total)
            for record in _analysed(items, cache, config, progress, total, ahead):
                alive = record.reason is None
                thumbs.append(record.analysis.get("fingerprint") if alive else None)
                record = _slim(record, config)
                columns.append(
                    alive=alive,
                    fails=record.failure is not None,
                    pixel_hash=(record.analysis.get("pixel_hash") or "") if alive else "",
                    quality=quality_score(record.signals) if alive else None,
                    category=_category(record, config) if alive else None,
                    cache_hit=record.cache_hit,
                )
                store.add(record)
        store.flush()
        thumbs.flush()
        lap("analyse")
        result.cache_hits = int(columns.cache_hit.sum())
        # Duplicates first, among every decodable image, so that each group is reported as
        # duplicates of its best member (one that passes the filters, when any does); then
        # the filters judge the survivors.
        near = _drop_duplicates(store, columns, thumbs, config, cache, work=work, progress=progress)
        failing = np.flatnonzero(columns.fails)
        for start in range(0, len(failing), 1000):
            records = store.get(failing[start : start + 1000])
            for record in records:
                if record.reason is None:
                    record.reason = record.failure
                    columns.alive[record.index] = False
                elif "duplicate" in _reason_kind(record.reason):
                    record.reason += f"; also {record.failure}"
            store.put(records)
        lap("filters_and_duplicates")
        if captioner is not None or config.require_captions:
            alive = store.get(np.flatnonzero(columns.alive))
            _caption(alive, captioner, cache, config, progress)
            for record in alive:
                columns.alive[record.index] = record.reason is None
            store.put(alive)
            del alive
        lap("captions")
        result.shortfall = _select(store, columns, config)
        lap("selection")
        kept = store.get(np.flatnonzero(columns.alive))
        with keep_freed_memory(threads=True):
            exported = _export_all(kept, cache, staging, out, config, progress)
        kept_rows = []
        for record in kept:
            file_name = exported[record.index]
            if isinstance(file_name, Exception):
                store.set_reasons([(record.index, f"export failed: {file_name}")])
                columns.alive[record.index] = False
                continue
            rank = int(columns.rank[record.index])
            kept_rows.append(
                {
                    "file_name": file_name,
                    "text": record.caption,
                    "caption_source": record.caption_source,
                    "caption_origin": record.caption_origin,
                    "source": record.source,
                    "sha256": record.sha,
                    "pixel_hash": record.analysis["pixel_hash"],
                    "category": _category(record, config),
                    "quality_score": round(float(columns.quality[record.index]), 6),
                    "selection_rank": rank or None,
                    **_signal_columns(record),
                }
            )
        del kept, exported
        lap("export")
        reasons: Counter = Counter()

        def rejected_rows() -> Iterator[dict]:
            for record in store.iter(np.flatnonzero(~columns.alive)):
                reasons[_reason_kind(record.reason)] += 1
                yield {"source": record.source, "reason": record.reason, **_signal_columns(record)}

        _write_tables(staging, kept_rows, rejected_rows())
        inputs = len(columns)
    finally:
        store.close()
        thumbs.close()
        shutil.rmtree(work, ignore_errors=True)
    result.kept, result.rejected = len(kept_rows), sum(reasons.values())
    result.reasons = dict(reasons)
    if config.parquet_shard_rows and kept_rows:
        _write_parquet_shards(staging, config.parquet_shard_rows)
    stages["export"] = round(stages["export"] + time.perf_counter() - clock, 3)
    summary = {
        "sources": [os.fspath(s) for s in sources],
        "config": asdict(config),
        "inputs": inputs,
        "kept": result.kept,
        "rejected": result.rejected,
        "rejection_reasons": result.reasons,
        "target": config.target,
        "shortfall": result.shortfall,
        "cache_hits": result.cache_hits,
        "stage_seconds": stages,
        "near_duplicates": near,
        "source_accounting": stats.as_dict(),
        "captioner": getattr(captioner, "identity", None) if captioner else None,
        "captioner_prompt": getattr(captioner, "prompt", None) if captioner else None,
        "parquet_shards": sorted(p.name for p in (staging / PARQUET_DIR).glob("*.parquet")),
    }
    write_json_atomic(staging / SUMMARY_FILE, summary)
    from restorelab.curation.card import write_dataset_card

    write_dataset_card(staging / CARD_FILE, summary, kept_rows, config)
    return result


def _export_all(
    records: list[_Record],
    cache: AnalysisCache,
    staging: Path,
    out: Path,
    config: CurationConfig,
    progress: bool = False,
) -> dict[int, str | Exception]:
    """Export ``records`` on ``config.workers`` threads (copies, links, decoding and PNG
    encoding all release the GIL), the images to encode first, largest first, each PNG's
    strips compressed on ``config.workers`` more threads; record index → file name, or the
    error that stopped it."""
    previous = _previous_files(out)
    workers = config.workers or os.cpu_count() or 1
    results: dict[int, str | Exception] = {}

    def one(record: _Record) -> str | Exception:
        try:
            return _export_image(record, cache, staging, out, previous, strips)
        except (ImageReadError, OSError) as exc:
            return exc

    with (
        ThreadPoolExecutor(workers, thread_name_prefix="export") as pool,
        # the strips of each PNG on their own threads: the last large image is not encoded
        # on one core while the others idle
        ThreadPoolExecutor(workers, thread_name_prefix="export-png") as strips,
        tqdm(total=len(records), desc="export", unit="img", disable=not progress) as bar,
    ):
        # the images to encode first, largest first, so that the last one does not run
        # alone; then the copies and links
        def order(record: _Record) -> tuple[bool, float]:
            to_encode = (
                not record.analysis.get("plain_rgb")
                and not cache.export_path(record.analysis["pixel_hash"]).is_file()
            )
            return (not to_encode, -float(record.signals.get("megapixels") or 0.0))

        futures = {pool.submit(one, record): record.index for record in sorted(records, key=order)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
    return results


def _write_tables(out: Path, kept_rows: list[dict], rejected_rows: Iterable[dict]) -> None:
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
    """Parquet shards of the exported imagefolder (image bytes embedded), for the Hub.

    Named ``part-00000-of-00003.parquet`` under ``out/parquet``: not ``train-*``, which
    would make ``load_dataset("imagefolder", data_dir=out)`` take the Parquet files as its
    train split (and find no images in them). Load them with
    ``load_dataset("parquet", data_dir=out / "parquet", split="train")``.
    """
    import datasets

    dataset = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    shards = max(1, -(-len(dataset) // rows_per_shard))
    (out / PARQUET_DIR).mkdir(exist_ok=True)
    for index in range(shards):
        part = dataset.shard(num_shards=shards, index=index, contiguous=True)
        part.to_parquet(str(out / PARQUET_DIR / f"part-{index:05d}-of-{shards:05d}.parquet"))
