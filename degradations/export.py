"""Write a degraded copy of a corpus for every cell of a grid, with a Parquet manifest.

Layout: ``OUT/<degradation>/s<severity>/seed<seed>/<image_id>.png`` (``:`` in chain specs
becomes ``@``), and ``OUT/manifest.parquet`` with one row per (image_id, degradation,
severity, seed): the file, the clean source and its content hash, the level applied, the
parameters actually used (JSON) and any error.

Re-running into the same folder resumes: a file made from the same image content with the same
level is kept; new images, severities, seeds or ops are added. ``OUT/grid.json`` records the
export's spec (the corpus fingerprint and the grid's level per op and severity); a re-run that
would give an existing file name another meaning (other content under an image id, another
level under an op and severity) is refused before any work, naming the difference. A file
listed in the manifest but missing on disk is made again.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from restorelab.corpus import CorpusFingerprint, CorpusItem, load_corpus
from restorelab.degradations.base import degrade_with_params
from restorelab.degradations.grid import Grid
from restorelab.degradations.gridspec import GridSpec
from restorelab.imageio import read_image, write_image
from restorelab.parallel import process_pool
from restorelab.progress import tqdm
from restorelab.results import PartSchema, ResultsStore, write_json_atomic

MANIFEST_KEYS = ("image_id", "degradation", "severity", "seed")
MANIFEST_FILE = "manifest.parquet"
SPEC_FILE = "grid.json"
#: The manifest parts' declared columns.
MANIFEST_SCHEMA = PartSchema(
    format="restorelab-manifest/2",
    key_columns=MANIFEST_KEYS,
    columns=(
        ("image_id", "string"),
        ("degradation", "string"),
        ("severity", "int64"),
        ("seed", "int64"),
        ("file", "string"),
        ("clean_file", "string"),
        ("image_hash", "string"),
        ("level", "string"),
        ("params", "string"),
        ("error", "string"),
    ),
)


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


def _export_image(item: CorpusItem, cells: list[tuple], out: Path, meta: dict) -> list[dict]:
    rows = []
    try:
        clean = read_image(item.path)
    except Exception as exc:  # recorded in the manifest; the export goes on
        error = f"{type(exc).__name__}: {exc}"
        return [_row(item, cell, "", {}, error, meta) for cell in cells]
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
                    meta,
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
                    meta,
                )
            )
    return rows


def _row(item: CorpusItem, cell: tuple, file: str, params: dict, error: str, meta: dict) -> dict:
    """One manifest row; ``meta`` holds ``hashes`` (image id → content hash) and ``spec``."""
    degradation, severity, seed, _ = cell
    spec: GridSpec = meta["spec"]
    return {
        "image_id": item.image_id,
        "degradation": degradation,
        "severity": int(severity),
        "seed": int(seed),
        "file": file,
        "clean_file": str(item.path),
        "image_hash": meta["hashes"].get(item.image_id, ""),
        "level": json.dumps(spec.to_dict()["levels"][degradation][str(int(severity))]),
        "params": json.dumps(params, default=str),
        "error": error,
    }


def _check_spec(out: Path, fingerprint: CorpusFingerprint, spec: GridSpec, has_rows: bool) -> dict:
    """The export spec to store: the union with the stored one; raises ``ValueError`` naming
    every difference when ``out`` holds files that the new spec would give another meaning."""
    path = out / SPEC_FILE
    stored = json.loads(path.read_text(encoding="utf-8")).get("spec") if path.is_file() else None
    new = {"corpus": fingerprint, "grid": spec}
    if stored is None:
        if has_rows:
            raise ValueError(
                f"refused: {out} holds degraded files but no export spec in {SPEC_FILE} (made by "
                "an older restorelab): they cannot be checked against this grid and corpus. "
                f"Nothing was written; use a new --out (e.g. {out}-2)."
            )
        return new
    old_corpus = CorpusFingerprint.from_dict(stored["corpus"])
    old_grid = GridSpec.from_dict(stored["grid"])
    differences = old_corpus.conflicts(fingerprint) + old_grid.conflicts(spec)
    if differences and has_rows:
        lines = "\n  ".join(differences)
        raise ValueError(
            f"refused: {out} holds degraded files made with another set-up; reusing them would "
            f"mix two set-ups under the same file names:\n  {lines}\nNothing was written. Use a "
            f"new --out (e.g. {out}-2), or the grid and corpus the folder was made with."
        )
    if differences:
        return new
    return {"corpus": old_corpus.merged(fingerprint), "grid": old_grid.merged(spec)}


def export_degraded(
    corpus: str | os.PathLike,
    grid: Grid,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    progress: bool = True,
) -> ExportSummary:
    """Degrade every corpus image for every cell of ``grid`` into ``out`` (see module doc).

    Raises ``ValueError`` before any work when ``out`` holds files made from other image
    content or with other levels under the same names.
    """
    out = Path(out)
    items = load_corpus(corpus)
    fingerprint = CorpusFingerprint.of(items, cache=out / ".corpus-hashes.json")
    spec = GridSpec.of(grid)
    store = ResultsStore(out, schema=MANIFEST_SCHEMA, subdir=".manifest-parts")
    raw, problems = store.scan()
    if problems:
        names = "; ".join(str(p) for p in problems)
        raise ValueError(
            f"refused: {len(problems)} manifest part(s) in {store.parts_dir} cannot be used "
            f"({names}); use a new --out"
        )
    stored = store.latest(raw)
    merged = _check_spec(out, fingerprint, spec, not stored.empty)
    done = set()
    for row in stored.to_dict("records"):
        if row["error"] or (out / str(row["file"])).is_file():  # a deleted file is made again
            done.add(tuple(row[k] for k in MANIFEST_KEYS))
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
        out / SPEC_FILE,
        {
            "corpus": str(Path(corpus).resolve()),
            "grid": grid.to_dict(),
            "spec": {"corpus": merged["corpus"].to_dict(), "grid": merged["grid"].to_dict()},
        },
    )
    meta = {"hashes": fingerprint.as_dict(), "spec": spec}
    summary = ExportSummary(out, 0, skipped, [])
    bar = tqdm(total=len(jobs), desc=f"degrade {grid.name}", unit="img", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        pool = process_pool(workers)
        args = [(i, c, out, meta) for i, c in jobs]
        results = pool.map(_export_image, *zip(*args, strict=True))
    else:
        pool = None
        results = (_export_image(item, cells, out, meta) for item, cells in jobs)
    try:
        for rows in results:
            store.append(rows)
            bar.update(1)
            summary.written += sum(1 for r in rows if not r["error"])
            failed = [r for r in rows if r["error"]]
            if (
                len(failed) > 1
                and all(not r["file"] for r in rows)
                and len({r["error"] for r in failed}) == 1
            ):  # the image itself could not be read: one line, not one per cell
                summary.errors.append(
                    f"{failed[0]['image_id']} (all {len(failed)} cells): {failed[0]['error']}"
                )
                continue
            summary.errors += [
                f"{r['image_id']} {r['degradation']}:{r['severity']} seed {r['seed']}: {r['error']}"
                for r in failed
            ]
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    manifest = store.load().sort_values(list(MANIFEST_KEYS)).reset_index(drop=True)
    tmp = out / f".{MANIFEST_FILE}.tmp"
    manifest.to_parquet(tmp, index=False)
    os.replace(tmp, out / MANIFEST_FILE)
    return summary
