"""The results store: Parquet parts under ``RUN_DIR/results/``, written atomically.

Each flush writes a new part file under a temporary name and renames it, so a crash at any
moment leaves only whole parts. Reading concatenates the parts and keeps one row per key
(the last written), so a cell computed twice after a crash never counts twice.

Every part is written with one declared Arrow schema (:class:`PartSchema`: key columns,
provenance columns, and one ``float64`` column per metric label and per prefix such as
``input_``), tagged in the file's metadata with the schema's format name and the metric
labels. Reading checks each part against that declaration: a part that cannot be read
(damaged) or does not follow it (foreign) is reported by name (:class:`DamagedPartsError`),
or skipped with a warning when the caller asks for that.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas takes ~0.3 s to import: loaded by the functions that use it
    import pandas as pd
    import pyarrow as pa


#: Columns that identify one result row.
KEY_COLUMNS = ("image_id", "degradation", "severity", "seed", "restorer", "config_hash")

RUN_FILE = "run.json"
RESULTS_DIR = "results"
#: Metadata keys of a part file.
FORMAT_KEY = b"restorelab.format"
METRICS_KEY = b"restorelab.metrics"

_counter = itertools.count()


@dataclass(frozen=True)
class PartSchema:
    """The declared columns of a store's part files.

    Parameters
    ----------
    format : str
        Name and version written into every part (``restorelab-results/2``); a part with
        another (or none) is foreign.
    key_columns : tuple of str
        Columns that identify a row.
    columns : tuple of (name, type)
        Every fixed column with its Arrow type name (``string``, ``int64``, ``float64``).
    metric_prefixes : tuple of str
        For each metric label ``m`` and prefix ``p`` a ``float64`` column ``p + m``
        (``("", "input_")``: the restoration's and the degraded input's scores).
    """

    format: str
    key_columns: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    metric_prefixes: tuple[str, ...] = ()

    def arrow(self, metrics: Sequence[str] = ()) -> pa.Schema:
        """The Arrow schema of a part scored with ``metrics``, tagged in its metadata."""
        import pyarrow as pa

        fields = [pa.field(name, pa.type_for_alias(kind)) for name, kind in self.columns]
        fields += [
            pa.field(prefix + label, pa.float64())
            for prefix in self.metric_prefixes
            for label in metrics
        ]
        metadata = {FORMAT_KEY: self.format.encode(), METRICS_KEY: json.dumps(list(metrics))}
        return pa.schema(fields, metadata=metadata)

    def problems(self, schema: pa.Schema) -> list[str]:
        """Why ``schema`` (a part's) does not follow this declaration (empty when it does)."""
        meta = schema.metadata or {}
        found = meta.get(FORMAT_KEY, b"").decode(errors="replace")
        if not found:
            return [
                f"no {self.format!r} tag: written by an older restorelab or another tool "
                "(re-run the bench command into a new --out)"
            ]
        if found != self.format:
            return [f"format {found!r}, expected {self.format!r}"]
        try:
            metrics = json.loads(meta.get(METRICS_KEY, b"[]"))
        except json.JSONDecodeError:
            return ["unreadable metric list in its metadata"]
        expected = self.arrow(metrics)
        out = []
        for field in expected:
            index = schema.get_field_index(field.name)
            if index < 0:
                out.append(f"column {field.name!r} missing")
            elif schema.field(index).type != field.type:
                out.append(
                    f"column {field.name!r} is {schema.field(index).type}, expected {field.type}"
                )
        extra = sorted(set(schema.names) - set(expected.names))
        if extra:
            out.append(f"undeclared column(s) {extra}")
        return out


#: The benchmark's result rows (see :mod:`restorelab.benchmark.runner` for their meaning).
RESULTS_SCHEMA = PartSchema(
    format="restorelab-results/2",
    key_columns=KEY_COLUMNS,
    columns=(
        ("image_id", "string"),
        ("degradation", "string"),
        ("severity", "int64"),
        ("seed", "int64"),
        ("restorer", "string"),
        ("config_hash", "string"),
        ("restorer_config", "string"),
        ("device", "string"),
        ("image_hash", "string"),
        ("degradation_params", "string"),
        ("height", "int64"),
        ("width", "int64"),
        ("seconds", "float64"),
        ("peak_rss_mb", "float64"),
        ("peak_rss_delta_mb", "float64"),
        ("cuda_peak_mb", "float64"),
        ("restored_file", "string"),
        ("thumb_file", "string"),
        ("degraded_file", "string"),
        ("degraded_thumb_file", "string"),
        ("metric_labels", "string"),
        ("error", "string"),
    ),
    metric_prefixes=("", "input_"),
)


@dataclass(frozen=True)
class PartProblem:
    """A part file that was not used: ``kind`` is ``"damaged"`` or ``"foreign"``."""

    path: Path
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path.name} ({self.kind}: {self.reason})"


class DamagedPartsError(ValueError):
    """Some result parts of a run cannot be read or do not follow the declared schema."""

    def __init__(self, parts_dir: Path, problems: Sequence[PartProblem]) -> None:
        self.problems = list(problems)
        names = "; ".join(str(p) for p in self.problems)
        super().__init__(
            f"{len(self.problems)} result part(s) in {parts_dir} cannot be used: {names}. "
            "Move them away (a re-run of the same bench command recomputes their cells), "
            "or pass --skip-damaged to use the other parts."
        )


class ResultsStore:
    """Append-only Parquet store of rows for one run folder.

    Parameters
    ----------
    run_dir : path
        The run folder.
    schema : PartSchema
        The declared columns of the parts (default: benchmark results).
    subdir : str
        Folder under ``run_dir`` that holds the part files.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        schema: PartSchema = RESULTS_SCHEMA,
        subdir: str = RESULTS_DIR,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.parts_dir = self.run_dir / subdir
        self.schema = schema
        self.key_columns = tuple(schema.key_columns)

    def append(self, rows: list[dict], metrics: Sequence[str] | None = None) -> Path | None:
        """Write ``rows`` as one new part file; returns its path (None when ``rows`` is empty).

        ``metrics`` are the metric labels of the rows (one column per label and prefix; None:
        every key with an ``input_`` twin); a column a row lacks is written as null. A row
        value of the wrong type raises.
        """
        if not rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        if metrics is None:  # every column with an ``input_`` twin (first-seen order)
            fixed = {name for name, _ in self.schema.columns}
            seen = dict.fromkeys(k for row in rows for k in row)
            metrics = [
                k
                for k in seen
                if k not in fixed and f"input_{k}" in seen and self.schema.metric_prefixes
            ]
        table = pa.Table.from_pylist(rows, schema=self.schema.arrow(metrics))
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        name = f"part-{stamp}-{os.getpid()}-{next(_counter):05d}.parquet"
        final = self.parts_dir / name
        tmp = self.parts_dir / f".{name}.tmp"
        pq.write_table(table, tmp)
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

    def scan(self) -> tuple[pd.DataFrame, list[PartProblem]]:
        """Every row of every usable part (duplicates included) and the parts not used."""
        import pandas as pd
        import pyarrow.parquet as pq

        frames, problems = [], []
        for part in self.part_files():
            try:
                schema = pq.read_schema(part)
            except Exception as exc:  # truncated, not Parquet, unreadable
                problems.append(PartProblem(part, "damaged", f"{type(exc).__name__}: {exc}"))
                continue
            wrong = self.schema.problems(schema)
            if wrong:
                problems.append(PartProblem(part, "foreign", "; ".join(wrong)))
                continue
            try:
                frames.append(pq.read_table(part).to_pandas())
            except Exception as exc:  # a damaged page behind an intact footer
                problems.append(PartProblem(part, "damaged", f"{type(exc).__name__}: {exc}"))
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=list(self.key_columns)), problems
        return pd.concat(frames, ignore_index=True), problems

    def read_parts(self, *, skip_damaged: bool = False) -> pd.DataFrame:
        """Every row of every part, duplicates included (for audits).

        Raises :class:`DamagedPartsError` naming each damaged or foreign part, unless
        ``skip_damaged`` (then they are left out with one warning naming them).
        """
        frame, problems = self.scan()
        if problems:
            if not skip_damaged:
                raise DamagedPartsError(self.parts_dir, problems)
            names = "; ".join(str(p) for p in problems)
            warnings.warn(
                f"left out {len(problems)} result part(s) in {self.parts_dir}: {names}",
                stacklevel=2,
            )
        return frame

    def load(self, *, skip_damaged: bool = False) -> pd.DataFrame:
        """All rows, one per key (the most recently written wins); see :meth:`read_parts`."""
        return self.latest(self.read_parts(skip_damaged=skip_damaged))

    def latest(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (rows of :meth:`scan`) with one row per key, the last written."""
        import pandas as pd

        keys = list(self.key_columns)
        if frame.empty:
            return pd.DataFrame(columns=keys)
        return frame.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)

    def completed_keys(self, *, skip_damaged: bool = True) -> set[tuple]:
        """Keys of the rows already stored (damaged parts skipped: their cells count as new)."""
        frame = self.load(skip_damaged=skip_damaged)
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


def load_results(run_dir: str | os.PathLike, *, skip_damaged: bool = False) -> pd.DataFrame:
    """All result rows of a run folder, one per key (see :class:`ResultsStore`).

    Raises :class:`DamagedPartsError` (a ``ValueError``) naming every part that cannot be read
    or does not follow :data:`RESULTS_SCHEMA`, with their count, unless ``skip_damaged``
    (then those parts are left out with a warning).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    return ResultsStore(run_dir).load(skip_damaged=skip_damaged)


def check_results(run_dir: str | os.PathLike) -> list[PartProblem]:
    """The damaged or foreign parts of a run folder (empty when every part is usable)."""
    return ResultsStore(run_dir).scan()[1]


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
