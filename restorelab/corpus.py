"""A corpus is a folder of clean images: a curated Hugging Face imagefolder or any image folder.

A curated folder has ``metadata.jsonl`` (rows with ``file_name`` and ``text``); a plain folder
is scanned recursively. Each image gets a stable ``image_id`` used as a key in result tables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from restorelab.imageio import iter_image_files

METADATA_FILE = "metadata.jsonl"


@dataclass(frozen=True)
class CorpusItem:
    """One clean image of a corpus."""

    image_id: str
    path: Path
    caption: str = ""


def load_corpus(folder: str | os.PathLike) -> list[CorpusItem]:
    """List the images of a curated or plain folder, sorted by ``image_id``.

    The ``image_id`` is the file name without its ending when those are unique in the
    corpus, else the path relative to the folder without its ending.
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
    stems = [Path(item.image_id).name for item in items]
    if len(set(stems)) == len(stems):
        items = [replace(item, image_id=stem) for stem, item in zip(stems, items, strict=True)]
    ids = [item.image_id for item in items]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{folder}: image ids are not unique (same name, other ending?): {dupes}")
    if not items:
        hint = " (did curation reject every image? see rejected.csv)" if metadata.is_file() else ""
        raise ValueError(f"{folder}: no images found{hint}")
    return sorted(items, key=lambda item: item.image_id)
