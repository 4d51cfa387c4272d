"""The results store: Parquet parts under ``RUN_DIR/results/``, written atomically.

Each flush writes a new part file under a temporary name and renames it, so a crash at any
moment leaves only whole parts. Reading concatenates the parts and keeps one row per key
(the last written), so a cell computed twice after a crash never counts twice.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas takes ~0.3 s to import: loaded by the functions that use it
    import pandas as pd


#: Columns that identify one result row.
KEY_COLUMNS = ("image_id", "degradation", "severity", "seed", "restorer", "config_hash")

RUN_FILE = "run.json"
RESULTS_DIR = "results"

_counter = itertools.count()


class ResultsStore:
    """Append-only Parquet store of rows for one run folder.

    Parameters
    ----------
    run_dir : path
        The run folder.
    key_columns : tuple of str
        Columns that identify a row; on reading, the last row written per key wins.
    subdir : str
        Folder under ``run_dir`` that holds the part files.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        key_columns: tuple[str, ...] = KEY_COLUMNS,
        subdir: str = RESULTS_DIR,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.parts_dir = self.run_dir / subdir
        self.key_columns = tuple(key_columns)

    def append(self, rows: list[dict]) -> Path | None:
        """Write ``rows`` as one new part file; returns its path (None when ``rows`` is empty)."""
        if not rows:
            return None
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        name = f"part-{stamp}-{os.getpid()}-{next(_counter):05d}.parquet"
        final = self.parts_dir / name
        tmp = self.parts_dir / f".{name}.tmp"
        import pandas as pd

        pd.DataFrame(rows).to_parquet(tmp, index=False)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        return final

    def part_files(self) -> list[Path]:
        """Finished part files, oldest first (temporary files ignored)."""
        if not self.parts_dir.is_dir():
            return []
        return sorted(self.parts_dir.glob("part-*.parquet"), key=lambda p: (p.stat().st_mtime, p))

    def remove_stale_temp(self, older_than_s: float = 3600.0) -> list[Path]:
        """Delete temporary part files left by killed writers; returns the removed paths.

        A temporary file is stale when its writer's process (the pid in its name) no longer
        runs on this machine, or when it is older than ``older_than_s`` (writers on other
        machines sharing the folder).
        """
        if not self.parts_dir.is_dir():
            return []
        removed = []
        now = time.time()
        for path in self.parts_dir.glob(".part-*.parquet.tmp"):
            pid = _pid_of(path.name)
            try:
                old = now - path.stat().st_mtime > older_than_s
                if old or (pid is not None and pid != os.getpid() and not _pid_alive(pid)):
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
        return removed

    def read_parts(self) -> pd.DataFrame:
        """Every row of every readable part, duplicates included (for audits)."""
        import pandas as pd

        frames = []
        for part in self.part_files():
            try:
                frames.append(pd.read_parquet(part))
            except Exception as exc:  # a damaged part: skip it, its cells are recomputed
                warnings.warn(f"skipping unreadable result part {part}: {exc}", stacklevel=2)
        if not frames:
            return pd.DataFrame(columns=list(self.key_columns))
        return pd.concat(frames, ignore_index=True)

    def load(self) -> pd.DataFrame:
        """All rows, one per key (the most recently written wins)."""
        import pandas as pd

        keys = list(self.key_columns)
        frame = self.read_parts()
        if frame.empty:
            return pd.DataFrame(columns=keys)
        frame = frame.drop_duplicates(subset=keys, keep="last")
        return frame.reset_index(drop=True)

    def completed_keys(self) -> set[tuple]:
        """Keys of the rows already stored."""
        frame = self.load()
        if frame.empty:
            return set()
        return set(frame[list(self.key_columns)].itertuples(index=False, name=None))


def _pid_of(name: str) -> int | None:
    """The writer's pid in ``.part-<stamp>-<pid>-<n>.parquet.tmp`` (None if malformed)."""
    fields = name.split("-")
    try:
        return int(fields[2])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_results(run_dir: str | os.PathLike) -> pd.DataFrame:
    """All result rows of a run folder (see :class:`ResultsStore`)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    return ResultsStore(run_dir).load()


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as indented JSON via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive POSIX lock on ``path`` (created if needed) for the ``with`` block.

    ``fcntl.lockf`` locks, which NFS also honours (through its lock manager), so ranks on
    several machines sharing a run folder serialise too. Where ``fcntl`` does not exist
    (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def update_json_locked(path: str | os.PathLike, update: Callable[[dict], dict]) -> dict:
    """Read-modify-write a JSON file under :func:`file_lock`: ``data = update(old or {})``.

    Concurrent writers (the ranks of one run) each see the others' changes: none is lost, as
    it would be with a plain read, modify and atomic replace in each process.
    """
    path = Path(path)
    with file_lock(path.with_name(f".{path.name}.lock")):
        old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        data = update(old)
        write_json_atomic(path, data)
    return data


def read_run_info(run_dir: str | os.PathLike) -> dict:
    """The run's ``run.json`` (an empty dict when there is none)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
