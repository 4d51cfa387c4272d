"""Where curation reads images from. Each source yields :class:`SourceItem` records lazily,
so memory stays flat however large the source is.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from restorelab.imageio import is_image_file, iter_image_files


@dataclass(frozen=True)
class SourceItem:
    """One candidate image: where it came from and how to read it."""

    source: str
    path: Path

    def read_bytes(self) -> bytes:
        """The encoded file."""
        return self.path.read_bytes()

    def sidecar_caption(self) -> str:
        """Text of a ``.txt`` file beside the image with the same stem (empty when none)."""
        sidecar = self.path.with_suffix(".txt")
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8", errors="replace").strip()
        return ""


def iter_sources(sources: list[str | os.PathLike]) -> Iterator[SourceItem]:
    """Image files of folders (recursive), single files and glob patterns, in a stable order.

    A path that does not exist and matches no glob raises ``FileNotFoundError``; the same
    file reached twice (two overlapping sources) is yielded once.
    """
    seen: set[Path] = set()
    for source in sources:
        text = os.fspath(source)
        path = Path(text)
        if path.is_dir():
            candidates = iter_image_files(path)
        elif path.is_file():
            candidates = iter([path])
        else:
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"source not found: {text}")
            candidates = (Path(m) for m in matches if Path(m).is_file() and is_image_file(m))
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            yield SourceItem(source=str(candidate), path=candidate)
