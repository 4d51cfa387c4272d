"""Write a degraded copy of a corpus for every cell of a grid, with a Parquet manifest.

Layout: ``OUT/<degradation>/s<severity>/seed<seed>/<image_id>.png`` (``:`` in chain specs
becomes ``@``), and ``OUT/manifest.parquet`` with one row per (image_id, degradation,
severity, seed): the file, the clean source, the parameters actually used (JSON) and any
error. Re-running skips what is already written, so an interrupted export resumes.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from restorelab.corpus import CorpusItem, load_corpus
from restorelab.degradations.base import degrade_with_params
from restorelab.degradations.grid import Grid
from restorelab.imageio import read_image, write_image
from restorelab.parallel import process_pool
from restorelab.results import ResultsStore, write_json_atomic

MANIFEST_KEYS = ("image_id", "degradation", "severity", "seed")
MANIFEST_FILE = "manifest.parquet"


@dataclass
class ExportSummary:
    """What :func:`export_degraded` did."""

    out_dir: Path
    written: int
    skipped: int
    errors: list[str]


def degraded_path(out: Path, image_id: str, degradation: str, severity: int, seed: int) -> Path:
    """Where the degraded copy of one cell is written."""
    folder = re.sub(r"[^\w.+-]", "@", degradation)
    return out / folder / f"s{severity}" / f"seed{seed}" / f"{image_id}.png"


def _export_image(item: CorpusItem, cells: list[tuple], out: Path) -> list[dict]:
    rows = []
    try:
        clean = read_image(item.path)
    except Exception as exc:  # recorded in the manifest; the export goes on
        return [_row(item, cell, "", {}, f"{type(exc).__name__}: {exc}") for cell in cells]
    for degradation, severity, seed, levels in cells:
        target = degraded_path(out, item.image_id, degradation, severity, seed)
        try:
            result = degrade_with_params(clean, degradation, severity, seed, levels=levels)
            write_image(target, result.image)
            rows.append(
                _row(
                    item,
                    (degradation, severity, seed, levels),
                    str(target.relative_to(out)),
                    result.params,
                    "",
                )
            )
        except Exception as exc:  # recorded in the manifest; the export goes on
            rows.append(
                _row(
                    item,
                    (degradation, severity, seed, levels),
                    "",
                    {},
                    f"{type(exc).__name__}: {exc}",
                )
            )
    return rows


def _row(item: CorpusItem, cell: tuple, file: str, params: dict, error: str) -> dict:
    degradation, severity, seed, _ = cell
    return {
        "image_id": item.image_id,
        "degradation": degradation,
        "severity": int(severity),
        "seed": int(seed),
        "file": file,
        "clean_file": str(item.path),
        "params": json.dumps(params, default=str),
        "error": error,
    }


def export_degraded(
    corpus: str | os.PathLike,
    grid: Grid,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    progress: bool = True,
) -> ExportSummary:
    """Degrade every corpus image for every cell of ``grid`` into ``out`` (see module doc)."""
    out = Path(out)
    items = load_corpus(corpus)
    store = ResultsStore(out, key_columns=MANIFEST_KEYS, subdir=".manifest-parts")
    done = store.completed_keys()
    jobs, skipped = [], 0
    for item in items:
        cells = []
        for degradation, severity, seed in grid.cells():
            if (item.image_id, degradation, severity, seed) in done:
                skipped += 1
                continue
            cells.append((degradation, severity, seed, grid.levels_for(degradation)))
        if cells:
            jobs.append((item, cells))
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out / "grid.json", {"corpus": str(Path(corpus).resolve()), "grid": grid.to_dict()}
    )
    summary = ExportSummary(out, 0, skipped, [])
    bar = tqdm(total=len(jobs), desc=f"degrade {grid.name}", unit="img", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        pool = process_pool(workers)
        results = pool.map(_export_image, *zip(*[(i, c, out) for i, c in jobs], strict=True))
    else:
        pool = None
        results = (_export_image(item, cells, out) for item, cells in jobs)
    try:
        for rows in results:
            store.append(rows)
            summary.written += sum(1 for r in rows if not r["error"])
            summary.errors += [
                f"{r['image_id']} {r['degradation']}:{r['severity']} seed {r['seed']}: {r['error']}"
                for r in rows
                if r["error"]
            ]
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    manifest = store.load().sort_values(list(MANIFEST_KEYS)).reset_index(drop=True)
    tmp = out / f".{MANIFEST_FILE}.tmp"
    manifest.to_parquet(tmp, index=False)
    os.replace(tmp, out / MANIFEST_FILE)
    return summary
