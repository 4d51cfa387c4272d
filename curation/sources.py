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
so the pipeline rejects it with that reason. A spec that does not exist or whose kind is
unknown raises before anything is read.
"""

from __future__ import annotations

import contextlib
import csv
import glob
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
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from restorelab import __version__
from restorelab.imageio import IMAGE_EXTENSIONS, is_image_file, iter_image_files

_LOG = logging.getLogger(__name__)

#: Columns (and JSON fields) read as the caption, in order of preference.
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
    """

    source: str
    path: Path | None = None
    caption: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)
    error: str | None = None
    data: bytes | None = field(default=None, repr=False, compare=False)

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

    Returns
    -------
    iterator of SourceItem
        Within a source, items keep the source's order (sorted paths for folders, row order,
        tar order, list order for URLs). The same local image file reached twice through
        folders, files, globs or imagefolders is yielded once.

    Raises
    ------
    FileNotFoundError
        A spec names no existing path and matches no glob (raised by this call, before
        anything is read).
    ValueError
        A spec's kind is unknown, or a table has no image / ``url`` column.
    """
    if isinstance(specs, (str, bytes, os.PathLike)):
        raise TypeError(f"specs must be a list of sources, got a single one: {specs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    plans = [_resolve(os.fspath(spec)) for spec in specs]
    return _run(plans, batch_size=batch_size, fetch=fetch or FetchConfig())


def count_sources(specs: Iterable[str | os.PathLike]) -> int | None:
    """How many items :func:`iter_sources` will yield, for progress bars; None if unknown.

    Cheap: folders and globs are listed (not read), Parquet files give their row count from
    the footer, URL lists are counted by line. Saved datasets and webdataset shards (a tar
    must be read through to count) make the total unknown, as does anything unreadable (a
    damaged Parquet footer: the run itself reports it). An image file reached twice counts
    once, as :func:`iter_sources` yields it once.
    """
    try:
        return _count(specs)
    except Exception:  # a file that cannot be read is the run's business, not the bar's
        return None


def _count(specs: Iterable[str | os.PathLike]) -> int | None:
    files: set[Path] = set()
    rows = 0
    for spec in specs:
        plan = _resolve(os.fspath(spec))
        if plan.kind in ("folder", "imagefolder"):
            files.update(p.resolve() for p in iter_image_files(Path(plan.target)))
        elif plan.kind == "file":
            files.add(Path(plan.target).resolve())
        elif plan.kind == "glob":
            for path in plan.files:
                if path.is_file() and is_image_file(path):
                    files.add(path.resolve())
                elif path.is_file() and path.name.lower().endswith(".parquet"):
                    rows += _parquet_rows(path)
                elif path.is_file() and path.name.lower().endswith(_TAR_SUFFIXES):
                    return None
        elif plan.kind == "parquet":
            rows += _parquet_rows(Path(plan.target))
        elif plan.kind == "parquet-folder":
            for path in _walk_files(Path(plan.target)):
                if path.name.lower().endswith(".parquet"):
                    rows += _parquet_rows(path)
        elif plan.kind == "url-txt":
            rows += sum(1 for _ in _url_rows_txt(Path(plan.target)))
        elif plan.kind == "url-csv":
            rows += sum(1 for _ in _url_rows_csv(Path(plan.target)))
        elif plan.kind == "url":
            rows += 1
        else:  # saved datasets, webdataset shards
            return None
    return len(files) + rows


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


# --------------------------------------------------------------------------- dispatch


def _resolve(text: str) -> _Plan:
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
        return _Plan(_folder_kind(path), text)
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


def _folder_kind(folder: Path) -> str:
    """``arrow``, ``imagefolder``, ``parquet-folder``, ``webdataset-folder`` or ``folder``."""
    names = set(os.listdir(folder))
    if "dataset_dict.json" in names or {"dataset_info.json", "state.json"} <= names:
        return "arrow"
    if names & set(_IMAGEFOLDER_METADATA):
        return "imagefolder"
    for name in sorted(names):
        sub = folder / name
        if not name.startswith(".") and any(
            (sub / meta).is_file() for meta in _IMAGEFOLDER_METADATA
        ):
            return "imagefolder"
    tables = shards = False
    for path in _walk_files(folder):
        if is_image_file(path):
            return "folder"
        tables = tables or path.name.lower().endswith(".parquet")
        shards = shards or path.name.lower().endswith(_TAR_SUFFIXES)
    if tables:
        return "parquet-folder"
    return "webdataset-folder" if shards else "folder"


def _run(plans: list[_Plan], *, batch_size: int, fetch: FetchConfig) -> Iterator[SourceItem]:
    seen: set[Path] = set()
    for is_url, group in itertools.groupby(plans, key=lambda plan: plan.kind == "url"):
        if is_url:  # consecutive URL specs share one download window
            yield from _fetch_in_order((_UrlRow(p.target, None, {}) for p in group), fetch)
            continue
        for plan in group:
            yield from _iter_plan(plan, seen, batch_size=batch_size, fetch=fetch)


def _iter_plan(
    plan: _Plan, seen: set[Path], *, batch_size: int, fetch: FetchConfig
) -> Iterator[SourceItem]:
    kind, target = plan.kind, plan.target
    if kind == "folder":
        yield from _iter_image_folder(Path(target), seen)
    elif kind == "file":
        yield from _iter_image_files([Path(target)], seen)
    elif kind == "imagefolder":
        yield from _iter_imagefolder(Path(target), seen)
    elif kind == "arrow":
        yield from _iter_arrow_dataset(target, batch_size=batch_size)
    elif kind == "parquet":
        yield from _iter_parquet(Path(target), batch_size=batch_size, fetch=fetch)
    elif kind == "parquet-folder":
        for path in _walk_files(Path(target)):
            if path.name.lower().endswith(".parquet"):
                yield from _iter_parquet(path, batch_size=batch_size, fetch=fetch)
    elif kind == "webdataset":
        yield from _iter_webdataset(Path(target))
    elif kind == "webdataset-folder":
        for path in _walk_files(Path(target)):
            if path.name.lower().endswith(_TAR_SUFFIXES):
                yield from _iter_webdataset(path)
    elif kind == "url-txt":
        yield from _fetch_in_order(_url_rows_txt(Path(target)), fetch)
    elif kind == "url-csv":
        yield from _fetch_in_order(_url_rows_csv(Path(target)), fetch)
    elif kind == "glob":
        yield from _iter_glob(plan.files, seen, batch_size=batch_size, fetch=fetch)
    else:  # pragma: no cover - _resolve only returns the kinds above
        raise AssertionError(f"unhandled source kind {kind!r}")


# --------------------------------------------------------------------------- local files


def _walk_files(root: Path) -> Iterator[Path]:
    """Files below ``root``, sorted, hidden files and folders skipped."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.startswith("."):
                yield Path(dirpath) / filename


def _first_visit(path: Path, seen: set[Path]) -> bool:
    resolved = path.resolve()
    if resolved in seen:
        return False
    seen.add(resolved)
    return True


def _category(path: Path, root: Path | None) -> dict[str, str]:
    if root is None:
        return {}
    relative = path.parent.relative_to(root).as_posix()
    return {} if relative == "." else {"category": relative}


def _file_item(path: Path, root: Path | None) -> SourceItem:
    """An image file with its sidecar caption and metadata."""
    caption, metadata = _read_sidecar(path)
    for key, value in _category(path, root).items():
        metadata.setdefault(key, value)
    return SourceItem(source=str(path), path=path, caption=caption, metadata=metadata)


def _iter_image_folder(root: Path, seen: set[Path]) -> Iterator[SourceItem]:
    """Image files below ``root`` (recursive, sorted), captions from sidecars."""
    for path in iter_image_files(root):
        if _first_visit(path, seen):
            yield _file_item(path, root)


def _iter_image_files(paths: Iterable[Path], seen: set[Path]) -> Iterator[SourceItem]:
    """Single image files, captions from sidecars."""
    for path in paths:
        if _first_visit(path, seen):
            yield _file_item(path, None)


def _iter_glob(
    matches: Iterable[Path], seen: set[Path], *, batch_size: int, fetch: FetchConfig
) -> Iterator[SourceItem]:
    """Glob matches: image files, Parquet files and tar shards (other files are skipped)."""
    for path in matches:
        if not path.is_file():
            continue
        name = path.name.lower()
        if is_image_file(path):
            yield from _iter_image_files([path], seen)
        elif name.endswith(".parquet"):
            yield from _iter_parquet(path, batch_size=batch_size, fetch=fetch)
        elif name.endswith(_TAR_SUFFIXES):
            yield from _iter_webdataset(path)


def _read_sidecar(path: Path) -> tuple[str | None, dict[str, Any]]:
    """Caption and extra fields from ``<stem>.txt`` or ``<stem>.json`` beside ``path``."""
    text_file = path.with_suffix(".txt")
    if text_file.is_file():
        return text_file.read_text(encoding="utf-8", errors="replace").strip(), {}
    json_file = path.with_suffix(".json")
    if not json_file.is_file():
        return None, {}
    try:
        record = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _LOG.warning("ignoring unreadable caption sidecar %s: %s", json_file, exc)
        return None, {}
    if not isinstance(record, dict):
        return None, {}
    caption = _pop_caption(record)
    return caption, _plain_metadata(record)


def _pop_caption(row: dict[str, Any]) -> str | None:
    """Remove and return the first caption column of ``row`` (``None`` when none or empty)."""
    for column in CAPTION_COLUMNS:
        if column in row:
            value = row.pop(column)
            if value is None or value == "":
                return None
            return value.strip() if isinstance(value, str) else str(value)
    return None


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


def _metadata_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
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


def _iter_imagefolder(root: Path, seen: set[Path]) -> Iterator[SourceItem]:
    """A Hugging Face imagefolder: rows of its metadata files, then images none of them lists.

    Captions and metadata come from the metadata files (``text`` column), not from sidecars.
    The set of listed files is kept to find unlisted images (one path per row).
    """
    listed: set[Path] = set()
    for meta_file in _metadata_files(root):
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
            if not _first_visit(path, seen):
                continue
            caption = _pop_caption(row)
            metadata = _plain_metadata(row)
            for key, value in _category(path, root).items():
                metadata.setdefault(key, value)
            yield SourceItem(source=str(path), path=path, caption=caption, metadata=metadata)
    for path in iter_image_files(root):
        if path.resolve() not in listed and _first_visit(path, seen):
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
    caption = _pop_caption(row)
    return SourceItem(
        source=source,
        path=path,
        caption=caption,
        metadata=_plain_metadata(row),
        error=error,
        data=data,
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


def _iter_parquet(path: Path, *, batch_size: int, fetch: FetchConfig) -> Iterator[SourceItem]:
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
        yield from _fetch_in_order(_url_rows_parquet(table, batch_size), fetch)
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


def _iter_arrow_dataset(root: str, *, batch_size: int) -> Iterator[SourceItem]:
    """Rows of a dataset saved with ``Dataset.save_to_disk`` (every split of a DatasetDict)."""
    import datasets

    loaded = datasets.load_from_disk(root)
    if isinstance(loaded, datasets.DatasetDict):
        splits = [(os.path.join(root, split), ds) for split, ds in loaded.items()]
    else:
        splits = [(root, loaded)]
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
    metadata: dict[str, Any] = {}
    if "json" in members:
        try:
            record = json.loads(members["json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            _LOG.warning("ignoring unreadable %s.json: %s", source, exc)
            record = None
        if isinstance(record, dict):
            caption = _pop_caption(record)
            metadata.update(_plain_metadata(record))
    if "txt" in members:
        caption = members["txt"].decode("utf-8", errors="replace").strip()
    for ext, blob in members.items():
        if ext not in ("txt", "json") and ext not in _WDS_IMAGE_EXTS:
            with contextlib.suppress(UnicodeDecodeError):
                metadata.setdefault(ext, blob.decode("utf-8").strip())
    if image_ext is None:
        found = ", ".join(f".{e}" for e in sorted(members)) or "none read"
        reason = f"no image member in sample (members: {found})"
        return SourceItem(source=source, caption=caption, metadata=metadata, error=reason)
    metadata["image_ext"] = image_ext
    return SourceItem(source, caption=caption, metadata=metadata, data=members[image_ext])


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
            caption = _pop_caption(row)
            yield _UrlRow(url, caption, row)


def _url_rows_parquet(table: Any, batch_size: int) -> Iterator[_UrlRow]:
    for batch in table.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            url = row.pop("url") or ""
            caption = _pop_caption(row)
            yield _UrlRow(str(url).strip(), caption, _plain_metadata(row))


def _fetch(row: _UrlRow, config: FetchConfig) -> SourceItem:
    """Download one URL with retries; failures become an item with ``error``, never raise."""
    url, caption, metadata = row

    def failed(reason: str) -> SourceItem:
        return SourceItem(source=url, caption=caption, metadata=metadata, error=reason)

    if not url:
        return failed("empty URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        path = Path(_file_url_path(url))
        if not path.is_file():
            return failed(f"file not found: {path}")
        return SourceItem(source=url, path=path, caption=caption, metadata=metadata)
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
