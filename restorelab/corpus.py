"""A corpus is a folder of clean images: a curated Hugging Face imagefolder or any image folder.

A curated folder has ``metadata.jsonl`` (rows with ``file_name`` and ``text``); a plain folder
is scanned recursively. Each image gets a stable ``image_id`` used as a key in result tables,
and a content hash (:func:`content_hash`) so that a run can tell another image under the same
id from the one it scored (:class:`CorpusFingerprint`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from restorelab.imageio import iter_image_files

METADATA_FILE = "metadata.jsonl"
#: Hex digits kept of a file's SHA-256 (64 bits: collisions are not a practical concern).
HASH_DIGITS = 16


@dataclass(frozen=True)
class CorpusItem:
    """One clean image of a corpus."""

    image_id: str
    path: Path
    caption: str = ""


def load_corpus(folder: str | os.PathLike) -> list[CorpusItem]:
    """List the images of a curated or plain folder, sorted by ``image_id``.

    The ``image_id`` is the file name without its ending. Only where two files share that
    name (in different sub-folders) do those files take their path relative to the folder
    without its ending instead (``a/x``, ``b/x``); every other id stays the bare name, so
    adding one colliding file does not rename the rest of the corpus.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {folder}")
    metadata = folder / METADATA_FILE
    items: list[CorpusItem] = []
    if metadata.is_file():
        for line_no, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                file_name = row["file_name"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{metadata}:{line_no}: bad metadata row ({exc})") from exc
            path = folder / file_name
            image_id = Path(file_name).with_suffix("").as_posix()
            items.append(CorpusItem(image_id, path, str(row.get("text") or "")))
    else:
        for path in iter_image_files(folder):
            image_id = path.relative_to(folder).with_suffix("").as_posix()
            items.append(CorpusItem(image_id, path))
    stem_counts = Counter(Path(item.image_id).name for item in items)
    items = [
        replace(item, image_id=Path(item.image_id).name)
        if stem_counts[Path(item.image_id).name] == 1
        else item
        for item in items
    ]
    ids = [item.image_id for item in items]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{folder}: image ids are not unique (same name, other ending?): {dupes}")
    if not items:
        hint = " (did curation reject every image? see rejected.csv)" if metadata.is_file() else ""
        raise ValueError(f"{folder}: no images found{hint}")
    return sorted(items, key=lambda item: item.image_id)


def content_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, first :data:`HASH_DIGITS` hex digits.

    An unreadable file hashes to ``"unreadable:<ErrorName>"`` so that a corpus with a
    broken file can still be fingerprinted (the run records the read error per cell).
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except OSError as exc:
        return f"unreadable:{type(exc).__name__}"
    return digest.hexdigest()[:HASH_DIGITS]


def _stat_key(path: str | os.PathLike) -> str | None:
    """``"<resolved path>|<size>|<mtime ns>|<inode>"`` (None when the file cannot be stat'ed)."""
    try:
        resolved = Path(path).resolve()
        st = resolved.stat()
    except OSError:
        return None
    return f"{resolved}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


@dataclass(frozen=True)
class CorpusFingerprint:
    """What a corpus *is* for a run: every ``image_id`` with the hash of its file's bytes.

    The folder's location is not part of it (a moved corpus is the same corpus); another
    file under a known id is a different corpus. ``images`` is sorted by id.
    """

    images: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls, items: Iterable[CorpusItem], cache: str | os.PathLike | None = None
    ) -> CorpusFingerprint:
        """Hash every item's file (reads each file once).

        ``cache``: a JSON file of earlier hashes keyed by the file's resolved path, size,
        modification time (ns) and inode, as git's index does; a file whose stat is unchanged
        is not read again. Updated under a lock (the ranks of a sharded run share it).
        """
        items = list(items)
        if cache is None:
            return cls.from_mapping({item.image_id: content_hash(item.path) for item in items})
        from restorelab.results import update_json_locked

        stats = {item.image_id: _stat_key(item.path) for item in items}
        path = Path(cache)
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        hashes, fresh = {}, {}
        for item in items:
            key = stats[item.image_id]
            if key is not None and key in known:
                hashes[item.image_id] = known[key]
            else:
                hashes[item.image_id] = content_hash(item.path)
                if key is not None and not hashes[item.image_id].startswith("unreadable"):
                    fresh[key] = hashes[item.image_id]
        if fresh:
            update_json_locked(path, lambda old: {**old, **fresh})
        return cls.from_mapping(hashes)

    @classmethod
    def from_mapping(cls, hashes: Mapping[str, str]) -> CorpusFingerprint:
        return cls(tuple(sorted((str(k), str(v)) for k, v in hashes.items())))

    def as_dict(self) -> dict[str, str]:
        """``{image_id: hash}``."""
        return dict(self.images)

    def to_dict(self) -> dict:
        return {"images": self.as_dict()}

    @classmethod
    def from_dict(cls, data: Mapping) -> CorpusFingerprint:
        return cls.from_mapping(data.get("images", {}))

    def conflicts(self, new: CorpusFingerprint) -> list[str]:
        """One line per id whose content differs between ``self`` (stored) and ``new``."""
        old, now = self.as_dict(), new.as_dict()
        changed = sorted(i for i in old.keys() & now.keys() if old[i] != now[i])
        if not changed:
            return []
        shown = ", ".join(f"{i} ({old[i]} → {now[i]})" for i in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        return [
            f"corpus: {len(changed)} image id(s) now hold other content: {shown}{more} "
            "(content hash in the run → now)"
        ]

    def added(self, new: CorpusFingerprint) -> list[str]:
        """Ids of ``new`` that ``self`` does not know."""
        return sorted(new.as_dict().keys() - self.as_dict().keys())

    def merged(self, new: CorpusFingerprint) -> CorpusFingerprint:
        """The union (call after :meth:`conflicts` found none)."""
        return CorpusFingerprint.from_mapping({**self.as_dict(), **new.as_dict()})
