"""The benchmark runner: sweep restorers over a corpus × degradation grid and score each cell.

One *cell* is (image, degradation, severity, seed). For each cell the runner degrades the clean
image once, scores the degraded input against the clean image (the ``input_<metric>``
columns, so every row shows the gain), then runs and scores every restorer. Rows go to the
run's :class:`~restorelab.results.ResultsStore` in atomic parts; a re-run of the same command
skips every (cell, restorer config) already stored, so an interrupted sweep resumes.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from restorelab.benchmark.metrics import create_metric
from restorelab.benchmark.restorers import Restorer, create_restorer
from restorelab.config import Grid
from restorelab.corpus import CorpusItem, load_corpus
from restorelab.degradations import degrade_with_params
from restorelab.environment import hardware_info, package_versions
from restorelab.imageio import read_image
from restorelab.results import RUN_FILE, ResultsStore, read_run_info, write_json_atomic

DEFAULT_METRICS = ("psnr", "ssim")


@dataclass(frozen=True)
class Task:
    """One cell and the restorers (by index into the run's list) still to compute for it."""

    item: CorpusItem
    degradation: str
    severity: int
    seed: int
    restorer_indices: tuple[int, ...]
    levels: tuple | None = None


@dataclass
class BenchmarkSummary:
    """What a call of :func:`run_benchmark` did."""

    run_dir: Path
    cells_total: int
    rows_written: int
    rows_skipped: int
    errors: list[str] = field(default_factory=list)


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 ≤ I < N; None → (0, 1)."""
    if shard is None:
        return 0, 1
    if isinstance(shard, tuple):
        index, count = shard
    else:
        try:
            left, right = str(shard).split("/")
            index, count = int(left), int(right)
        except ValueError:
            raise ValueError(f"shard must look like I/N (e.g. 0/4), got {shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N")
    return index, count


# --- worker side -------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(restorer_specs: list[tuple[str, dict]], metric_names: Sequence[str]) -> None:
    _WORKER["restorers"] = [create_restorer(name, **opts) for name, opts in restorer_specs]
    _WORKER["metrics"] = {name: create_metric(name) for name in metric_names}


@functools.lru_cache(maxsize=2)
def _read_cached(path: str) -> np.ndarray:
    return read_image(path)


def _score(metrics: dict, clean: np.ndarray, image: np.ndarray, prefix: str = "") -> dict:
    return {f"{prefix}{name}": metric(clean, image) for name, metric in metrics.items()}


def _run_task(task: Task) -> list[dict]:
    """Compute the rows of one task (runs in a worker process or in-process)."""
    restorers: list[Restorer] = _WORKER["restorers"]
    metrics: dict = _WORKER["metrics"]
    base = {
        "image_id": task.item.image_id,
        "degradation": task.degradation,
        "severity": int(task.severity),
        "seed": int(task.seed),
    }
    nan_scores = {name: math.nan for name in metrics}
    try:
        clean = _read_cached(str(task.item.path))
        degraded = degrade_with_params(
            clean, task.degradation, task.severity, task.seed, levels=task.levels
        )
        input_scores = _score(metrics, clean, degraded.image, prefix="input_")
        degradation_params = json.dumps(degraded.params, default=str)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        return [
            {
                **base,
                **_restorer_columns(restorers[i]),
                **nan_scores,
                **{f"input_{k}": math.nan for k in metrics},
                "seconds": math.nan,
                "degradation_params": "",
                "height": 0,
                "width": 0,
                "error": error,
            }
            for i in task.restorer_indices
        ]
    rows = []
    for index in task.restorer_indices:
        restorer = restorers[index]
        row = {
            **base,
            **_restorer_columns(restorer),
            "degradation_params": degradation_params,
            "height": clean.shape[0],
            "width": clean.shape[1],
        }
        start = time.perf_counter()
        try:
            restored = restorer.restore(degraded.image)
            row["seconds"] = time.perf_counter() - start
            row.update(_score(metrics, clean, restored))
            row["error"] = ""
        except Exception as exc:
            row["seconds"] = time.perf_counter() - start
            row.update(nan_scores)
            row["error"] = f"{type(exc).__name__}: {exc}"
        row.update(input_scores)
        rows.append(row)
    return rows


def _restorer_columns(restorer: Restorer) -> dict:
    return {
        "restorer": restorer.label,
        "config_hash": restorer.config_hash,
        "restorer_config": json.dumps(restorer.config, sort_keys=True, default=str),
        "device": restorer.device,
    }


# --- driver side -------------------------------------------------------------------------
def _plan(
    items: list[CorpusItem], grid: Grid, restorers: list[Restorer], done: set[tuple]
) -> tuple[list[Task], int]:
    tasks, skipped = [], 0
    for item in items:
        for degradation, severity, seed in grid.cells():
            pending = []
            for index, restorer in enumerate(restorers):
                key = (
                    item.image_id,
                    degradation,
                    severity,
                    seed,
                    restorer.label,
                    restorer.config_hash,
                )
                if key in done:
                    skipped += 1
                else:
                    pending.append(index)
            if pending:
                levels = grid.levels_for(degradation)
                tasks.append(
                    Task(item, degradation, severity, seed, tuple(pending),
                         tuple(levels) if levels is not None else None)
                )
    return tasks, skipped


def _write_run_info(
    run_dir: Path,
    corpus: Path,
    grid: Grid,
    restorers: list[Restorer],
    metric_names: Sequence[str],
    shard: tuple[int, int],
) -> None:
    info = read_run_info(run_dir)
    known = {r["config_hash"]: r for r in info.get("restorers", [])}
    for restorer in restorers:
        known[restorer.config_hash] = {
            "label": restorer.label,
            "config_hash": restorer.config_hash,
            "config": restorer.config,
        }
    info.update(
        {
            "format": "restorelab-run/1",
            "corpus": str(corpus.resolve()),
            "grid": grid.to_dict(),
            "restorers": list(known.values()),
            "metrics": {
                name: {
                    "convention": create_metric(name).convention,
                    "higher_is_better": create_metric(name).higher_is_better,
                }
                for name in metric_names
            },
            "packages": package_versions(),
            "hardware": hardware_info(),
        }
    )
    info.setdefault("invocations", []).append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "shard": f"{shard[0]}/{shard[1]}",
            "pid": os.getpid(),
        }
    )
    write_json_atomic(run_dir / RUN_FILE, info)


def run_benchmark(
    corpus: str | os.PathLike,
    grid: Grid,
    restorers: Sequence[str | Restorer],
    out: str | os.PathLike,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    workers: int = 1,
    shard: str | tuple[int, int] | None = None,
    flush_every: int = 64,
    progress: bool = True,
) -> BenchmarkSummary:
    """Sweep ``restorers`` over every image of ``corpus`` × every cell of ``grid``.

    Parameters
    ----------
    corpus : path
        A curated folder (``metadata.jsonl``) or a plain folder of clean images.
    grid : Grid
        Degradations × severities × seeds (see :func:`restorelab.config.load_grid`).
    restorers : list of str or Restorer
        Specs such as ``"nlm"`` or ``"tv:weight=0.1"``, or restorer objects.
    out : path
        The run folder; results are appended under ``out/results``.
    metrics : list of str
        Registered metric names scored on every row (and on the degraded input).
    workers : int
        Processes for CPU restorers (1 runs in this process).
    shard : "I/N", optional
        Only images whose index ``% N == I`` (split one sweep over N processes or machines).
    flush_every : int
        Rows buffered before a part file is written (an interruption loses at most these).
    """
    corpus = Path(corpus)
    run_dir = Path(out)
    shard_index, shard_count = parse_shard(shard)
    restorer_objs = [r if isinstance(r, Restorer) else create_restorer(r) for r in restorers]
    if not restorer_objs:
        raise ValueError("give at least one restorer")
    labels = [r.label for r in restorer_objs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"restorers listed twice: {labels}")
    for name in metrics:
        create_metric(name)  # fail before any work on an unknown metric
    items = load_corpus(corpus)[shard_index::shard_count]
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_run_info(run_dir, corpus, grid, restorer_objs, metrics, (shard_index, shard_count))

    store = ResultsStore(run_dir)
    tasks, skipped = _plan(items, grid, restorer_objs, store.completed_keys())
    summary = BenchmarkSummary(run_dir, len(items) * len(grid), 0, skipped)
    specs = [(r.name, dict(r.options)) for r in restorer_objs]
    buffer: list[dict] = []

    def flush() -> None:
        store.append(buffer)
        summary.rows_written += len(buffer)
        buffer.clear()

    bar = tqdm(total=len(tasks), desc=f"bench {grid.name}", unit="cell", disable=not progress)
    try:
        for rows in _execute(tasks, restorer_objs, specs, list(metrics), workers):
            for row in rows:
                if row["error"]:
                    summary.errors.append(
                        f"{row['image_id']} {row['degradation']}:{row['severity']} "
                        f"seed {row['seed']} {row['restorer']}: {row['error']}"
                    )
            buffer.extend(rows)
            if len(buffer) >= flush_every:
                flush()
            bar.update(1)
    finally:
        flush()
        bar.close()
    return summary


def _execute(
    tasks: list[Task],
    restorers: list[Restorer],
    specs: list[tuple[str, dict]],
    metric_names: list[str],
    workers: int,
) -> Iterator[list[dict]]:
    if workers <= 1 or len(tasks) <= 1:
        _WORKER["restorers"] = restorers
        _WORKER["metrics"] = {name: create_metric(name) for name in metric_names}
        for task in tasks:
            yield _run_task(task)
        return
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(specs, metric_names)
    ) as pool:
        yield from pool.map(_run_task, tasks, chunksize=4)
