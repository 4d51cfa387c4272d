"""The curation cache: per-image analysis results keyed by the file's content hash.

An SQLite file holds, for every image ever analysed, its signals, decoded-pixel hash,
fingerprint, embedding and face count (or the decode error), so a re-run — or a run killed
half-way — skips every image already analysed. Images that came from memory (Parquet, tar,
URLs) are also kept as content-addressed blobs beside the database, for export.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when the analysis changes in a way that makes old entries wrong.
ANALYSIS_VERSION = 3  # 3: provenance (luma table, tone comb); 2: XXH3-128 pixel hashes


def _ordered_keys(a: np.ndarray, b: np.ndarray) -> list[tuple[bytes, bytes]]:
    """The rows of ``a`` and ``b`` as byte strings, the smaller first in each pair."""
    pairs = []
    for key_a, key_b in zip(
        np.ascontiguousarray(a, np.uint8), np.ascontiguousarray(b, np.uint8), strict=True
    ):
        x, y = key_a.tobytes(), key_b.tobytes()
        pairs.append((x, y) if x <= y else (y, x))
    return pairs


class AnalysisCache:
    """SQLite store ``folder/analysis.sqlite`` + blobs ``folder/blobs/<sha[:2]>/<sha>``."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.blob_dir = self.folder / "blobs"
        self._db = sqlite3.connect(self.folder / "analysis.sqlite")
        # Write-ahead log, synced at checkpoints: a commit survives the process being killed
        # at any moment (not a power cut between checkpoints) and costs ~0.1 ms instead of
        # the ~1.4 ms of the default rollback journal's fsyncs.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS analysis (sha TEXT PRIMARY KEY, version INTEGER, "
            "record BLOB)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pairs (key TEXT PRIMARY KEY, version INTEGER, value BLOB)"
        )
        # near-duplicate alignment scores by the two fingerprints' 16-byte keys (a < b)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pair_scores (a BLOB, b BLOB, version INTEGER, "
            "similarity REAL, overlap REAL, PRIMARY KEY (a, b)) WITHOUT ROWID"
        )
        self._db.commit()

    def get(self, sha: str) -> dict | None:
        """The cached analysis of content ``sha`` (None when absent or stale)."""
        row = self._db.execute(
            "SELECT version, record FROM analysis WHERE sha = ?", (sha,)
        ).fetchone()
        if row is None or row[0] != ANALYSIS_VERSION:
            return None
        return pickle.loads(row[1])

    def put(self, sha: str, record: dict[str, Any]) -> None:
        """Store the analysis of content ``sha`` (committed at once: a kill loses nothing)."""
        self._db.execute(
            "INSERT OR REPLACE INTO analysis VALUES (?, ?, ?)",
            (sha, ANALYSIS_VERSION, pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)),
        )
        self._db.commit()

    def get_pair(self, key: str) -> tuple[bool, Any]:
        """(found, value) of a cached pairwise measure (e.g. a JPEG trace of two files)."""
        row = self._db.execute("SELECT version, value FROM pairs WHERE key = ?", (key,)).fetchone()
        if row is None or row[0] != ANALYSIS_VERSION:
            return False, None
        return True, pickle.loads(row[1])

    def put_pair(self, key: str, value: Any) -> None:
        """Store a pairwise measure under ``key``."""
        self._db.execute(
            "INSERT OR REPLACE INTO pairs VALUES (?, ?, ?)",
            (key, ANALYSIS_VERSION, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)),
        )
        self._db.commit()

    def pair_scores(
        self, a: np.ndarray, b: np.ndarray, version: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, similarity, overlap) kept for the fingerprint pairs (a[k], b[k]) — ``(k,
        16)`` ``uint8`` keys, in either order — with scorer ``version``; NaN where not found
        (see :class:`restorelab.curation.dedup.ScoreMemo`)."""
        pairs = _ordered_keys(a, b)
        found = np.zeros(len(pairs), bool)
        sims = np.full(len(pairs), np.nan)
        overlaps = np.full(len(pairs), np.nan)
        if not pairs:
            return found, sims, overlaps
        # a join with a temporary table of the wanted pairs uses the primary key (3 µs a
        # pair); ``(a, b) IN (VALUES ...)`` scanned the whole table
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_pairs (k INTEGER, a BLOB, b BLOB)")
        self._db.execute("DELETE FROM wanted_pairs")
        self._db.executemany(
            "INSERT INTO wanted_pairs VALUES (?, ?, ?)",
            [(k, key_a, key_b) for k, (key_a, key_b) in enumerate(pairs)],
        )
        rows = self._db.execute(
            "SELECT w.k, s.similarity, s.overlap FROM wanted_pairs AS w JOIN pair_scores AS s "
            "ON s.a = w.a AND s.b = w.b WHERE s.version = ?",
            (version,),
        ).fetchall()
        self._db.commit()  # the temporary table's transaction
        if rows:
            index, similarity, overlap = (np.array(column) for column in zip(*rows, strict=True))
            found[index], sims[index], overlaps[index] = True, similarity, overlap
        return found, sims, overlaps

    def put_pair_scores(
        self, a: np.ndarray, b: np.ndarray, sims: np.ndarray, overlaps: np.ndarray, version: int
    ) -> None:
        """Keep the alignment scores of the fingerprint pairs (a[k], b[k])."""
        rows = [
            (key_a, key_b, version, float(similarity), float(overlap))
            for (key_a, key_b), similarity, overlap in zip(
                _ordered_keys(a, b), sims.tolist(), overlaps.tolist(), strict=True
            )
        ]
        self._db.executemany("INSERT OR REPLACE INTO pair_scores VALUES (?, ?, ?, ?, ?)", rows)
        self._db.commit()

    def export_path(self, pixel_hash: str) -> Path:
        """Where the exported PNG of pixels ``pixel_hash`` is (or would be) kept."""
        return self.folder / "exports" / pixel_hash[:2] / f"{pixel_hash}.png"

    def blob_path(self, sha: str) -> Path:
        """Where the bytes of content ``sha`` are (or would be) kept."""
        return self.blob_dir / sha[:2] / sha

    def put_blob(self, sha: str, data: bytes) -> Path:
        """Keep ``data`` (content ``sha``) on disk; written once, atomically."""
        path = self.blob_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{sha}.tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return path

    def merge_from(self, folder: str | os.PathLike) -> int:
        """Add the entries of another cache folder (a shard's) that this one lacks: analyses,
        pairwise measures, alignment scores, blobs and exported PNGs. Returns the analyses
        added."""
        import shutil

        other = Path(folder)
        database = other / "analysis.sqlite"
        if not database.is_file():
            raise FileNotFoundError(f"{other} is not a curation cache (no analysis.sqlite)")
        before = len(self)
        self._db.execute("ATTACH DATABASE ? AS other", (os.fspath(database),))
        try:
            for table in ("analysis", "pairs"):
                self._db.execute(
                    f"INSERT OR IGNORE INTO {table} SELECT * FROM other.{table} WHERE version = ?",
                    (ANALYSIS_VERSION,),
                )
            tables = {row[0] for row in self._db.execute("SELECT name FROM other.sqlite_master")}
            if "pair_scores" in tables:  # keyed by fingerprints: valid across analysis versions
                self._db.execute(
                    "INSERT OR IGNORE INTO pair_scores SELECT * FROM other.pair_scores"
                )
            self._db.commit()
        finally:
            self._db.execute("DETACH DATABASE other")
        for sub in ("blobs", "exports"):
            for path in sorted((other / sub).rglob("*")):
                target = self.folder / sub / path.relative_to(other / sub)
                if path.is_file() and not path.name.startswith(".") and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
                    shutil.copyfile(path, tmp)
                    os.replace(tmp, target)
        return len(self) - before

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM analysis").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()
