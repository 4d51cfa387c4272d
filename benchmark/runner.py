"""The benchmark runner: sweep restorers over a corpus × degradation grid and score each cell.

One *cell* is (image, degradation, severity, seed). For each cell the runner degrades the clean
image once, scores the degraded input against the clean image (the ``input_<metric>``
columns, so every row shows the gain), then runs and scores every restorer. Rows go to the
run's :class:`~restorelab.results.ResultsStore` in atomic parts.

Resuming is exact. The run's :class:`~restorelab.benchmark.runspec.RunSpec` (corpus content,
grid levels, restorer configs and files, metric conventions) is stored in ``run.json``; a
re-run compares its own spec with it first:

* the same spec skips every finished (cell, restorer);
* added images, severities, seeds, degradations or restorers run only their new cells;
* added metrics are filled into finished rows (from the saved restored image when the run
  kept one, else by re-running that deterministic cell), counted in the summary;
* a spec that gives an existing key another meaning is refused before any work
  (:class:`~restorelab.benchmark.runspec.SpecConflictError`).

The work itself is done by a :class:`CellExecutor` (restorers, bound metrics, image saving),
one per process, used alike by grid sweeps and paired test sets.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
import platform
import re
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from restorelab.benchmark.metrics.base import CellContext, Metric
from restorelab.benchmark.pairing import match_folders
from restorelab.benchmark.restorers import RestoreContext, Restorer, create_restorer
from restorelab.benchmark.runspec import PairingSpec, RunSpec, SpecConflictError, SpecDiff
from restorelab.benchmark.scoring import bind_metrics
from restorelab.corpus import CorpusFingerprint, CorpusItem, content_hash, load_corpus
from restorelab.degradations import degrade_with_params
from restorelab.degradations.grid import Grid
from restorelab.degradations.gridspec import GridSpec
from restorelab.devices import resolve_device
from restorelab.environment import hardware_info, package_versions
from restorelab.imageio import read_image
from restorelab.parallel import process_pool
from restorelab.progress import tqdm
from restorelab.results import (
    RESULTS_SCHEMA,
    RUN_FILE,
    PartProblem,
    ResultsStore,
    update_json_locked,
)

DEFAULT_METRICS = ("psnr", "ssim")
#: Long side of the JPEG thumbnails written with ``save_images=True``.
THUMB_SIZE = 256
#: Content hashes of corpus files by (path, size, mtime, inode), so a resume does not re-read
#: an unchanged corpus.
HASH_CACHE = ".corpus-hashes.json"
#: Columns written as text (missing values become "").
_TEXT_COLUMNS = tuple(name for name, kind in RESULTS_SCHEMA.columns if kind == "string")


@dataclass(frozen=True)
class Task:
    """One grid cell: the restorers (by index into the run's list) still to run on it, and
    the finished rows (``fill``: restorer index → stored row) that lack some metric."""

    item: CorpusItem
    degradation: str
    severity: int
    seed: int
    restorer_indices: tuple[int, ...]
    levels: tuple | None = None
    image_hash: str = ""
    fill: tuple[tuple[int, dict], ...] = ()


@dataclass(frozen=True)
class PairTask:
    """One LQ/GT pair of a paired test set (fields as in :class:`Task`)."""

    image_id: str
    lq_path: Path
    gt_path: Path
    restorer_indices: tuple[int, ...]
    image_hash: str = ""
    fill: tuple[tuple[int, dict], ...] = ()


@dataclass(frozen=True)
class CellFailure:
    """One failed row: where (``stage``: ``input`` when the clean image or the pair could
    not be read or degraded, ``restore``, ``score``), which cell and restorer, and why."""

    image_id: str
    cell: str
    restorer: str
    stage: str
    reason: str


@dataclass
class BenchmarkSummary:
    """What a call of :func:`run_benchmark` / :func:`run_benchmark_pairs` did.

    ``rows_written`` counts new rows (new cells or restorers), ``rows_skipped`` finished rows
    reused as they were, ``rows_filled`` finished rows that got the added metrics
    (``filled_from_saved`` of them from the saved restored image, ``filled_by_rerun`` by
    re-running the cell). ``errors`` has one line per failed row; ``failures`` the same,
    structured (see :func:`group_failures`).
    """

    run_dir: Path
    cells_total: int
    rows_written: int
    rows_skipped: int
    errors: list[str] = field(default_factory=list)
    #: Paired runs: files without a partner (``"LQ <path>"`` / ``"GT <path>"``).
    unmatched: list[str] = field(default_factory=list)
    failures: list[CellFailure] = field(default_factory=list)
    rows_filled: int = 0
    filled_from_saved: int = 0
    filled_by_rerun: int = 0
    #: What this spec added to the stored one (``"metric psnr_y"``, ``"2 image(s)"``, ...).
    added: list[str] = field(default_factory=list)
    #: Result parts that could not be used (their cells were recomputed).
    damaged_parts: list[PartProblem] = field(default_factory=list)
    #: Metric labels filled into finished rows.
    filled_metrics: list[str] = field(default_factory=list)
    #: Failed rows reused from earlier calls (still failed in the run).
    earlier_failures: list[CellFailure] = field(default_factory=list)

    @property
    def failed_cells(self) -> int:
        """Rows of this call that hold an error."""
        return len(self.failures)

    def describe(self) -> str:
        """One line: what was reused, added, filled and refused."""
        parts = [f"reused {self.rows_skipped} finished rows", f"added {self.rows_written} rows"]
        if self.rows_filled:
            parts.append(
                f"filled {', '.join(self.filled_metrics)} into {self.rows_filled} finished rows "
                f"({self.filled_from_saved} from saved images, {self.filled_by_rerun} re-run"
            )
            failed = self.rows_filled - self.filled_from_saved - self.filled_by_rerun
            parts[-1] += f", {failed} failed rows: input scores only)" if failed else ")"
        parts.append("refused nothing")
        line = ", ".join(parts)
        if self.added:
            line += f" (new in this set-up: {', '.join(self.added)})"
        return line


def group_failures(failures: Sequence[CellFailure]) -> list[tuple[str, int, str]]:
    """Failures grouped for a summary: ``(what, count, example)``, largest groups first.

    A cell whose input failed (an unreadable corpus image, a broken pair) fails for every
    restorer and every cell of that image: those count once per image, under ``what`` =
    ``"image <id>: <reason>"``. Other failures group by (restorer, reason).
    """
    groups: dict[tuple[str, str], list[CellFailure]] = {}
    for failure in failures:
        if failure.stage == "input":
            key = (f"image {failure.image_id}", failure.reason)
        else:
            key = (f"restorer {failure.restorer}", failure.reason)
        groups.setdefault(key, []).append(failure)
    out = []
    for (who, reason), members in groups.items():
        if who.startswith("image "):
            cells = len({(m.cell, m.image_id) for m in members})
            what = f"{who} cannot be used ({cells} cells, all restorers): {reason}"
            out.append((what, 1, ""))
        else:
            first = members[0]
            out.append((f"{who}: {reason}", len(members), f"{first.image_id} {first.cell}"))
    return sorted(out, key=lambda g: (-g[1], g[0]))


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


def _placed(restorers: list[Restorer], device: str | None) -> list[Restorer]:
    """``restorers`` moved to ``device`` (None: left where they are)."""
    return [r.to(device) for r in restorers] if device is not None else restorers


@functools.lru_cache(maxsize=2)
def _read_cached(path: str) -> np.ndarray:
    return read_image(path)


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
    #: Finished rows of this cell to complete with missing metrics (restorer index → row).
    fill: tuple[tuple[int, dict], ...] = ()
    #: The image the ``input_`` columns score (None: ``degraded``; pairs: the bicubic upscale).
    input_image: np.ndarray | None = None
    #: Caption and seed, for restorers with ``wants_context`` (paired cells: no caption).
    restore_context: RestoreContext | None = None


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


def _restorer_columns(restorer: Restorer) -> dict:
    return {
        "restorer": restorer.label,
        "config_hash": restorer.config_hash,
        "restorer_config": json.dumps(restorer.config, sort_keys=True, default=str),
        "device": restorer.device,
    }


def _labels_of(row: dict) -> list[str]:
    """The metric labels a stored row was scored with."""
    text = row.get("metric_labels") or "[]"
    return list(json.loads(text)) if isinstance(text, str) else []


@dataclass(frozen=True)
class ExecutorConfig:
    """What a worker process needs to build its :class:`CellExecutor` (picklable, hashable)."""

    restorers: tuple[tuple[str, bytes], ...]
    metrics: tuple[str, ...]
    run_dir: str
    save_images: bool
    device: str | None

    def build(self) -> CellExecutor:
        restorers = [create_restorer(name, **pickle.loads(opts)) for name, opts in self.restorers]
        executor = CellExecutor.create(
            restorers, self.metrics, self.run_dir, save_images=self.save_images, device=self.device
        )
        return executor


class CellExecutor:
    """Computes result rows: prepares cells, runs the restorers, scores and saves images.

    One object per process holds the (possibly large) restorers and bound metrics; grid
    sweeps (:meth:`run_tasks`) and paired test sets (:meth:`run_pair`) share it.

    Parameters
    ----------
    restorers : list of Restorer
        The run's restorers; tasks refer to them by index.
    metrics : dict of str to Metric
        Bound metrics by label (their columns).
    run_dir : path
        The run folder (saved images are written and read there).
    save_images : bool
        Save restored and degraded images (see :func:`run_benchmark`).
    """

    def __init__(
        self,
        restorers: list[Restorer],
        metrics: dict[str, Metric],
        run_dir: str | os.PathLike,
        *,
        save_images: bool = False,
        device: str | None = None,
    ) -> None:
        self.restorers = list(restorers)
        self.metrics = dict(metrics)
        self.run_dir = Path(run_dir)
        self.save_images = bool(save_images)
        self.device = device
        #: The metric specs as given (labels leave out placement such as ``weights_dir``).
        self.metric_specs: list[str] = list(metrics)

    @classmethod
    def create(
        cls,
        restorers: list[Restorer],
        metric_names: Sequence[str],
        run_dir: str | os.PathLike,
        *,
        save_images: bool = False,
        device: str | None = None,
    ) -> CellExecutor:
        """An executor for restorer objects (placed on ``device``) and metric names/specs."""
        executor = cls(
            _placed(list(restorers), device),
            bind_metrics(metric_names, device=device),
            run_dir,
            save_images=save_images,
            device=device,
        )
        executor.metric_specs = list(metric_names)
        return executor

    def config(self) -> ExecutorConfig:
        """How to rebuild this executor in a worker process."""
        return ExecutorConfig(
            tuple((r.name, pickle.dumps(dict(r.options))) for r in self.restorers),
            tuple(self.metric_specs),
            str(self.run_dir),
            self.save_images,
            self.device,
        )

    # --- rows ------------------------------------------------------------------------------
    def _score(
        self, cell: _Cell, image: np.ndarray, prefix: str = "", labels: Sequence[str] | None = None
    ) -> dict:
        """Metrics ``labels`` (default: all) of ``image`` (restoration or input) in ``cell``."""
        chosen = self.metrics if labels is None else {k: self.metrics[k] for k in labels}
        return {
            f"{prefix}{label}": metric.score_cell(
                cell.clean, cell.native_input, image, cell.context
            )
            for label, metric in chosen.items()
        }

    def _failed_rows(
        self, base: dict, indices: Sequence[int], error: str, stage: str = "input"
    ) -> list[dict]:
        return [
            {
                **base,
                **_restorer_columns(self.restorers[i]),
                **{name: math.nan for name in self.metrics},
                **{f"input_{k}": math.nan for k in self.metrics},
                **_empty_provenance(),
                "degradation_params": "",
                "height": 0,
                "width": 0,
                "metric_labels": json.dumps(list(self.metrics)),
                "error": error,
                "_stage": stage,
            }
            for i in indices
        ]

    def _row(
        self,
        restorer: Restorer,
        cell: _Cell,
        restored: np.ndarray | None,
        error: str,
        provenance: dict,
    ) -> dict:
        row = {
            **cell.base,
            **_restorer_columns(restorer),
            "degradation_params": json.dumps(cell.params, default=str),
            "height": int(cell.clean.shape[0]),
            "width": int(cell.clean.shape[1]),
            **_empty_provenance(),
            **cell.degraded_files,
            **provenance,
            "metric_labels": json.dumps(list(self.metrics)),
            "_stage": "restore",
        }
        if restored is None:
            row.update({name: math.nan for name in self.metrics})
            row["error"] = error
        else:
            try:
                row.update(self._score(cell, restored))
                row["error"] = ""
            except Exception as exc:
                row.update({name: math.nan for name in self.metrics})
                row["error"] = f"{type(exc).__name__}: {exc}"
                row["_stage"] = "score"
            if self.save_images and not row["error"]:
                rel = self._restored_relpath(restorer, cell)
                row["restored_file"], row["thumb_file"] = _save_image(self.run_dir, rel, restored)
        row.update(cell.input_scores)
        return row

    def _restored_relpath(self, restorer: Restorer, cell: _Cell) -> Path:
        b = cell.base
        kind = f"images/{safe_name(restorer.label)}"
        return image_relpath(kind, b["degradation"], b["severity"], b["seed"], b["image_id"])

    # --- grid cells ------------------------------------------------------------------------
    def run_tasks(self, tasks: Sequence[Task]) -> list[list[dict]]:
        """The rows of several grid tasks, one list per task, in order."""
        prepared = [self._prepare(task) for task in tasks]
        cells = [c for c in prepared if isinstance(c, _Cell)]
        restored = iter(self._restore_cells(cells))
        return [next(restored) if isinstance(c, _Cell) else c for c in prepared]

    def _prepare(self, task: Task) -> _Cell | list[dict]:
        """Read and degrade one grid cell; failed (or unfilled) rows when that fails."""
        base = {
            "image_id": task.item.image_id,
            "degradation": task.degradation,
            "severity": int(task.severity),
            "seed": int(task.seed),
            "image_hash": task.image_hash,
        }
        try:
            clean = _read_cached(str(task.item.path))
            degraded = degrade_with_params(
                clean, task.degradation, task.severity, task.seed, levels=task.levels
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            rows = self._failed_rows(base, task.restorer_indices, error)
            return rows + [self._unfillable(row) for _, row in task.fill]
        context = CellContext(task.degradation, int(task.severity), int(task.seed), task.levels)
        return _Cell(
            base,
            clean,
            degraded.image,
            dict(degraded.params),
            task.restorer_indices,
            context=context,
            native_input=degraded.image,
            fill=task.fill,
            restore_context=RestoreContext(task.item.caption, int(task.seed), task.item.image_id),
        )

    def _restore_cells(self, cells: list[_Cell], prepared: bool = False) -> list[list[dict]]:
        """Run every pending restorer on ``cells`` and fill the finished rows they carry; one
        list of rows per cell, in order.

        A restorer whose ``batch_size`` exceeds 1 gets the cells it is pending on in batches via
        :meth:`Restorer.restore_batch`; its ``seconds`` is then the batch time over the batch
        size. ``prepared``: the input scores and degraded files are already set (pairs).
        """
        rows: list[list[dict]] = [[] for _ in cells]
        if not prepared:
            for cell in cells:
                self._score_input(cell)
        for index, restorer in enumerate(self.restorers):
            mine = [k for k, cell in enumerate(cells) if index in cell.restorer_indices]
            step = max(1, int(restorer.batch_size))
            for start in range(0, len(mine), step):
                batch = mine[start : start + step]
                outcomes = _run_restorer(restorer, [cells[k] for k in batch])
                for k, (restored, error, provenance) in zip(batch, outcomes, strict=True):
                    rows[k].append(self._row(restorer, cells[k], restored, error, provenance))
        for k, cell in enumerate(cells):
            rows[k] += [self._fill(cell, index, row) for index, row in cell.fill]
        return rows

    def _score_input(self, cell: _Cell) -> None:
        """The degraded input's scores, and its saved copy, for a cell with new rows."""
        if not cell.restorer_indices:
            return  # only filling: the missing input scores are added per row
        cell.input_scores = self._score(cell, cell.degraded, prefix="input_")
        if self.save_images:
            b = cell.base
            rel = image_relpath(
                "degraded", b["degradation"], b["severity"], b["seed"], b["image_id"]
            )
            png, thumb = _save_image(self.run_dir, rel, cell.degraded)
            cell.degraded_files = {"degraded_file": png, "degraded_thumb_file": thumb}

    # --- filling added metrics into finished rows ---------------------------------------
    def _missing(self, row: dict) -> list[str]:
        have = set(_labels_of(row))
        return [label for label in self.metrics if label not in have]

    def _unfillable(self, row: dict) -> dict:
        """A finished row whose cell cannot be prepared now: the added metrics stay NaN."""
        missing = self._missing(row)
        out = {**row, **{m: math.nan for m in missing}, **{f"input_{m}": math.nan for m in missing}}
        out["metric_labels"] = json.dumps(_labels_of(row) + missing)
        out["_filled"] = "none"
        return out

    def _fill(self, cell: _Cell, index: int, row: dict) -> dict:
        """``row`` (finished) with the metrics it lacks: the input's from the re-made input,
        the restoration's from its saved image when there is one, else by re-running it.

        A re-run must reproduce the row's stored scores (the metrics of this call it already
        has); if it does not (a restorer that is not deterministic), or the re-run fails, the
        row is left as it was (``_filled`` = ``"failed"``, with ``_fill_error``), so its new
        columns never come from another output than its old ones.
        """
        missing = self._missing(row)
        out = dict(row)
        out["metric_labels"] = json.dumps(_labels_of(row) + missing)
        out["_filled"] = "none"
        try:
            shown = cell.degraded if cell.input_image is None else cell.input_image
            out.update(self._score(cell, shown, prefix="input_", labels=missing))
        except Exception:  # the stored row keeps its own error state; input scores stay NaN
            out.update({f"input_{m}": math.nan for m in missing})
        out.update({m: math.nan for m in missing})
        if row.get("error"):
            return out  # a failed row has no restoration to score
        restored = None
        saved = self.run_dir / str(row.get("restored_file") or "")
        if row.get("restored_file") and saved.is_file():
            try:
                restored = read_image(saved)
                out["_filled"] = "saved"
            except Exception:
                restored = None
        restorer = self.restorers[index]
        if restored is None:
            result, error, _ = _run_restorer(restorer, [cell])[0]
            if result is None:
                return _unchanged(row, f"re-running the cell to add {missing} failed: {error}")
            restored = result
            out["_filled"] = "rerun"
            known = [m for m in _labels_of(row) if m in self.metrics]
            try:
                again = self._score(cell, restored, labels=known)
            except Exception as exc:
                return _unchanged(row, f"re-scoring the re-run: {type(exc).__name__}: {exc}")
            differ = [m for m in known if not _same_score(again[m], row.get(m))]
            if differ:
                return _unchanged(
                    row,
                    f"the re-run gave other {differ} than stored ({again[differ[0]]!r} vs "
                    f"{row.get(differ[0])!r}): {restorer.label} is not deterministic here; "
                    f"{missing} not added (bench with --save-images keeps outputs to score later)",
                )
            if self.save_images:
                rel = self._restored_relpath(restorer, cell)
                out["restored_file"], out["thumb_file"] = _save_image(self.run_dir, rel, restored)
        try:
            out.update(self._score(cell, restored, labels=missing))
        except Exception as exc:
            return _unchanged(row, f"scoring added metrics {missing}: {type(exc).__name__}: {exc}")
        return out

    # --- paired test sets ------------------------------------------------------------------
    def run_pair(self, task: PairTask) -> list[dict]:
        """Rows of one LQ/GT pair for its pending restorers, and its filled rows."""
        image_id = task.image_id
        indices = task.restorer_indices
        base = {
            "image_id": image_id,
            "degradation": "paired",
            "severity": 0,
            "seed": 0,
            "image_hash": task.image_hash,
        }
        try:
            lq, gt = read_image(task.lq_path), read_image(task.gt_path)
            factor = _scale_factor(lq, gt)
            gt = gt[: factor * lq.shape[0], : factor * lq.shape[1]]
            upscaled = _bicubic(lq, *gt.shape[:2])
        except Exception as exc:
            rows = self._failed_rows(base, indices, f"{type(exc).__name__}: {exc}")
            return rows + [self._unfillable(row) for _, row in task.fill]
        params = {
            "name": "paired",
            "lq_file": str(task.lq_path),
            "gt_file": str(task.gt_path),
            "scale": factor,
        }
        shared: dict = {
            "context": CellContext(None, scale=factor),
            "native_input": lq,
            "input_image": upscaled,
            "restore_context": RestoreContext("", 0, image_id),  # pairs have no caption
        }
        if self.save_images and indices:
            rel = image_relpath("degraded", "paired", 0, 0, image_id)
            png, thumb = _save_image(self.run_dir, rel, lq)
            shared["degraded_files"] = {"degraded_file": png, "degraded_thumb_file": thumb}
        scales = {i: self.restorers[i].scale for i in range(len(self.restorers))}
        same = tuple(i for i in indices if scales[i] == 1)
        native = tuple(i for i in indices if scales[i] == factor and factor > 1)
        wrong = [i for i in indices if i not in same and i not in native]
        fill_same = tuple((i, r) for i, r in task.fill if scales[i] == 1)
        fill_native = tuple((i, r) for i, r in task.fill if scales[i] != 1)
        cells = [
            _Cell(base, gt, upscaled, params, same, fill=fill_same, **shared),
            _Cell(base, gt, lq, params, native, fill=fill_native, **shared),
        ]
        if indices:
            input_scores = self._score(cells[0], upscaled, prefix="input_")  # bicubic baseline
            for cell in cells:
                cell.input_scores = input_scores
        used = [c for c in cells if c.restorer_indices or c.fill]
        rows = [row for cell_rows in self._restore_cells(used, prepared=True) for row in cell_rows]
        for i in wrong:
            scale = self.restorers[i].scale
            error = f"ValueError: restorer scale x{scale} does not fit pair scale x{factor}"
            rows += self._failed_rows(base, (i,), error, stage="restore")
        return rows


def _unchanged(row: dict, reason: str) -> dict:
    """A finished row left as stored because filling it failed (``reason``)."""
    return {**row, "_filled": "failed", "_fill_error": reason, "_stage": "fill"}


def _same_score(a: float, b: object, tol: float = 1e-6) -> bool:
    """Whether a re-computed score equals the stored one (NaN equals NaN, inf equals inf)."""
    try:
        b = float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= tol * max(1.0, abs(a), abs(b))


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


@functools.lru_cache(maxsize=1)
def _worker_executor(config: ExecutorConfig) -> CellExecutor:
    """The executor of this worker process, built on its first chunk."""
    return config.build()


def _run_chunk_in_worker(config: ExecutorConfig, chunk: list[Task]) -> list[list[dict]]:
    return _worker_executor(config).run_tasks(chunk)


# --- driver side -------------------------------------------------------------------------
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


def _clean_row(record: dict) -> dict:
    """A stored row (from pandas) as plain Python values that fit :data:`RESULTS_SCHEMA`."""
    out = {}
    for key, value in record.items():
        if key in _TEXT_COLUMNS:
            out[key] = value if isinstance(value, str) else ""
        elif isinstance(value, (np.integer, int)) and not isinstance(value, bool):
            out[key] = int(value)
        else:
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                out[key] = math.nan
    return out


class _StoredRows:
    """The latest stored row per key, indexed without converting every row (a resumed run of a
    million rows plans in seconds); rows become dicts only where they are needed."""

    def __init__(self, store: ResultsStore) -> None:
        raw, self.problems = store.scan()
        self.frame = store.latest(raw)
        keys = list(store.key_columns)
        n = len(self.frame)
        columns = [self.frame[c].tolist() for c in keys] if n else [[] for _ in keys]
        self.index = {key: i for i, key in enumerate(zip(*columns, strict=True))}

        def column(name: str, default: Any) -> list:
            return self.frame[name].tolist() if n and name in self.frame else [default] * n

        self._labels = column("metric_labels", "[]")
        self._errors = column("error", "")
        self._parsed: dict[str, frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def get(self, key: tuple) -> int | None:
        return self.index.get(key)

    def has_all(self, i: int, labels: Sequence[str]) -> bool:
        """Whether row ``i`` was scored with every metric of ``labels``."""
        text = self._labels[i] if isinstance(self._labels[i], str) else "[]"
        if text not in self._parsed:
            self._parsed[text] = frozenset(json.loads(text))
        return all(label in self._parsed[text] for label in labels)

    def failed(self, i: int) -> bool:
        return isinstance(self._errors[i], str) and bool(self._errors[i])

    def row(self, i: int) -> dict:
        return _clean_row(self.frame.iloc[i].to_dict())


def _record_spec(
    run_dir: Path,
    spec: RunSpec,
    has_results: bool,
    restorers: list[Restorer],
    shard: tuple[int, int],
    device: str | None,
    extra: dict,
) -> SpecDiff:
    """Check ``spec`` against the stored one and store their union in ``run.json``.

    Raises :class:`SpecConflictError` (nothing written) when the folder holds results that the new
    spec would give another meaning, or results without any spec to check them against.
    Returns what the new spec adds. Runs under the file lock, so the ranks of a sharded run
    merge their parts of the corpus one after another.
    """
    invocation = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "shard": f"{shard[0]}/{shard[1]}",
        "pid": os.getpid(),
        "host": platform.node(),
        "device": device or "default",
    }
    packages, hardware = package_versions(), hardware_info()
    outcome: list[SpecDiff] = []

    def update(info: dict) -> dict:
        stored = info.get("spec")
        if stored is None:
            if has_results:
                raise SpecConflictError(
                    run_dir,
                    [
                        "the folder holds results but run.json has no run spec (made by an "
                        "older restorelab, or run.json was removed): they cannot be checked "
                        "against this set-up"
                    ],
                )
            merged, diff = spec, SpecDiff()
        else:
            try:
                old = RunSpec.from_dict(stored)
            except (KeyError, TypeError, ValueError) as exc:
                raise SpecConflictError(run_dir, [f"its run spec cannot be read ({exc})"]) from None
            diff = old.compare(spec)
            if diff.conflicts and has_results:
                raise SpecConflictError(run_dir, list(diff.conflicts))
            merged = spec if diff.conflicts else old.merged(spec)
        outcome.append(diff)
        known = {r["config_hash"]: r for r in info.get("restorers", [])}
        for restorer in restorers:
            known[restorer.config_hash] = {
                "label": restorer.label,
                "config_hash": restorer.config_hash,
                "config": restorer.config,
                "files": restorer.file_identity_map(),
            }
        info.update(
            {
                "format": "restorelab-run/2",
                **extra,
                "spec": merged.to_dict(),
                "restorers": list(known.values()),
                "metrics": merged.to_dict()["metrics"],
                "packages": packages,
                "hardware": hardware,
            }
        )
        info.setdefault("invocations", []).append(invocation)
        return info

    # every rank of a sharded run updates the same file: under a lock, so none is lost
    update_json_locked(run_dir / RUN_FILE, update)
    return outcome[0]


def _plan(
    items: list[CorpusItem],
    hashes: dict[str, str],
    grid: Grid,
    restorers: list[Restorer],
    stored: _StoredRows,
    labels: Sequence[str],
    retry_failed: bool = False,
) -> tuple[list[Task], list[int]]:
    """Tasks for every (cell, restorer) not stored yet, stored without some of ``labels``, or
    (``retry_failed``) stored with an error; and the stored rows reused as they are (their
    indices in ``stored``)."""
    tasks: list[Task] = []
    reused: list[int] = []
    for item in items:
        for degradation, severity, seed in grid.cells():
            pending, fill = [], []
            for index, restorer in enumerate(restorers):
                key = (
                    item.image_id,
                    degradation,
                    severity,
                    seed,
                    restorer.label,
                    restorer.config_hash,
                )
                found = stored.get(key)
                if found is None or (retry_failed and stored.failed(found)):
                    pending.append(index)
                elif not stored.has_all(found, labels):
                    fill.append((index, stored.row(found)))
                else:
                    reused.append(found)
            if pending or fill:
                levels = grid.levels_for(degradation)
                tasks.append(
                    Task(
                        item,
                        degradation,
                        severity,
                        seed,
                        tuple(pending),
                        tuple(levels) if levels is not None else None,
                        hashes.get(item.image_id, ""),
                        tuple(fill),
                    )
                )
    return tasks, reused


class _RowSink:
    """Buffers rows, writes them in parts, and counts what happened in the summary."""

    def __init__(self, store: ResultsStore, summary: BenchmarkSummary, flush_every: int) -> None:
        self.store, self.summary, self.flush_every = store, summary, max(1, int(flush_every))
        self.buffer: list[dict] = []

    def add(self, rows: list[dict]) -> None:
        for row in rows:
            stage = row.pop("_stage", "restore")
            filled = row.pop("_filled", None)
            if filled == "failed":  # left as stored: reported, not rewritten
                self._failure({**row, "error": row.pop("_fill_error")}, stage)
                continue
            if filled is None:
                self.summary.rows_written += 1
            else:
                self.summary.rows_filled += 1
                self.summary.filled_from_saved += filled == "saved"
                self.summary.filled_by_rerun += filled == "rerun"
            if row["error"] and filled is None:
                self._failure(row, stage)
            self.buffer.append(row)
        if len(self.buffer) >= self.flush_every:
            self.flush()

    def _failure(self, row: dict, stage: str) -> None:
        if row["degradation"] == "paired":
            cell = "paired"
            line = f"{row['image_id']} paired {row['restorer']}: {row['error']}"
        else:
            cell = f"{row['degradation']}:{row['severity']} seed {row['seed']}"
            line = f"{row['image_id']} {cell} {row['restorer']}: {row['error']}"
        self.summary.errors.append(line)
        self.summary.failures.append(
            CellFailure(row["image_id"], cell, row["restorer"], stage, row["error"])
        )

    def flush(self) -> None:
        """Write the buffered rows as one part (columns: every metric any of them has)."""
        if not self.buffer:
            return
        labels: dict[str, None] = {}
        for row in self.buffer:
            labels.update(dict.fromkeys(_labels_of(row)))
        self.store.append(self.buffer, metrics=list(labels))
        self.buffer.clear()


def _start(
    run_dir: Path,
    spec: RunSpec,
    restorers: list[Restorer],
    shard: tuple[int, int],
    device: str | None,
    extra: dict,
) -> tuple[ResultsStore, _StoredRows, list[PartProblem], SpecDiff]:
    """Shared set-up of grid and paired runs: stored rows, the spec check, ``run.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(run_dir)
    store.remove_stale_temp()
    stored = _StoredRows(store)
    diff = _record_spec(run_dir, spec, len(stored) > 0, restorers, shard, device, extra)
    return store, stored, stored.problems, diff


def _drive(
    results: Iterator[list[dict]],
    total: int,
    desc: str,
    unit: str,
    sink: _RowSink,
    progress: bool,
) -> None:
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not progress)
    try:
        for rows in results:
            sink.add(rows)
            bar.update(1)
    finally:
        sink.flush()
        bar.close()


def _grid_rows(executor: CellExecutor, tasks: list[Task], workers: int) -> Iterator[list[dict]]:
    """Rows per task, in order; tasks go in chunks of the largest restorer ``batch_size``."""
    size = max(1, max(int(r.batch_size) for r in executor.restorers))
    chunks = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from executor.run_tasks(chunk)
        return
    work = functools.partial(_run_chunk_in_worker, executor.config())
    with process_pool(workers) as pool:
        for rows in pool.map(work, chunks, chunksize=4 if size == 1 else 1):
            yield from rows


def _summary(
    run_dir: Path,
    cells: int,
    stored: _StoredRows,
    reused: list[int],
    tasks: Sequence[Task | PairTask],
    labels: Sequence[str],
    diff: SpecDiff,
    problems: list[PartProblem],
) -> BenchmarkSummary:
    summary = BenchmarkSummary(run_dir, cells, 0, len(reused))
    summary.added = list(diff.added)
    summary.damaged_parts = list(problems)
    filled = {
        m for task in tasks for _, row in task.fill for m in labels if m not in _labels_of(row)
    }
    summary.filled_metrics = [m for m in labels if m in filled]
    for i in reused:
        if stored.failed(i):
            row = stored.row(i)
            cell = (
                "paired"
                if row["degradation"] == "paired"
                else f"{row['degradation']}:{row['severity']} seed {row['seed']}"
            )
            stage = "input" if not row.get("height") else "restore"
            summary.earlier_failures.append(
                CellFailure(row["image_id"], cell, row["restorer"], stage, row["error"])
            )
    return summary


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
    retry_failed: bool = False,
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
    retry_failed : bool
        Run again the finished (cell, restorer) rows that hold an error (a timeout, an
        out-of-memory); by default they are kept and reported as failed earlier.

    Returns
    -------
    BenchmarkSummary
        The run folder, counts of rows written, reused and filled, and the failures.

    Raises
    ------
    SpecConflictError
        Before any work, when ``out`` holds results made with another set-up (see the
        module docstring).

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
    executor = CellExecutor.create(
        restorer_objs, list(metrics), run_dir, save_images=save_images, device=device
    )
    items = load_corpus(corpus)[shard_index::shard_count]
    fingerprint = CorpusFingerprint.of(items, cache=run_dir / HASH_CACHE)
    spec = RunSpec.build(
        restorer_objs, executor.metrics, corpus=fingerprint, grid=GridSpec.of(grid)
    )
    extra = {"corpus": str(corpus.resolve()), "grid": grid.to_dict()}
    store, stored, problems, diff = _start(
        run_dir, spec, restorer_objs, (shard_index, shard_count), device, extra
    )
    labels = list(executor.metrics)
    hashes = fingerprint.as_dict()
    tasks, reused = _plan(items, hashes, grid, restorer_objs, stored, labels, retry_failed)
    cells = len(items) * len(grid)
    summary = _summary(run_dir, cells, stored, reused, tasks, labels, diff, problems)
    sink = _RowSink(store, summary, flush_every)
    rows = _grid_rows(executor, tasks, workers)
    _drive(rows, len(tasks), f"bench {grid.name}", "cell", sink, progress)
    return summary


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
    retry_failed: bool = False,
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
    metrics, shard, flush_every, progress, save_images, device, retry_failed
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
    executor = CellExecutor.create(
        restorer_objs, list(metrics), run_dir, save_images=save_images, device=device
    )
    pairs, unmatched = match_folders(lq_dir, gt_dir)
    pairs = pairs[shard_index::shard_count]
    hashes = {
        image_id: (content_hash(lq_path), content_hash(gt_path))
        for image_id, lq_path, gt_path in pairs
    }
    pairing = PairingSpec(tuple(sorted((i, lq, gt) for i, (lq, gt) in hashes.items())))
    spec = RunSpec.build(restorer_objs, executor.metrics, pairing=pairing)
    extra = {
        "pairs": {"lq_dir": str(Path(lq_dir).resolve()), "gt_dir": str(Path(gt_dir).resolve())}
    }
    store, stored, problems, diff = _start(
        run_dir, spec, restorer_objs, (shard_index, shard_count), device, extra
    )
    labels = list(executor.metrics)
    tasks: list[PairTask] = []
    reused: list[int] = []
    for image_id, lq_path, gt_path in pairs:
        pending, fill = [], []
        for index, r in enumerate(restorer_objs):
            found = stored.get((image_id, "paired", 0, 0, r.label, r.config_hash))
            if found is None or (retry_failed and stored.failed(found)):
                pending.append(index)
            elif not stored.has_all(found, labels):
                fill.append((index, stored.row(found)))
            else:
                reused.append(found)
        if pending or fill:
            image_hash = "/".join(hashes[image_id])
            tasks.append(
                PairTask(image_id, lq_path, gt_path, tuple(pending), image_hash, tuple(fill))
            )
    summary = _summary(run_dir, len(pairs), stored, reused, tasks, labels, diff, problems)
    summary.unmatched = unmatched
    sink = _RowSink(store, summary, flush_every)
    rows = (executor.run_pair(task) for task in tasks)
    _drive(rows, len(tasks), "bench pairs", "pair", sink, progress)
    return summary
