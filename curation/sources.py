"""Where curation reads images from: every kind of source yields :class:`SourceItem` records.

:func:`iter_sources` takes a list of *specs* (paths, globs, URLs) and streams candidate images
from them lazily, so memory stays flat however large a source is: folders are walked, Parquet
files and Hugging Face datasets are read in row batches, webdataset shards one tar member at a
time, and URL lists are downloaded through a bounded window of concurrent requests.

Kinds of spec, how each is detected, and the ``source`` string of its items:

- folder of images, recursive (a folder that is none of the kinds below): the file path;
- single image file (image file ending) or glob (no such path; matching images, ``.parquet``
  and ``.tar`` files are read, other files skipped): the file path;
- dataset saved with ``Dataset.save_to_disk`` (folder holding ``dataset_info.json`` and
  ``state.json``, or ``dataset_dict.json``): ``dataset_dir#row=12`` (``dataset_dir/split#row=12``);
- Hugging Face imagefolder (``metadata.jsonl`` or ``metadata.csv`` in the folder or in a split
  folder right below it): the file path;
- Parquet with images (``.parquet``, or a folder holding Parquet files and no images):
  ``file.parquet#row=12``;
- webdataset shards (``.tar``, ``.tar.gz``, ``.tgz``, or a folder of them): ``shard.tar#key``;
- URL list (``.txt`` with one URL a line, ``.csv`` or ``.parquet`` with a ``url`` column): the
  URL;
- single URL (``http://``, ``https://``; ``file://`` is read as the local path it names): the
  URL.

A broken member of a source (an undownloadable URL, a truncated shard, a file listed in
metadata but missing) is not an exception: it comes out as an item whose ``error`` says why,
so the pipeline rejects it with that reason. A spec that does not exist, whose kind is
unknown or that holds no image at all raises before anything is read.

Accounting: every input identity — a file (by its resolved path), ``file#row=N``,
``shard.tar#key``, a URL — is yielded once however the sources overlap; folders passed as
``exclude`` (the output folder and its cache) are never read; hidden files and folders
(names starting with ``.``) are skipped and counted. A :class:`SourceStats` passed to
:func:`iter_sources` collects these counts, the caption columns used and the splits read.
Caption columns and fields are matched case-insensitively (``text``, ``TEXT`` as in LAION,
``caption``).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import glob
import hashlib
import http.client
import itertools
import json
import logging
import os
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from restorelab import __version__
from restorelab.curation.records import DigestSet
from restorelab.imageio import IMAGE_EXTENSIONS, is_image_file

_LOG = logging.getLogger(__name__)

#: Columns (and JSON fields) read as the caption, in order of preference; matched
#: case-insensitively (LAION's ``TEXT``).
CAPTION_COLUMNS = ("text", "caption")
#: Rows per batch when reading Parquet files and saved datasets.
DEFAULT_BATCH_ROWS = 64
#: Sent with every download.
USER_AGENT = f"restorelab/{__version__} (image curation; Python-urllib)"

_IMAGEFOLDER_METADATA = ("metadata.jsonl", "metadata.csv")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
#: Webdataset member endings taken as the image of a sample, in order of preference.
_WDS_PREFERRED = ("jpg", "jpeg", "png", "webp")
_WDS_IMAGE_EXTS = (
    *_WDS_PREFERRED,
    *sorted(e[1:] for e in IMAGE_EXTENSIONS if e[1:] not in _WDS_PREFERRED),
)
#: Other webdataset members up to this size are kept in ``metadata`` when they are UTF-8 text.
_WDS_MAX_TEXT_MEMBER = 4096
#: HTTP statuses retried although they are not 5xx (rate limiting, request timeout).
_RETRY_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class SourceItem:
    """One candidate image: where it came from, its caption and metadata, and its bytes.

    Parameters
    ----------
    source : str
        What the rejection report and the metadata show: a file path, a URL,
        ``shard.tar#key``, ``file.parquet#row=12`` or ``dataset_dir#row=12``.
    path : Path or None
        The local image file when there is one (the exporter may copy it byte for byte).
    caption : str or None
        Caption from the source's metadata or a sidecar file; ``None`` when it has none.
    metadata : dict
        Extra columns / fields of the record. Folder sources add ``category``: the image's
        parent folder relative to the source root, as a POSIX path (absent for images at the
        root).
    error : str or None
        Why the item cannot be read (``"HTTP 404 Not Found"``, ...); ``None`` when it can.
    data : bytes or None
        The encoded image when the source holds it in memory (rows, tar members, downloads).
    caption_from : str or None
        Where ``caption`` was read: ``"column TEXT"``, ``"sidecar cat.txt"``,
        ``"sidecar cat.json field caption"``, ``"member .txt"``, ...; None without caption.
    """

    source: str
    path: Path | None = None
    caption: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)
    error: str | None = None
    data: bytes | None = field(default=None, repr=False, compare=False)
    caption_from: str | None = None

    @property
    def name(self) -> str:
        """A file-name-like label (``cat.jpg``, ``shard-000001``, ``train-row=12``)."""
        if self.path is not None:
            return self.path.name
        if "://" in self.source:
            parts = urlsplit(self.source)
            return PurePosixPath(unquote(parts.path)).name or parts.hostname or "download"
        base, sep, fragment = self.source.rpartition("#")
        if sep:
            return f"{Path(base).name.split('.')[0]}-{PurePosixPath(fragment).name}"
        return Path(self.source).name

    def read_bytes(self) -> bytes:
        """The encoded image.

        Raises
        ------
        OSError
            The item failed (the message is its ``error``) or its file cannot be read.
        """
        if self.error is not None:
            raise OSError(self.error)
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        raise OSError(f"{self.source}: no image data")

    def sidecar_caption(self) -> str:
        """The caption: ``caption`` when set, else a sidecar beside the file, else ``""``.

        A sidecar is ``<stem>.txt`` (its text) or ``<stem>.json`` (its ``text`` or ``caption``
        field) next to the image file.
        """
        if self.caption is not None:
            return self.caption
        if self.path is None:
            return ""
        return _read_sidecar(self.path)[0] or ""


@dataclass(frozen=True)
class FetchConfig:
    """How URL lists are downloaded.

    Parameters
    ----------
    workers : int
        Concurrent downloads (threads).
    window : int or None
        Most URLs submitted but not yet yielded (in flight or waiting for an earlier one to
        finish, so output keeps the list order); bounds memory to ``window`` images.
        ``None`` means ``2 * workers``.
    timeout_s : float
        Timeout of each request (connect and each read), seconds.
    retries : int
        Extra tries after the first on connection errors, timeouts, HTTP 5xx, 408 and 429;
        other 4xx answers are final.
    backoff_s : float
        Pause before the first retry; doubled before each further one.
    max_bytes : int
        Largest response accepted; a larger one becomes an error item.
    user_agent : str
        ``User-Agent`` header.
    """

    workers: int = 8
    window: int | None = None
    timeout_s: float = 20.0
    retries: int = 3
    backoff_s: float = 0.5
    max_bytes: int = 64 * 2**20
    user_agent: str = USER_AGENT

    def __post_init__(self) -> None:
        for name, low in (("workers", 1), ("window", 1), ("retries", 0), ("max_bytes", 1)):
            value = getattr(self, name)
            if name == "window" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"FetchConfig.{name} must be an integer >= {low}, got {value!r}")
        for name in ("timeout_s", "backoff_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"FetchConfig.{name} must be a number >= 0, got {value!r}")
        if self.timeout_s == 0:
            raise ValueError("FetchConfig.timeout_s must be > 0, got 0")

    @property
    def in_flight(self) -> int:
        """The window actually used (``window`` or ``2 * workers``)."""
        return self.window if self.window is not None else 2 * self.workers


@dataclass
class SourceStats:
    """What :func:`iter_sources` skipped, merged and chose, for the run's report.

    Attributes
    ----------
    hidden : int
        Hidden files and folders (names starting with ``.``) skipped inside folder sources;
        a hidden folder counts once, its contents are not walked.
    excluded : int
        Files and folders skipped because they lie in an excluded folder (the output).
    repeated : int
        Items reached a second time through overlapping sources (yielded once).
    other_files : int
        Files in folder sources that are neither images nor their caption sidecars.
    caption_columns : Counter
        Where captions came from (``"column TEXT"``, ``"sidecar .txt"``, ...) → items.
    notes : list of str
        Choices made on the user's behalf (the split read from a DatasetDict, ...).
    """

    hidden: int = 0
    excluded: int = 0
    repeated: int = 0
    other_files: int = 0
    caption_columns: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "hidden_skipped": self.hidden,
            "excluded": self.excluded,
            "repeated_inputs": self.repeated,
            "other_files_skipped": self.other_files,
            "caption_columns": dict(self.caption_columns),
            "notes": list(self.notes),
        }


class _Options(NamedTuple):
    """What every reader needs besides its plan."""

    batch_size: int
    fetch: Any
    exclude: tuple[Path, ...]
    stats: SourceStats
    split: str


class _Plan(NamedTuple):
    """A spec resolved to its kind before anything is read."""

    kind: str
    target: str
    files: tuple[Path, ...] = ()


class _UrlRow(NamedTuple):
    url: str
    caption: str | None
    metadata: dict[str, Any]


def iter_sources(
    specs: Iterable[str | os.PathLike],
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    fetch: FetchConfig | None = None,
    exclude: Iterable[str | os.PathLike] = (),
    stats: SourceStats | None = None,
    split: str = "train",
) -> Iterator[SourceItem]:
    """Stream the candidate images of ``specs`` in spec order, lazily.

    Parameters
    ----------
    specs : iterable of str or path
        Folders, image files, globs, saved Hugging Face datasets, imagefolders, Parquet files,
        webdataset shards, URL lists and URLs; see the module docstring for how each kind is
        detected.
    batch_size : int
        Rows read at a time from Parquet files and saved datasets.
    fetch : FetchConfig, optional
        Download settings for URLs (default: 8 workers, 20 s timeout, 3 retries).
    exclude : iterable of path, optional
        Folders never read (the output folder and its cache), wherever the sources reach.
    stats : SourceStats, optional
        Filled with what was skipped, merged and chosen while the iterator runs.
    split : str
        The split read from a saved ``DatasetDict`` (default ``train``); its other splits are
        not read, and ``stats.notes`` says so.

    Returns
    -------
    iterator of SourceItem
        Within a source, items keep the source's order (sorted paths for folders, row order,
        tar order, list order for URLs). Each input identity (a file, a row, a tar
        sample, a URL) is yielded once, however the sources overlap.

    Raises
    ------
    FileNotFoundError
        A spec names no existing path and matches no glob (raised by this call, before
        anything is read).
    ValueError
        A spec's kind is unknown, a spec holds no image (an empty folder, a Parquet file
        without rows, ...), a DatasetDict has no such split, or a table has no image /
        ``url`` column.
    """
    if isinstance(specs, (str, bytes, os.PathLike)):
        raise TypeError(f"specs must be a list of sources, got a single one: {specs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    options = _Options(
        batch_size, fetch or FetchConfig(), _excluded(exclude), stats or SourceStats(), split
    )
    plans = [_resolve(os.fspath(spec), options.exclude) for spec in specs]
    for plan in plans:
        _check_not_empty(plan, options)
    return _run(plans, options)


def _excluded(exclude: Iterable[str | os.PathLike]) -> tuple[Path, ...]:
    if isinstance(exclude, (str, os.PathLike)):
        exclude = [exclude]
    return tuple(Path(e).resolve() for e in exclude)


def _is_excluded(path: Path, exclude: tuple[Path, ...]) -> bool:
    if not exclude:
        return False
    resolved = path.resolve()
    return any(resolved == e or resolved.is_relative_to(e) for e in exclude)


def count_sources(
    specs: Iterable[str | os.PathLike],
    *,
    exclude: Iterable[str | os.PathLike] = (),
    split: str = "train",
) -> int | None:
    """How many items :func:`iter_sources` will yield, for progress bars; None if unknown.

    Cheap: folders and globs are listed (not read), Parquet files give their row count from
    the footer, saved datasets theirs from the Arrow metadata, uncompressed tar shards are
    counted from their member headers (seeking past the data), URL lists by line. Compressed
    shards (``.tar.gz``: they would have to be decompressed) make the total unknown, as
    does anything unreadable (a damaged Parquet footer: the run itself reports it). Inputs
    reached twice count once, as :func:`iter_sources` yields them once.
    """
    try:
        return _count(specs, _excluded(exclude), split)
    except Exception:  # a file that cannot be read is the run's business, not the bar's
        return None


def _count(specs: Iterable[str | os.PathLike], exclude: tuple[Path, ...], split: str) -> int | None:
    files = DigestSet()  # digests of the resolved paths (see _path_key)
    tables: set[tuple[str, str]] = set()  # (kind, resolved target) counted once
    rows = 0
    stats = SourceStats()

    def table(kind: str, path: Path) -> int:
        key = (kind, str(path.resolve()))
        if key in tables:
            return 0
        tables.add(key)
        if kind == "parquet":
            return _parquet_rows(path)
        count = _tar_samples(path)
        if count is None:
            raise _UnknownSizeError
        return count

    try:
        for spec in specs:
            plan = _resolve(os.fspath(spec), exclude)
            if plan.kind in ("folder", "imagefolder"):
                root = Path(plan.target)
                for path in _walk_images(root, exclude, stats):
                    files.add(_path_key(path))
            elif plan.kind == "file":
                if not _is_excluded(Path(plan.target), exclude):
                    files.add(_path_key(Path(plan.target)))
            elif plan.kind == "glob":
                for path in plan.files:
                    if not path.is_file() or _is_excluded(path, exclude):
                        continue
                    name = path.name.lower()
                    if is_image_file(path):
                        files.add(_path_key(path))
                    elif name.endswith(".parquet"):
                        rows += table("parquet", path)
                    elif name.endswith(_TAR_SUFFIXES):
                        rows += table("tar", path)
            elif plan.kind == "parquet":
                rows += table("parquet", Path(plan.target))
            elif plan.kind == "parquet-folder":
                for path in _walk_files(Path(plan.target), exclude, stats):
                    if path.name.lower().endswith(".parquet"):
                        rows += table("parquet", path)
            elif plan.kind == "webdataset":
                rows += table("tar", Path(plan.target))
            elif plan.kind == "webdataset-folder":
                for path in _walk_files(Path(plan.target), exclude, stats):
                    if path.name.lower().endswith(_TAR_SUFFIXES):
                        rows += table("tar", path)
            elif plan.kind == "arrow":
                key = ("arrow", str(Path(plan.target).resolve()))
                if key not in tables:
                    tables.add(key)
                    rows += _arrow_split(plan.target, split, SourceStats())[1].num_rows
            elif plan.kind in ("url-txt", "url-csv", "url"):
                rows += 0  # URLs: counted below, once each
    except _UnknownSizeError:
        return None
    urls = DigestSet()  # digests of the URLs (see _digest)
    for spec in specs:
        plan = _resolve(os.fspath(spec), exclude)
        if plan.kind == "url-txt":
            for row in _url_rows_txt(Path(plan.target)):
                urls.add(_digest(row.url))
        elif plan.kind == "url-csv":
            for row in _url_rows_csv(Path(plan.target)):
                urls.add(_digest(row.url))
        elif plan.kind == "url":
            urls.add(_digest(plan.target))
    return len(files) + rows + len(urls)


class _UnknownSizeError(Exception):
    """A source whose size cannot be known cheaply."""


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _tar_samples(path: Path) -> int | None:
    """Samples (distinct keys) of an uncompressed tar from its headers; None if compressed."""
    if not path.name.lower().endswith(".tar"):
        return None
    keys: set[str] = set()
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if member.isfile():
                keys.add(_wds_split(member.name)[0])
    return len(keys)


def _check_not_empty(plan: _Plan, options: _Options) -> None:
    """Raise when a source holds no candidate image at all (cheap checks only)."""
    kind, target = plan.kind, plan.target
    if kind not in ("url", "glob") and _is_excluded(Path(target), options.exclude):
        raise ValueError(
            f"source {target} is empty: it is the output folder or its cache, which are "
            "never read as input"
        )
    empty = False
    what = "no image files"
    stats = SourceStats()
    if kind in ("folder", "imagefolder"):
        root = Path(target)
        empty = next(iter(_walk_images(root, options.exclude, stats)), None) is None
        if empty and kind == "imagefolder":
            empty = next(_metadata_files(root, options.exclude), None) is None
        if empty and (stats.hidden or stats.excluded):
            what += (
                f" ({stats.hidden} hidden and {stats.excluded} excluded entries skipped: "
                "the output folder and its cache are never read)"
            )
    elif kind == "file":
        empty = _is_excluded(Path(target), options.exclude)
        what = "nothing to read: the file lies in the output folder"
    elif kind == "glob":
        usable = [
            p
            for p in plan.files
            if p.is_file()
            and not _is_excluded(p, options.exclude)
            and (is_image_file(p) or p.name.lower().endswith((".parquet", *_TAR_SUFFIXES)))
        ]
        empty, what = not usable, "no matching image, .parquet or .tar files"
    elif kind == "parquet":
        with contextlib.suppress(Exception):  # unreadable: reported by the run as a rejection
            empty, what = _parquet_rows(Path(target)) == 0, "no rows"
    elif kind in ("parquet-folder", "webdataset-folder"):
        files = list(_walk_files(Path(target), options.exclude, stats))
        empty = not files
    elif kind == "webdataset":
        with contextlib.suppress(Exception), tarfile.open(target, mode="r|*") as tar:
            empty, what = next(iter(tar), None) is None, "no members"
    elif kind == "arrow":
        split_name, dataset = _arrow_split(target, options.split, options.stats)
        empty, what = dataset.num_rows == 0, f"no rows in split {split_name!r}"
    elif kind == "url-txt":
        empty, what = next(_url_rows_txt(Path(target)), None) is None, "no URLs"
    elif kind == "url-csv":
        empty, what = next(_url_rows_csv(Path(target)), None) is None, "no URLs"
    if empty:
        raise ValueError(f"source {target} is empty: {what}")


# --------------------------------------------------------------------------- dispatch


def _resolve(text: str, exclude: tuple[Path, ...] = ()) -> _Plan:
    """Find the kind of one spec; raises when it does not exist or is of no known kind."""
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in ("http", "https"):
        return _Plan("url", text)
    if scheme == "file":
        text = _file_url_path(text)
    elif scheme:
        raise ValueError(f"unsupported URL scheme {scheme!r} in source {text!r}")
    path = Path(text)
    if path.is_dir():
        return _Plan(_folder_kind(path, exclude), text)
    if path.is_file():
        name = path.name.lower()
        if name.endswith(".parquet"):
            return _Plan("parquet", text)
        if name.endswith(_TAR_SUFFIXES):
            return _Plan("webdataset", text)
        if name.endswith(".txt"):
            return _Plan("url-txt", text)
        if name.endswith(".csv"):
            return _Plan("url-csv", text)
        if is_image_file(path):
            return _Plan("file", text)
        raise ValueError(
            f"unknown source kind: {text} (expected a folder, an image file, .parquet, .tar, "
            ".txt or .csv URL list, a glob or an http(s):// URL)"
        )
    matches = sorted(glob.glob(text, recursive=True))
    if not matches:
        raise FileNotFoundError(f"source not found: {text}")
    return _Plan("glob", text, tuple(Path(m) for m in matches))


def _folder_kind(folder: Path, exclude: tuple[Path, ...] = ()) -> str:
    """``arrow``, ``imagefolder``, ``parquet-folder``, ``webdataset-folder`` or ``folder``."""
    with os.scandir(folder) as entries:
        listing = list(entries)
    names = {entry.name for entry in listing}
    if "dataset_dict.json" in names or {"dataset_info.json", "state.json"} <= names:
        return "arrow"
    if names & set(_IMAGEFOLDER_METADATA):
        return "imagefolder"
    # the sub-folders only (a pool's folder of 100,000 files is not probed file by file)
    folders = sorted(e.name for e in listing if not e.name.startswith(".") and e.is_dir())
    for name in folders:
        sub = folder / name
        if _is_excluded(sub, exclude):
            continue
        if any((sub / meta).is_file() for meta in _IMAGEFOLDER_METADATA):
            return "imagefolder"
    tables = shards = False
    for path in _walk_files(folder, exclude):
        if is_image_file(path):
            return "folder"
        tables = tables or path.name.lower().endswith(".parquet")
        shards = shards or path.name.lower().endswith(_TAR_SUFFIXES)
    if tables:
        return "parquet-folder"
    return "webdataset-folder" if shards else "folder"


def _identity(item: SourceItem) -> str:
    """What makes an input the same input: its resolved file, or its source with the file
    part resolved (``/abs/t.parquet#row=3``), or its URL."""
    if item.path is not None and item.data is None:
        return _resolved(item.path)
    if "://" in item.source:
        return item.source
    base, sep, fragment = item.source.rpartition("#")
    if sep:
        return f"{_resolved(base)}#{fragment}"
    return _resolved(item.source)


def _run(plans: list[_Plan], options: _Options) -> Iterator[SourceItem]:
    seen = DigestSet()
    identities = DigestSet()  # 16-byte digests of the identities
    urls = DigestSet()
    stats = options.stats
    for is_url, group in itertools.groupby(plans, key=lambda plan: plan.kind == "url"):
        if is_url:  # consecutive URL specs share one download window
            rows = _unique_urls((_UrlRow(p.target, None, {}) for p in group), urls, stats)
            stream = _fetch_in_order(rows, options.fetch)
        else:
            stream = (item for plan in group for item in _iter_plan(plan, seen, urls, options))
        for item in stream:
            if not identities.add(_digest(_identity(item))):
                stats.repeated += 1
                continue
            if item.caption is not None and item.caption_from:
                stats.caption_columns[item.caption_from] += 1
            yield item


def _digest(text: str) -> bytes:
    """A 128-bit BLAKE2b digest of ``text`` (a URL, an input's identity, a resolved path):
    what the sets of inputs met hold, 16 bytes each in a :class:`DigestSet`."""
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


def _unique_urls(rows: Iterable[_UrlRow], urls: DigestSet, stats: SourceStats) -> Iterator[_UrlRow]:
    """``rows`` without URLs already listed (downloaded once, counted as repeated)."""
    for row in rows:
        if row.url and not urls.add(_digest(row.url)):
            stats.repeated += 1
            continue
        yield row


def _iter_plan(
    plan: _Plan, seen: DigestSet, urls: DigestSet, options: _Options
) -> Iterator[SourceItem]:
    kind, target = plan.kind, plan.target
    batch_size, fetch, exclude, stats = (
        options.batch_size,
        options.fetch,
        options.exclude,
        options.stats,
    )
    if kind == "folder":
        yield from _iter_image_folder(Path(target), seen, options)
    elif kind == "file":
        yield from _iter_image_files([Path(target)], seen, options)
    elif kind == "imagefolder":
        yield from _iter_imagefolder(Path(target), seen, options)
    elif kind == "arrow":
        yield from _iter_arrow_dataset(target, batch_size=batch_size, options=options)
    elif kind == "parquet":
        yield from _iter_parquet(Path(target), batch_size=batch_size, fetch=fetch, urls=urls)
    elif kind == "parquet-folder":
        for path in _walk_files(Path(target), exclude, stats):
            if path.name.lower().endswith(".parquet"):
                yield from _iter_parquet(path, batch_size=batch_size, fetch=fetch, urls=urls)
    elif kind == "webdataset":
        yield from _iter_webdataset(Path(target))
    elif kind == "webdataset-folder":
        for path in _walk_files(Path(target), exclude, stats):
            if path.name.lower().endswith(_TAR_SUFFIXES):
                yield from _iter_webdataset(path)
    elif kind == "url-txt":
        yield from _fetch_in_order(_unique_urls(_url_rows_txt(Path(target)), urls, stats), fetch)
    elif kind == "url-csv":
        yield from _fetch_in_order(_unique_urls(_url_rows_csv(Path(target)), urls, stats), fetch)
    elif kind == "glob":
        yield from _iter_glob(plan.files, seen, urls, options)
    else:  # pragma: no cover - _resolve only returns the kinds above
        raise AssertionError(f"unhandled source kind {kind!r}")


# --------------------------------------------------------------------------- local files


def _walk_files(
    root: Path, exclude: tuple[Path, ...] = (), stats: SourceStats | None = None
) -> Iterator[Path]:
    """Files below ``root``, sorted; hidden files and folders and ``exclude`` skipped (and
    counted in ``stats``)."""
    stats = stats if stats is not None else SourceStats()
    for dirpath, dirnames, filenames in os.walk(root):
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                stats.hidden += 1
            elif _is_excluded(Path(dirpath) / name, exclude):
                stats.excluded += 1
            else:
                kept.append(name)
        dirnames[:] = kept
        for filename in sorted(filenames):
            if filename.startswith("."):
                stats.hidden += 1
            else:
                yield Path(dirpath) / filename


def _walk_images(
    root: Path, exclude: tuple[Path, ...] = (), stats: SourceStats | None = None
) -> Iterator[Path]:
    """Image files below ``root`` (see :func:`_walk_files`); other files are counted in
    ``stats.other_files`` unless they are caption sidecars or imagefolder metadata."""
    stats = stats if stats is not None else SourceStats()
    if root.is_file():
        yield root
        return
    for path in _walk_files(root, exclude, stats):
        if is_image_file(path):
            yield path
        elif path.suffix.lower() not in (".txt", ".json") and path.name not in (
            _IMAGEFOLDER_METADATA
        ):
            stats.other_files += 1


def _path_key(path: Path) -> bytes:
    """A 128-bit BLAKE2b digest of the resolved path: what the set of visited files holds
    (16 bytes each in a :class:`DigestSet`; a resolved ``Path`` costs about 600)."""
    return _digest(_resolved(path))


def _resolved(path: str | os.PathLike) -> str:
    """``os.path.realpath(path)`` with one ``lstat`` for a file that is not a symbolic
    link: its folder is resolved once per folder (``realpath`` takes an ``lstat`` per path
    component, and every input was resolved three times: 18 calls a file in a pool five
    folders deep)."""
    path = os.fspath(path)
    if ".." in path.split(os.sep):  # a link before ".." must be followed first
        return os.path.realpath(path)
    folder, name = os.path.split(os.path.abspath(path))
    real = os.path.join(_real_folder(folder), name)
    return os.path.realpath(real) if os.path.islink(real) else real


@functools.lru_cache(maxsize=64)
def _real_folder(folder: str) -> str:
    """``os.path.realpath`` of an absolute folder path (cached: the files of one folder
    come together)."""
    return os.path.realpath(folder)


def _first_visit(path: Path, seen: DigestSet, stats: SourceStats | None = None) -> bool:
    """Whether ``path`` (resolved) is met for the first time (``seen``: :func:`_path_key`
    of the files met so far)."""
    resolved = _path_key(path)
    if seen.add(resolved):
        return True
    if stats is not None:
        stats.repeated += 1
    return False


def _category(path: Path, root: Path | None) -> dict[str, str]:
    if root is None:
        return {}
    relative = path.parent.relative_to(root).as_posix()
    return {} if relative == "." else {"category": relative}


def _file_item(path: Path, root: Path | None) -> SourceItem:
    """An image file with its sidecar caption and metadata."""
    caption, metadata, where = _read_sidecar_from(path)
    for key, value in _category(path, root).items():
        metadata.setdefault(key, value)
    return SourceItem(
        source=str(path), path=path, caption=caption, metadata=metadata, caption_from=where
    )


def _iter_image_folder(root: Path, seen: DigestSet, options: _Options) -> Iterator[SourceItem]:
    """Image files below ``root`` (recursive, sorted), captions from sidecars."""
    for path in _walk_images(root, options.exclude, options.stats):
        if _first_visit(path, seen, options.stats):
            yield _file_item(path, root)


def _iter_image_files(
    paths: Iterable[Path], seen: DigestSet, options: _Options
) -> Iterator[SourceItem]:
    """Single image files, captions from sidecars."""
    for path in paths:
        if _is_excluded(path, options.exclude):
            options.stats.excluded += 1
        elif _first_visit(path, seen, options.stats):
            yield _file_item(path, None)


def _iter_glob(
    matches: Iterable[Path], seen: DigestSet, urls: DigestSet, options: _Options
) -> Iterator[SourceItem]:
    """Glob matches: image files, Parquet files and tar shards (other files are skipped)."""
    for path in matches:
        if not path.is_file():
            continue
        if _is_excluded(path, options.exclude):
            options.stats.excluded += 1
            continue
        name = path.name.lower()
        if is_image_file(path):
            yield from _iter_image_files([path], seen, options)
        elif name.endswith(".parquet"):
            yield from _iter_parquet(
                path, batch_size=options.batch_size, fetch=options.fetch, urls=urls
            )
        elif name.endswith(_TAR_SUFFIXES):
            yield from _iter_webdataset(path)


def _read_sidecar(path: Path) -> tuple[str | None, dict[str, Any]]:
    """Caption and extra fields from ``<stem>.txt`` or ``<stem>.json`` beside ``path``."""
    caption, metadata, _ = _read_sidecar_from(path)
    return caption, metadata


def _read_sidecar_from(path: Path) -> tuple[str | None, dict[str, Any], str | None]:
    """:func:`_read_sidecar` and where the caption came from."""
    text_file = path.with_suffix(".txt")
    if text_file.is_file():
        text = text_file.read_text(encoding="utf-8", errors="replace").strip()
        return text, {}, "sidecar .txt"
    json_file = path.with_suffix(".json")
    if not json_file.is_file():
        return None, {}, None
    try:
        record = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _LOG.warning("ignoring unreadable caption sidecar %s: %s", json_file, exc)
        return None, {}, None
    if not isinstance(record, dict):
        return None, {}, None
    caption, column = _pop_caption_from(record)
    where = f"sidecar .json field {column}" if caption is not None else None
    return caption, _plain_metadata(record), where


def _pop_caption(row: dict[str, Any]) -> str | None:
    """Remove and return the first caption column of ``row`` (``None`` when none or empty)."""
    return _pop_caption_from(row)[0]


def _pop_caption_from(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """:func:`_pop_caption` and the column it used. Columns are matched case-insensitively,
    in the order of :data:`CAPTION_COLUMNS` (``text`` before ``caption``; ``text`` before
    ``TEXT``); the first non-empty one wins and every caption column is removed."""
    found: tuple[str | None, str | None] = (None, None)
    for wanted in CAPTION_COLUMNS:
        for column in sorted((c for c in row if str(c).lower() == wanted), key=str, reverse=True):
            value = row.pop(column)
            if found[0] is None and value is not None and value != "":
                text = value.strip() if isinstance(value, str) else str(value)
                found = (text or None, column if text else None)
    return found


def _is_binary(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    if isinstance(value, dict):
        return any(_is_binary(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_is_binary(v) for v in value)
    return False


def _plain_metadata(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` without binary values (other image columns, raw blobs)."""
    return {key: value for key, value in row.items() if not _is_binary(value)}


# --------------------------------------------------------------------------- imagefolder


def _metadata_files(root: Path, exclude: tuple[Path, ...] = ()) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and not _is_excluded(Path(dirpath) / d, exclude)
        )
        present = [name for name in _IMAGEFOLDER_METADATA if name in filenames]
        if len(present) > 1:
            raise ValueError(
                f"{dirpath} has both {' and '.join(present)}: an imagefolder needs exactly one"
            )
        if present:
            yield Path(dirpath) / present[0]


def _metadata_rows(meta_file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a ``metadata.jsonl`` / ``metadata.csv``, streamed."""
    with open(meta_file, encoding="utf-8", newline="") as handle:
        if meta_file.suffix == ".csv":
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if v not in ("", None)}
            return
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{meta_file}:{line_no}: bad metadata row ({exc})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{meta_file}:{line_no}: a metadata row must be a JSON object")
            yield line_no, row


def _iter_imagefolder(root: Path, seen: DigestSet, options: _Options) -> Iterator[SourceItem]:
    """A Hugging Face imagefolder: rows of its metadata files, then images none of them lists.

    Captions and metadata come from the metadata files (``text`` column), not from sidecars.
    The set of listed files is kept to find unlisted images (one path per row).
    """
    listed: set[Path] = set()
    for meta_file in _metadata_files(root, options.exclude):
        for line_no, row in _metadata_rows(meta_file):
            where = f"{meta_file}:{line_no}"
            file_name = row.pop("file_name", None)
            if not isinstance(file_name, str) or not file_name:
                raise ValueError(f"{where}: no file_name (columns: {sorted(row)})")
            path = meta_file.parent / file_name
            listed.add(path.resolve())
            if not path.is_file():
                yield SourceItem(source=str(path), error=f"missing file listed in {where}")
                continue
            if _is_excluded(path, options.exclude):
                options.stats.excluded += 1
                continue
            if not _first_visit(path, seen, options.stats):
                continue
            caption, column = _pop_caption_from(row)
            metadata = _plain_metadata(row)
            for key, value in _category(path, root).items():
                metadata.setdefault(key, value)
            yield SourceItem(
                source=str(path),
                path=path,
                caption=caption,
                metadata=metadata,
                caption_from=f"{meta_file.name} column {column}" if column else None,
            )
    for path in _walk_images(root, options.exclude, options.stats):
        if path.resolve() not in listed and _first_visit(path, seen, options.stats):
            yield SourceItem(source=str(path), path=path, metadata=_category(path, root))


# --------------------------------------------------------------------------- tables


def _image_value(value: Any, base: Path) -> tuple[bytes | None, Path | None, str | None]:
    """(bytes, local path, error) of an image cell: raw bytes or an HF ``{bytes, path}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None, None
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"]), None, None
        if value.get("path"):
            path = Path(value["path"])
            for candidate in (path, base / path):
                if candidate.is_file():
                    return None, candidate, None
            return None, None, f"image file not found: {value['path']}"
    if isinstance(value, str) and value:
        return _image_value({"path": value}, base)
    return None, None, "no image in this row"


def _row_item(source: str, row: dict[str, Any], image_column: str, base: Path) -> SourceItem:
    data, path, error = _image_value(row.pop(image_column), base)
    caption, column = _pop_caption_from(row)
    return SourceItem(
        source=source,
        path=path,
        caption=caption,
        metadata=_plain_metadata(row),
        error=error,
        data=data,
        caption_from=f"column {column}" if column else None,
    )


def _parquet_image_column(schema: Any) -> str | None:
    """First column holding images: HF ``Image`` feature, else binary or ``{bytes, ...}``."""
    import pyarrow as pa

    hf = (schema.metadata or {}).get(b"huggingface")
    if hf:
        try:
            features = json.loads(hf).get("info", {}).get("features", {})
        except (ValueError, AttributeError):
            features = {}
        for name, feature in features.items():
            is_image = isinstance(feature, dict) and feature.get("_type") == "Image"
            if is_image and name in schema.names:
                return name
    for column in schema:
        kind = column.type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return column.name
        if pa.types.is_struct(kind):
            sub = {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}
            if "bytes" in sub and (
                pa.types.is_binary(sub["bytes"]) or pa.types.is_large_binary(sub["bytes"])
            ):
                return column.name
    return None


def _iter_parquet(
    path: Path, *, batch_size: int, fetch: FetchConfig, urls: DigestSet | None = None
) -> Iterator[SourceItem]:
    """Rows of a Parquet file, ``batch_size`` at a time: images, or URLs to download."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        yield SourceItem(source=str(path), error=f"unreadable parquet file: {exc}")
        return
    schema = table.schema_arrow
    image_column = _parquet_image_column(schema)
    if image_column is None and "url" in schema.names:
        rows = _url_rows_parquet(table, batch_size)
        if urls is not None:
            rows = _unique_urls(rows, urls, SourceStats())
        yield from _fetch_in_order(rows, fetch)
        return
    if image_column is None:
        raise ValueError(
            f"{path}: no image column (binary or {{bytes, path}}) and no url column; "
            f"columns: {schema.names}"
        )
    row = 0
    try:
        for batch in table.iter_batches(batch_size=batch_size):
            for record in batch.to_pylist():
                yield _row_item(f"{path}#row={row}", record, image_column, path.parent)
                row += 1
    except (OSError, pa.ArrowException) as exc:
        yield SourceItem(source=f"{path}#row={row}", error=f"unreadable parquet row: {exc}")


def _arrow_split(root: str, split: str, stats: SourceStats) -> tuple[str | None, Any]:
    """(split name or None, dataset) of a saved ``Dataset`` or one split of a ``DatasetDict``.

    A DatasetDict gives its ``split`` only (a note in ``stats`` names the splits not read);
    raises when it has no such split.
    """
    import datasets

    loaded = datasets.load_from_disk(root)
    if not isinstance(loaded, datasets.DatasetDict):
        return None, loaded
    if split not in loaded:
        raise ValueError(
            f"source {root} is a DatasetDict without a {split!r} split (its splits: "
            f"{', '.join(loaded)}); choose one with the config key `split: NAME`"
        )
    others = [name for name in loaded if name != split]
    note = f"{root}: read split {split!r} of the DatasetDict"
    note += f" (not read: {', '.join(others)})" if others else ""
    if note not in stats.notes:
        stats.notes.append(note)
    return split, loaded[split]


def _iter_arrow_dataset(
    root: str, *, batch_size: int, options: _Options | None = None
) -> Iterator[SourceItem]:
    """Rows of a dataset saved with ``Dataset.save_to_disk`` (one split of a DatasetDict:
    ``options.split``, default ``train``)."""
    import datasets

    split, dataset = _arrow_split(
        root, options.split if options else "train", options.stats if options else SourceStats()
    )
    splits = [(os.path.join(root, split) if split else root, dataset)]
    for label, dataset in splits:
        image_column = next(
            (name for name, f in dataset.features.items() if isinstance(f, datasets.Image)), None
        )
        if image_column is None:
            raise ValueError(
                f"{label}: no column with the datasets.Image feature; "
                f"features: {dict(dataset.features)}"
            )
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
        row = 0
        for batch in dataset.iter(batch_size=batch_size):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns), strict=True):
                record = dict(zip(columns, values, strict=True))
                yield _row_item(f"{label}#row={row}", record, image_column, Path(label))
                row += 1


# --------------------------------------------------------------------------- webdataset


def _wds_split(name: str) -> tuple[str, str]:
    """``dir/000001.seg.png`` → (``dir/000001``, ``seg.png``): the key ends at the first dot."""
    directory, slash, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot:
        return name, ""
    return f"{directory}{slash}{stem}", ext.lower()


def _wds_sample(shard: Path, key: str, members: dict[str, bytes]) -> SourceItem:
    source = f"{shard}#{key}"
    image_ext = next((e for e in _WDS_IMAGE_EXTS if e in members), None)
    caption: str | None = None
    where: str | None = None
    metadata: dict[str, Any] = {}
    if "json" in members:
        try:
            record = json.loads(members["json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            _LOG.warning("ignoring unreadable %s.json: %s", source, exc)
            record = None
        if isinstance(record, dict):
            caption, column = _pop_caption_from(record)
            where = f"member .json field {column}" if column else None
            metadata.update(_plain_metadata(record))
    if "txt" in members:
        caption = members["txt"].decode("utf-8", errors="replace").strip()
        where = "member .txt"
    for ext, blob in members.items():
        if ext not in ("txt", "json") and ext not in _WDS_IMAGE_EXTS:
            with contextlib.suppress(UnicodeDecodeError):
                metadata.setdefault(ext, blob.decode("utf-8").strip())
    if image_ext is None:
        found = ", ".join(f".{e}" for e in sorted(members)) or "none read"
        reason = f"no image member in sample (members: {found})"
        return SourceItem(
            source=source, caption=caption, metadata=metadata, error=reason, caption_from=where
        )
    metadata["image_ext"] = image_ext
    return SourceItem(
        source, caption=caption, metadata=metadata, data=members[image_ext], caption_from=where
    )


def _iter_webdataset(shard: Path) -> Iterator[SourceItem]:
    """Samples of a webdataset tar shard, streamed member by member (``r|*``).

    Members are grouped by key (consecutive members with the same path up to the first dot
    of the file name). A shard that breaks off mid-way yields the samples before the break and
    one error item for the sample it broke in.
    """
    key: str | None = None
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                member_key, ext = _wds_split(member.name)
                if member_key != key:
                    if key is not None:
                        yield _wds_sample(shard, key, members)
                    key, members = member_key, {}
                wanted = ext in ("txt", "json") or ext in _WDS_IMAGE_EXTS
                if wanted or member.size <= _WDS_MAX_TEXT_MEMBER:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        members[ext] = handle.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        where = f"{shard}#{key}" if key is not None else str(shard)
        yield SourceItem(source=where, error=f"unreadable tar shard: {exc}")
        return
    if key is not None:
        yield _wds_sample(shard, key, members)


# --------------------------------------------------------------------------- URLs


def _file_url_path(url: str) -> str:
    return urllib.request.url2pathname(unquote(urlsplit(url).path))


def _ascii_url(url: str) -> str:
    """``url`` with non-ASCII characters percent-encoded (UTF-8), as browsers send them."""
    if url.isascii():
        return url
    parts = urlsplit(url)
    try:
        host = parts.hostname.encode("idna").decode("ascii") if parts.hostname else ""
    except UnicodeError:
        host = quote(parts.hostname or "", safe="")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if parts.username is not None:
        user = quote(parts.username, safe="%")
        password = "" if parts.password is None else ":" + quote(parts.password, safe="%")
        netloc = f"{user}{password}@{netloc}"
    safe = "%/:=&?~#+!$,;'@()*[]"
    return urlunsplit(
        (parts.scheme, netloc, quote(parts.path, safe=safe), quote(parts.query, safe=safe), "")
    )


def _url_rows_txt(path: Path) -> Iterator[_UrlRow]:
    """One URL a line; blank lines and lines starting with ``#`` are skipped."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            url = line.strip()
            if url and not url.startswith("#"):
                yield _UrlRow(url, None, {})


def _url_rows_csv(path: Path) -> Iterator[_UrlRow]:
    """Rows of a CSV with a ``url`` column (caption from ``text`` / ``caption``)."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if "url" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: a URL list needs a 'url' column; has {reader.fieldnames}")
        for row in reader:
            row = {k: v for k, v in row.items() if v not in ("", None)}
            url = row.pop("url", "").strip()
            caption, column = _pop_caption_from(row)
            if column:
                row["_caption_from"] = f"column {column}"
            yield _UrlRow(url, caption, row)


def _url_rows_parquet(table: Any, batch_size: int) -> Iterator[_UrlRow]:
    for batch in table.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            url = row.pop("url") or ""
            caption, column = _pop_caption_from(row)
            metadata = _plain_metadata(row)
            if column:
                metadata["_caption_from"] = f"column {column}"
            yield _UrlRow(str(url).strip(), caption, metadata)


def _fetch(row: _UrlRow, config: FetchConfig) -> SourceItem:
    """Download one URL with retries; failures become an item with ``error``, never raise."""
    url, caption, metadata = row
    metadata = dict(metadata)
    where = metadata.pop("_caption_from", None)

    def failed(reason: str) -> SourceItem:
        return SourceItem(
            source=url, caption=caption, metadata=metadata, error=reason, caption_from=where
        )

    if not url:
        return failed("empty URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        path = Path(_file_url_path(url))
        if not path.is_file():
            return failed(f"file not found: {path}")
        return SourceItem(
            source=url, path=path, caption=caption, metadata=metadata, caption_from=where
        )
    if scheme not in ("http", "https"):
        return failed(f"unsupported URL scheme {scheme!r}")
    headers = {"User-Agent": config.user_agent, "Accept": "image/*,*/*;q=0.8"}
    try:
        request = urllib.request.Request(_ascii_url(url), headers=headers)
    except ValueError as exc:
        return failed(f"invalid URL: {exc}")
    tries = config.retries + 1
    reason = ""
    for attempt in range(tries):
        if attempt:
            time.sleep(config.backoff_s * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
                data = response.read(config.max_bytes + 1)
                content_type = response.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            exc.close()
            reason = f"HTTP {exc.code} {exc.reason}".strip()
            if exc.code < 500 and exc.code not in _RETRY_STATUS:
                return failed(reason)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                reason = f"timed out ({config.timeout_s:g} s)"
            else:
                reason = f"connection error: {exc.reason}"
        except TimeoutError:
            reason = f"timed out ({config.timeout_s:g} s)"
        except (OSError, http.client.HTTPException) as exc:
            reason = f"connection error: {type(exc).__name__}: {exc}"
        except ValueError as exc:  # http.client.InvalidURL and the like: retrying won't help
            return failed(f"invalid URL: {exc}")
        else:
            if len(data) > config.max_bytes:
                return failed(f"response larger than {config.max_bytes} bytes")
            return SourceItem(
                source=url,
                caption=caption,
                metadata={**metadata, "content_type": content_type},
                data=data,
                caption_from=where,
            )
    return failed(f"{reason} after {tries} {'try' if tries == 1 else 'tries'}")


def _fetch_in_order(rows: Iterable[_UrlRow], config: FetchConfig) -> Iterator[SourceItem]:
    """Download ``rows`` on a thread pool, yielding results in list order.

    At most ``config.in_flight`` URLs are submitted and not yet yielded, so memory holds at
    most that many images however long the list is.
    """
    pending: deque[Future[SourceItem]] = deque()
    rows = iter(rows)
    pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="restorelab-fetch")
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < config.in_flight:
                row = next(rows, None)
                if row is None:
                    exhausted = True
                else:
                    pending.append(pool.submit(_fetch, row, config))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
