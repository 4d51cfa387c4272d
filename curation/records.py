"""Where a curation run keeps what it knows of every input, in memory that does not grow
with the pool.

A run over 100,000 images cannot hold a Python record per input (a dataclass with its
strings, metadata dict and signals dict is 2–3 KB) nor the 64×64 thumbnails and 272-d
embeddings (about 9.5 KB an image in all). So:

- :class:`RecordStore` keeps each input's record — source, path, caption, metadata, the
  analysis without its fingerprint — pickled in an SQLite file of the run's work folder,
  read back by index for the few images a stage needs (a duplicate group, the selection
  pool, the kept images) and streamed in index order for ``rejected.csv``. Rejection
  reasons are a column of their own, updated without rewriting the record.
- :class:`Columns` holds the few numbers every stage scans, per input, as NumPy arrays
  (about 60 bytes an image): alive or rejected, fails a filter, decoded-pixel hash, quality
  score, category code, selection rank, cache hit.
- Thumbnails go to :class:`restorelab.curation.dedup.ThumbnailStore`.
- The sets a run fills once per input (files visited, inputs met, files analysed) are
  :class:`DigestSet` s of fixed-size digests in NumPy arrays, not Python sets, whose one
  small object per input pinned the interpreter's small-object arenas.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Records read or written per SQL statement.
_BATCH = 500
#: The arrays of :class:`Columns` and their types.
_FIELDS = (
    ("alive", np.bool_),
    ("fails", np.bool_),
    ("pixel_hash", "S32"),
    ("quality", np.float64),
    ("category", np.int32),
    ("rank", np.int32),
    ("cache_hit", np.bool_),
)


class RecordStore:
    """Records by index in ``path`` (an SQLite file, created empty; no journal, no sync:
    it lives only as long as the run)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-4096")  # 4 MB of pages
        self._db.execute("CREATE TABLE records (idx INTEGER PRIMARY KEY, record BLOB, reason TEXT)")
        self._pending: list[tuple[int, bytes, str | None]] = []

    def add(self, record: Any) -> None:
        """Store a new record (``record.index`` is its key, ``record.reason`` its reason)."""
        self._pending.append(
            (record.index, pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL), record.reason)
        )
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Write the records added since the last flush."""
        if self._pending:
            self._db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", self._pending)
            self._db.commit()
            self._pending = []

    def put(self, records: Iterable[Any]) -> None:
        """Replace stored records (their captions, metadata, reasons changed)."""
        for record in records:
            self.add(record)
        self.flush()

    def set_reasons(self, items: Iterable[tuple[int, str | None]]) -> None:
        """Set the rejection reason of records by index."""
        self.flush()
        batch: list[tuple[str | None, int]] = []
        for index, reason in items:
            batch.append((reason, int(index)))
            if len(batch) >= _BATCH:
                self._db.executemany("UPDATE records SET reason = ? WHERE idx = ?", batch)
                batch = []
        if batch:
            self._db.executemany("UPDATE records SET reason = ? WHERE idx = ?", batch)
        self._db.commit()

    def get(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        """The records ``indices``, in that order."""
        self.flush()
        wanted = [int(i) for i in np.asarray(indices, np.int64).ravel()]
        found: dict[int, Any] = {}
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT idx, record, reason FROM records WHERE idx IN ({marks})", chunk
            )
            for index, blob, reason in rows:
                found[index] = self._load(blob, reason)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise KeyError(f"no record for inputs {missing[:5]}")
        return [found[i] for i in wanted]

    def iter(self, indices: np.ndarray | None = None) -> Iterator[Any]:
        """The records ``indices`` (ascending), or all, in index order, a batch at a time."""
        self.flush()
        if indices is None:
            rows = self._db.execute("SELECT idx, record, reason FROM records ORDER BY idx")
            for _, blob, reason in rows:
                yield self._load(blob, reason)
            return
        indices = np.asarray(indices, np.int64).ravel()
        for start in range(0, len(indices), _BATCH):
            yield from self.get(indices[start : start + _BATCH])

    @staticmethod
    def _load(blob: bytes, reason: str | None) -> Any:
        record = pickle.loads(blob)
        record.reason = reason
        return record

    def close(self, *, delete: bool = True) -> None:
        """Close the database (and delete its file)."""
        self._db.close()
        if delete:
            self.path.unlink(missing_ok=True)


class Columns:
    """Per-input arrays, appended one input at a time (capacity doubles as needed).

    ``alive`` (not rejected yet), ``fails`` (a filter rejects it), ``pixel_hash`` (32 hex
    digits as bytes; empty when undecodable), ``quality`` (quality score, NaN when not
    computed), ``category`` (code into :attr:`category_names`, −1 for none), ``rank``
    (selection rank, 0 for none), ``cache_hit``.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._arrays = {k: np.zeros(capacity, dtype) for k, dtype in _FIELDS}
        self._arrays["quality"][:] = np.nan
        self._arrays["category"][:] = -1
        self.size = 0
        self.category_names: list[str] = []
        self._codes: dict[str, int] = {}

    def __len__(self) -> int:
        return self.size

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("_arrays")
        if arrays is not None and name in arrays:
            return arrays[name][: self.size]
        raise AttributeError(name)

    def append(
        self,
        *,
        alive: bool,
        fails: bool,
        pixel_hash: str,
        quality: float | None,
        category: str | None,
        cache_hit: bool,
    ) -> int:
        """Add the next input; returns its index."""
        if self.size == len(self._arrays["alive"]):
            for key, array in self._arrays.items():
                grown = np.zeros(2 * len(array), array.dtype)
                if key == "quality":
                    grown[:] = np.nan
                elif key == "category":
                    grown[:] = -1
                grown[: len(array)] = array
                self._arrays[key] = grown
        k = self.size
        arrays = self._arrays
        arrays["alive"][k] = alive
        arrays["fails"][k] = fails
        arrays["pixel_hash"][k] = pixel_hash.encode("ascii")
        arrays["quality"][k] = np.nan if quality is None else quality
        if category is not None:
            code = self._codes.get(category)
            if code is None:
                code = self._codes[category] = len(self.category_names)
                self.category_names.append(category)
            arrays["category"][k] = code
        arrays["cache_hit"][k] = cache_hit
        self.size += 1
        return k

    def category_of(self, index: int) -> str | None:
        code = int(self.category[index])
        return None if code < 0 else self.category_names[code]


class DigestSet:
    """A set of fixed-size byte strings (digests, ``size`` bytes each) held in NumPy arrays.

    For the sets a run adds to once per input (the files visited, the sources met, the
    files analysed): a Python ``set`` of ``bytes`` or ``int`` keeps one small object per
    input alive for the whole run, and those survivors, spread among the image's
    temporaries, pin Python's small-object arenas, so that memory grew by about 1.4 KB an
    input where the keys need 16 bytes. Here the keys live in a few sorted arrays (runs)
    plus a small unsorted buffer: ``size`` bytes a key. A full buffer becomes a run, merged
    with the runs before it while they are under :data:`_GROWTH` times its size, so each
    run is at least that many times larger than the next: about log(n / buffer) runs, and
    each key is merged that many times (O(n log n) in all, where one sorted array would be
    re-sorted per buffer, O(n²)); a lookup searches each run.
    """

    _GROWTH = 4

    def __init__(self, size: int = 16, buffer: int = 1024) -> None:
        self.size = size
        self._dtype = np.dtype(f"S{size}")
        self._runs: list[np.ndarray] = []
        self._buffer = np.empty(buffer, self._dtype)
        self._buffered = 0
        self._count = 0

    def _key(self, key: bytes) -> np.ndarray:
        """``key`` as a 0-d array: NumPy compares ``S`` arrays with their trailing NUL
        bytes dropped, and every key has ``size`` bytes, so two compare equal exactly when
        the keys are equal."""
        if len(key) != self.size:
            raise ValueError(f"a key of this set has {self.size} bytes, not {len(key)}")
        return np.array(key, self._dtype)

    def _has(self, probe: np.ndarray) -> bool:
        if self._buffered and (self._buffer[: self._buffered] == probe).any():
            return True
        for run in self._runs:
            at = int(np.searchsorted(run, probe))
            if (run[at : at + 1] == probe).any():
                return True
        return False

    def __contains__(self, key: bytes) -> bool:
        return self._has(self._key(key))

    def add(self, key: bytes) -> bool:
        """Add ``key``; True when it was not in the set (one lookup for both)."""
        probe = self._key(key)
        if self._has(probe):
            return False
        self._buffer[self._buffered] = probe
        self._buffered += 1
        self._count += 1
        if self._buffered == len(self._buffer):
            run = np.sort(self._buffer)
            while self._runs and len(self._runs[-1]) < self._GROWTH * len(run):
                run = np.concatenate([self._runs.pop(), run])
                run.sort(kind="stable")
            self._runs.append(run)
            self._buffered = 0
        return True

    def __len__(self) -> int:
        return self._count
