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
import platform
import re
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from restorelab.benchmark.metrics.base import CellContext
from restorelab.benchmark.pairing import match_folders
from restorelab.benchmark.restorers import RestoreContext, Restorer, create_restorer
from restorelab.benchmark.scoring import bind_metrics
from restorelab.corpus import CorpusItem, load_corpus
from restorelab.degradations import degrade_with_params
from restorelab.degradations.grid import Grid
from restorelab.devices import resolve_device
from restorelab.environment import hardware_info, package_versions
from restorelab.imageio import read_image
from restorelab.parallel import process_pool
from restorelab.results import (
    RUN_FILE,
    ResultsStore,
    update_json_locked,
)

DEFAULT_METRICS = ("psnr", "ssim")
#: Long side of the JPEG thumbnails written with ``save_images=True``.
THUMB_SIZE = 256


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
    #: Paired runs: files without a partner (``"LQ <path>"`` / ``"GT <path>"``).
    unmatched: list[str] = field(default_factory=list)


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 ≤ I < N; None → :func:`env_shard` (else (0, 1))."""
    if shard is None:
        return env_shard()
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


def env_shard() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) from the environment (torchrun, accelerate launch), else (0, 1)."""
    world = os.environ.get("WORLD_SIZE", "").strip()
    rank = os.environ.get("RANK", "").strip()
    if not world or not rank:
        return 0, 1
    try:
        index, count = int(rank), int(world)
    except ValueError:
        raise ValueError(f"RANK={rank!r} / WORLD_SIZE={world!r} are not integers") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"RANK={index} / WORLD_SIZE={count}: need 0 <= RANK < WORLD_SIZE")
    return index, count


# --- worker side -------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(
    restorer_specs: list[tuple[str, dict]],
    metric_names: Sequence[str],
    image_root: str | None = None,
    device: str | None = None,
) -> None:
    restorers = [create_restorer(name, **opts) for name, opts in restorer_specs]
    _WORKER["restorers"] = _placed(restorers, device)
    _WORKER["metrics"] = bind_metrics(metric_names, device=device)
    _WORKER["image_root"] = image_root


def _placed(restorers: list[Restorer], device: str | None) -> list[Restorer]:
    """``restorers`` moved to ``device`` (None: left where they are)."""
    return [r.to(device) for r in restorers] if device is not None else restorers


@functools.lru_cache(maxsize=2)
def _read_cached(path: str) -> np.ndarray:
    return read_image(path)


def _score(metrics: dict, cell: _Cell, image: np.ndarray, prefix: str = "") -> dict:
    """Every metric of ``image`` (a restoration, or the input itself) in ``cell``."""
    return {
        f"{prefix}{label}": metric.score_cell(cell.clean, cell.native_input, image, cell.context)
        for label, metric in metrics.items()
    }


def safe_name(text: str, max_len: int = 80) -> str:
    """``text`` as one safe path component: ``[A-Za-z0-9._=-]`` only, at most ``max_len``.

    Replaced characters become ``_``; an over-long name is cut and ends in a short hash of the
    whole text, so different long names stay different.
    """
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("._") or "_"
    if len(safe) > max_len:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        safe = f"{safe[: max_len - 9]}-{digest}"
    return safe


def image_relpath(kind: str, degradation: str, severity: int, seed: int, image_id: str) -> Path:
    """Where a saved image goes, relative to the run folder (without the suffix).

    ``kind`` is ``images/<restorer-label>`` for restored images or ``degraded``.
    """
    return (
        Path(kind)
        / safe_name(degradation)
        / f"s{int(severity)}"
        / f"seed{int(seed)}"
        / safe_name(image_id)
    )


def _save_image(root: Path, rel: Path, image: np.ndarray) -> tuple[str, str]:
    """Write ``rel``.png and its JPEG thumbnail ``<dir>/thumbs/<name>.jpg`` atomically."""
    png = rel.with_suffix(".png")
    thumb = rel.parent / "thumbs" / (rel.name + ".jpg")
    for target, save in (
        (png, lambda path: Image.fromarray(image).save(path, format="PNG")),
        (thumb, lambda path: _thumbnail(image).save(path, format="JPEG", quality=85)),
    ):
        final = root / target
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        save(tmp)
        os.replace(tmp, final)
    return png.as_posix(), thumb.as_posix()


def _thumbnail(image: np.ndarray) -> Image.Image:
    pil = Image.fromarray(image)
    pil.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BICUBIC)
    return pil


def _maxrss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cuda_reset(device: str) -> bool:
    if not str(device).startswith("cuda"):
        return False
    try:
        import torch

        torch.cuda.reset_peak_memory_stats(device)
        return True
    except Exception:  # no torch, no CUDA: the column stays NaN
        return False


def _cuda_peak_mb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20


@dataclass
class _Cell:
    """One degraded cell ready for the restorers (shared by grid and paired runs)."""

    base: dict
    clean: np.ndarray
    degraded: np.ndarray
    params: dict | None
    restorer_indices: tuple[int, ...]
    input_scores: dict = field(default_factory=dict)
    #: How the input was made, for metrics that re-degrade (consistency).
    context: CellContext = field(default_factory=CellContext)
    #: The degraded input at its own size (the LQ image of a super-resolution pair).
    native_input: np.ndarray | None = None
    degraded_files: dict = field(default_factory=dict)
    prepared: bool = False
    #: Caption and seed, for restorers with ``wants_context`` (paired cells: no caption).
    restore_context: RestoreContext | None = None


def _failed_rows(base: dict, indices: Sequence[int], error: str) -> list[dict]:
    restorers: list[Restorer] = _WORKER["restorers"]
    metrics: dict = _WORKER["metrics"]
    return [
        {
            **base,
            **_restorer_columns(restorers[i]),
            **{name: math.nan for name in metrics},
            **{f"input_{k}": math.nan for k in metrics},
            **_empty_provenance(),
            "degradation_params": "",
            "height": 0,
            "width": 0,
            "error": error,
        }
        for i in indices
    ]


def _empty_provenance() -> dict:
    return {
        "seconds": math.nan,
        "peak_rss_mb": math.nan,
        "peak_rss_delta_mb": math.nan,
        "cuda_peak_mb": math.nan,
        "restored_file": "",
        "thumb_file": "",
        "degraded_file": "",
        "degraded_thumb_file": "",
    }


def _prepare_cell(task: Task) -> _Cell | list[dict]:
    """Read and degrade one grid cell; failed rows instead when that fails."""
    base = {
        "image_id": task.item.image_id,
        "degradation": task.degradation,
        "severity": int(task.severity),
        "seed": int(task.seed),
    }
    try:
        clean = _read_cached(str(task.item.path))
        degraded = degrade_with_params(
            clean, task.degradation, task.severity, task.seed, levels=task.levels
        )
    except Exception as exc:
        return _failed_rows(base, task.restorer_indices, f"{type(exc).__name__}: {exc}")
    context = CellContext(task.degradation, int(task.severity), int(task.seed), task.levels)
    return _Cell(
        base,
        clean,
        degraded.image,
        dict(degraded.params),
        task.restorer_indices,
        context=context,
        native_input=degraded.image,
        restore_context=RestoreContext(task.item.caption, int(task.seed), task.item.image_id),
    )


def _restore_cells(cells: list[_Cell]) -> list[list[dict]]:
    """Run every pending restorer on ``cells``; one list of rows per cell, in order.

    A restorer whose ``batch_size`` exceeds 1 gets the cells it is pending on in batches via
    :meth:`Restorer.restore_batch`; its ``seconds`` is then the batch time over the batch size.
    """
    restorers: list[Restorer] = _WORKER["restorers"]
    metrics: dict = _WORKER["metrics"]
    root = _WORKER.get("image_root")
    rows: list[list[dict]] = [[] for _ in cells]
    for cell in cells:
        if cell.prepared:  # paired cells: input scores and degraded files done by the caller
            continue
        cell.input_scores = _score(metrics, cell, cell.degraded, prefix="input_")
        if root:
            b = cell.base
            rel = image_relpath(
                "degraded", b["degradation"], b["severity"], b["seed"], b["image_id"]
            )
            png, thumb = _save_image(Path(root), rel, cell.degraded)
            cell.degraded_files = {"degraded_file": png, "degraded_thumb_file": thumb}
    for index, restorer in enumerate(restorers):
        mine = [k for k, cell in enumerate(cells) if index in cell.restorer_indices]
        step = max(1, int(restorer.batch_size))
        for start in range(0, len(mine), step):
            batch = mine[start : start + step]
            outcomes = _run_restorer(restorer, [cells[k] for k in batch])
            for k, (restored, error, provenance) in zip(batch, outcomes, strict=True):
                rows[k].append(_row(restorer, cells[k], restored, error, provenance, root))
    return rows


def _run_restorer(restorer: Restorer, cells: list[_Cell]) -> list[tuple]:
    """(restored or None, error, provenance) per cell, measuring time and peak memory."""
    external = restorer.runs_in_subprocess  # its memory is other processes'
    cuda = not external and _cuda_reset(restorer.device)
    rss_before = _maxrss_mb()
    start = time.perf_counter()
    error = ""
    contexts = [c.restore_context for c in cells]
    try:
        if len(cells) == 1 and restorer.batch_size <= 1:
            extra = {"context": contexts[0]} if restorer.wants_context else {}
            outs = [restorer.restore(cells[0].degraded, degradation=cells[0].params, **extra)]
        else:
            extra = {"contexts": contexts} if restorer.wants_context else {}
            outs = restorer.restore_batch(
                [c.degraded for c in cells], degradations=[c.params for c in cells], **extra
            )
            if len(outs) != len(cells):
                raise ValueError(f"restore_batch returned {len(outs)} images for {len(cells)}")
            outs = [restorer.check_output(c.degraded, o) for c, o in zip(cells, outs, strict=True)]
    except Exception as exc:
        outs = [None] * len(cells)
        error = f"{type(exc).__name__}: {exc}"
    seconds = (time.perf_counter() - start) / len(cells)
    rss_after = _maxrss_mb()
    provenance = {
        "seconds": seconds,
        "peak_rss_mb": restorer.last_peak_rss_mb if external else rss_after,
        "peak_rss_delta_mb": math.nan if external else rss_after - rss_before,
        "cuda_peak_mb": _cuda_peak_mb(restorer.device) if cuda else math.nan,
    }
    return [(out, error, provenance) for out in outs]


def _row(
    restorer: Restorer,
    cell: _Cell,
    restored: np.ndarray | None,
    error: str,
    provenance: dict,
    root: str | None,
) -> dict:
    metrics: dict = _WORKER["metrics"]
    row = {
        **cell.base,
        **_restorer_columns(restorer),
        "degradation_params": json.dumps(cell.params, default=str),
        "height": cell.clean.shape[0],
        "width": cell.clean.shape[1],
        **_empty_provenance(),
        **cell.degraded_files,
        **provenance,
    }
    if restored is None:
        row.update({name: math.nan for name in metrics})
        row["error"] = error
    else:
        try:
            row.update(_score(metrics, cell, restored))
            row["error"] = ""
        except Exception as exc:
            row.update({name: math.nan for name in metrics})
            row["error"] = f"{type(exc).__name__}: {exc}"
        if root and not row["error"]:
            b = cell.base
            rel = image_relpath(
                f"images/{safe_name(restorer.label)}",
                b["degradation"],
                b["severity"],
                b["seed"],
                b["image_id"],
            )
            row["restored_file"], row["thumb_file"] = _save_image(Path(root), rel, restored)
    row.update(cell.input_scores)
    return row


def _run_tasks(tasks: list[Task]) -> list[list[dict]]:
    """Compute the rows of several tasks (in a worker process or in-process)."""
    prepared = [_prepare_cell(task) for task in tasks]
    cells = [c for c in prepared if isinstance(c, _Cell)]
    restored = iter(_restore_cells(cells))
    return [next(restored) if isinstance(c, _Cell) else c for c in prepared]


def _run_task(task: Task) -> list[dict]:
    """Compute the rows of one task (runs in a worker process or in-process)."""
    return _run_tasks([task])[0]


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
                    Task(
                        item,
                        degradation,
                        severity,
                        seed,
                        tuple(pending),
                        tuple(levels) if levels is not None else None,
                    )
                )
    return tasks, skipped


def _write_run_info(
    run_dir: Path,
    corpus: Path | None,
    grid: Grid | None,
    restorers: list[Restorer],
    metric_names: Sequence[str],
    shard: tuple[int, int],
    extra: dict | None = None,
    device: str | None = None,
) -> None:
    metrics = {
        label: {"convention": metric.convention, "higher_is_better": metric.higher_is_better}
        for label, metric in bind_metrics(metric_names).items()
    }
    invocation = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "shard": f"{shard[0]}/{shard[1]}",
        "pid": os.getpid(),
        "host": platform.node(),
        "device": device or "default",
    }
    packages, hardware = package_versions(), hardware_info()

    def update(info: dict) -> dict:
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
                **({"corpus": str(corpus.resolve())} if corpus is not None else {}),
                **({"grid": grid.to_dict()} if grid is not None else {}),
                **(extra or {}),
                "restorers": list(known.values()),
                "metrics": {**info.get("metrics", {}), **metrics},
                "packages": packages,
                "hardware": hardware,
            }
        )
        info.setdefault("invocations", []).append(invocation)
        return info

    # every rank of a sharded run updates the same file: under a lock, so none is lost
    update_json_locked(run_dir / RUN_FILE, update)


def _checked_restorers(
    restorers: Sequence[str | Restorer], metrics: Sequence[str], device: str | None = None
) -> list[Restorer]:
    """Restorer objects for ``restorers`` placed on ``device``; raises before any work on an
    empty list, a label listed twice or an unknown metric."""
    restorer_objs = [r if isinstance(r, Restorer) else create_restorer(r) for r in restorers]
    restorer_objs = _placed(restorer_objs, device)
    if not restorer_objs:
        raise ValueError("give at least one restorer")
    labels = [r.label for r in restorer_objs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"restorers listed twice: {labels}")
    bind_metrics(metrics, device=device)
    return restorer_objs


def _flush_rows(store: ResultsStore, summary: BenchmarkSummary, buffer: list[dict]) -> None:
    """Write the buffered rows as one part, count them and empty the buffer."""
    store.append(buffer)
    summary.rows_written += len(buffer)
    buffer.clear()


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
    save_images: bool = False,
    device: str | None = None,
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
        None: ``RANK``/``WORLD_SIZE`` from the environment when set (``torchrun``,
        ``accelerate launch``), else the whole corpus.
    flush_every : int
        Rows buffered before a part file is written (an interruption loses at most these).
    progress : bool
        Show a progress bar.
    save_images : bool
        Save every restored image as
        ``RUN_DIR/images/<label>/<degradation>/s<severity>/seed<seed>/<image_id>.png`` with a
        256-px JPEG thumbnail in the ``thumbs/`` folder beside it, and each degraded input once
        per cell under ``RUN_DIR/degraded/...`` likewise; rows hold the relative paths
        (``restored_file``, ``thumb_file``, ``degraded_file``, ``degraded_thumb_file``).
    device : str, optional
        Where learned metrics (lpips, dists, no-reference) and torch restorers run: ``"auto"``,
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (see :func:`restorelab.devices.resolve_device`:
        under torchrun or accelerate a bare ``"cuda"`` is this rank's GPU, ``LOCAL_RANK``).
        External commands get that GPU as their only visible one. None leaves each metric and
        restorer on its default. Degradations always run on the CPU (same bytes everywhere).

    Returns
    -------
    BenchmarkSummary
        The run folder and counts of rows written and skipped, and the row errors.

    Notes
    -----
    Besides the scores, each row records provenance: ``seconds`` (the restorer's wall time; per
    image for batched restorers), ``device``, ``peak_rss_mb`` (the process's peak resident
    memory after the call, ``ru_maxrss``), ``peak_rss_delta_mb`` (how much the call raised that
    peak; 0 when it stayed below an earlier peak) and ``cuda_peak_mb``
    (``torch.cuda.max_memory_allocated`` for CUDA restorers, else NaN). For external commands
    ``peak_rss_mb`` is the peak of the command's own process tree (sampled from ``/proc``,
    see :func:`restorelab.memory.run_measured`), and the delta and CUDA columns are NaN.
    """
    corpus = Path(corpus)
    run_dir = Path(out)
    shard_index, shard_count = parse_shard(shard)
    device = resolve_device(device) if device is not None else None
    restorer_objs = _checked_restorers(restorers, metrics, device)
    items = load_corpus(corpus)[shard_index::shard_count]
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_run_info(
        run_dir, corpus, grid, restorer_objs, metrics, (shard_index, shard_count), device=device
    )

    store = ResultsStore(run_dir)
    store.remove_stale_temp()
    tasks, skipped = _plan(items, grid, restorer_objs, store.completed_keys())
    summary = BenchmarkSummary(run_dir, len(items) * len(grid), 0, skipped)
    specs = [(r.name, dict(r.options)) for r in restorer_objs]
    buffer: list[dict] = []

    bar = tqdm(total=len(tasks), desc=f"bench {grid.name}", unit="cell", disable=not progress)
    try:
        image_root = str(run_dir) if save_images else None
        for rows in _execute(
            tasks, restorer_objs, specs, list(metrics), workers, image_root, device
        ):
            for row in rows:
                if row["error"]:
                    summary.errors.append(
                        f"{row['image_id']} {row['degradation']}:{row['severity']} "
                        f"seed {row['seed']} {row['restorer']}: {row['error']}"
                    )
            buffer.extend(rows)
            if len(buffer) >= flush_every:
                _flush_rows(store, summary, buffer)
            bar.update(1)
    finally:
        _flush_rows(store, summary, buffer)
        bar.close()
    return summary


def _execute(
    tasks: list[Task],
    restorers: list[Restorer],
    specs: list[tuple[str, dict]],
    metric_names: list[str],
    workers: int,
    image_root: str | None = None,
    device: str | None = None,
) -> Iterator[list[dict]]:
    """Rows per task, in order; tasks go in chunks of the largest restorer ``batch_size``."""
    size = max(1, max(int(r.batch_size) for r in restorers))
    chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    if workers <= 1 or len(chunks) <= 1:
        _WORKER["restorers"] = restorers
        _WORKER["metrics"] = bind_metrics(metric_names, device=device)
        _WORKER["image_root"] = image_root
        for chunk in chunks:
            yield from _run_tasks(chunk)
        return
    with process_pool(
        workers, initializer=_init_worker, initargs=(specs, metric_names, image_root, device)
    ) as pool:
        for rows in pool.map(_run_tasks, chunks, chunksize=4 if size == 1 else 1):
            yield from rows


# --- paired test sets ----------------------------------------------------------------------
def _scale_factor(lq: np.ndarray, gt: np.ndarray) -> int:
    """The integer factor GT / LQ (GT may exceed ``factor·LQ`` by less than ``factor`` px)."""
    (lh, lw), (gh, gw) = lq.shape[:2], gt.shape[:2]
    factor = gh // lh if lh else 0
    if factor < 1 or gw // lw != factor or gh - factor * lh >= factor or gw - factor * lw >= factor:
        raise ValueError(f"LQ {lw}x{lh} and GT {gw}x{gh} differ by no integer factor")
    return factor


def _bicubic(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(resized)


def _pair_rows(
    image_id: str, lq_path: Path, gt_path: Path, indices: tuple[int, ...], root: str | None
) -> list[dict]:
    """Rows of one LQ/GT pair for the restorers ``indices``."""
    restorers: list[Restorer] = _WORKER["restorers"]
    metrics: dict = _WORKER["metrics"]
    base = {"image_id": image_id, "degradation": "paired", "severity": 0, "seed": 0}
    try:
        lq, gt = read_image(lq_path), read_image(gt_path)
        factor = _scale_factor(lq, gt)
        gt = gt[: factor * lq.shape[0], : factor * lq.shape[1]]
        upscaled = _bicubic(lq, *gt.shape[:2])
    except Exception as exc:
        return _failed_rows(base, indices, f"{type(exc).__name__}: {exc}")
    params = {
        "name": "paired",
        "lq_file": str(lq_path),
        "gt_file": str(gt_path),
        "scale": factor,
    }
    shared: dict = {"context": CellContext(None, scale=factor), "native_input": lq}
    if root:
        rel = image_relpath("degraded", "paired", 0, 0, image_id)
        png, thumb = _save_image(Path(root), rel, lq)
        shared["degraded_files"] = {"degraded_file": png, "degraded_thumb_file": thumb}
    same = tuple(i for i in indices if restorers[i].scale == 1)
    native = tuple(i for i in indices if restorers[i].scale == factor and factor > 1)
    wrong = [i for i in indices if i not in same and i not in native]
    cells = [
        _Cell(base, gt, upscaled, params, same, prepared=True, **shared),
        _Cell(base, gt, lq, params, native, prepared=True, **shared),
    ]
    input_scores = _score(metrics, cells[0], upscaled, prefix="input_")  # bicubic baseline
    for cell in cells:
        cell.input_scores = input_scores
    rows = [
        row
        for cell_rows in _restore_cells([c for c in cells if c.restorer_indices])
        for row in cell_rows
    ]
    for i in wrong:
        error = (
            f"ValueError: restorer scale x{restorers[i].scale} does not fit pair scale x{factor}"
        )
        rows += _failed_rows(base, (i,), error)
    order = {i: n for n, i in enumerate(indices)}
    labels = {restorers[i].label: i for i in indices}
    return sorted(rows, key=lambda r: order[labels[r["restorer"]]])


def run_benchmark_pairs(
    lq_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    restorers: Sequence[str | Restorer],
    out: str | os.PathLike,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    shard: str | tuple[int, int] | None = None,
    flush_every: int = 64,
    progress: bool = True,
    save_images: bool = False,
    device: str | None = None,
) -> BenchmarkSummary:
    """Score ``restorers`` on a paired test set with real degradations (RealSR, DRealSR, DIV2K).

    Parameters
    ----------
    lq_dir, gt_dir : path
        Degraded (low-quality) and ground-truth images, matched by file name with side
        markers such as ``x4``, ``_LR4``, ``_HR`` ignored; both may be one folder (see
        :func:`restorelab.benchmark.pairing.match_folders`). Unmatched files are listed in
        ``summary.unmatched``, not fatal.
    restorers : list of str or Restorer
        As for :func:`run_benchmark`.
    out : path
        The run folder (same layout and columns as :func:`run_benchmark`; rows have
        ``degradation="paired"``, ``severity=0``, ``seed=0``; ``image_id`` is the GT
        file's path relative to ``gt_dir`` without extension).
    metrics, shard, flush_every, progress, save_images, device
        As for :func:`run_benchmark` (``shard`` splits the pairs).

    Returns
    -------
    BenchmarkSummary
        With ``unmatched`` filled in.

    Notes
    -----
    When the LQ image is smaller than its GT by an integer factor ``s`` (GT may exceed
    ``s·LQ`` by fewer than ``s`` pixels; it is cropped to ``s·LQ``):

    * a restorer with ``scale == s`` (a super-resolver) gets the LQ image and must return a
      GT-sized image;
    * a same-size restorer (``scale == 1``) gets the LQ upscaled bicubically to GT size
      (PIL's bicubic), and its output is compared with the GT;
    * any other scale is recorded as an error row.

    The ``input_<metric>`` columns score the bicubic upscale against the GT (the usual
    "bicubic" baseline of SR papers). With ``save_images`` the LQ image is the saved
    ``degraded_file``.
    """
    run_dir = Path(out)
    shard_index, shard_count = parse_shard(shard)
    device = resolve_device(device) if device is not None else None
    restorer_objs = _checked_restorers(restorers, metrics, device)
    pairs, unmatched = match_folders(lq_dir, gt_dir)
    pairs = pairs[shard_index::shard_count]
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = {
        "pairs": {"lq_dir": str(Path(lq_dir).resolve()), "gt_dir": str(Path(gt_dir).resolve())}
    }
    _write_run_info(
        run_dir, None, None, restorer_objs, metrics, (shard_index, shard_count), extra, device
    )
    store = ResultsStore(run_dir)
    store.remove_stale_temp()
    done = store.completed_keys()
    summary = BenchmarkSummary(run_dir, len(pairs), 0, 0, unmatched=unmatched)
    _WORKER["restorers"] = restorer_objs
    _WORKER["metrics"] = bind_metrics(metrics, device=device)
    _WORKER["image_root"] = str(run_dir) if save_images else None
    buffer: list[dict] = []

    bar = tqdm(total=len(pairs), desc="bench pairs", unit="pair", disable=not progress)
    try:
        for image_id, lq_path, gt_path in pairs:
            pending = tuple(
                i
                for i, r in enumerate(restorer_objs)
                if (image_id, "paired", 0, 0, r.label, r.config_hash) not in done
            )
            summary.rows_skipped += len(restorer_objs) - len(pending)
            if pending:
                rows = _pair_rows(image_id, lq_path, gt_path, pending, _WORKER["image_root"])
                summary.errors += [
                    f"{r['image_id']} paired {r['restorer']}: {r['error']}"
                    for r in rows
                    if r["error"]
                ]
                buffer.extend(rows)
                if len(buffer) >= flush_every:
                    _flush_rows(store, summary, buffer)
            bar.update(1)
    finally:
        _flush_rows(store, summary, buffer)
        bar.close()
    return summary
