"""Pairing the images of two folders by file name: ``restorelab score`` folders, ``bench --pairs``.

Test sets and restorer outputs name the two sides of a pair differently: DIV2K ``0801x4.png``
/ ``0801.png``, RealSR ``Canon_001_LR4.png`` / ``Canon_001_HR.png`` (both in one folder),
DRealSR ``DSC_1454_x4.png`` / ``DSC_1454_x1.png``, restorer outputs ``0801x4_SR.png``. A pair
is two files with the same *key*: the path relative to its folder, without the extension, in
lower case, and without trailing side markers (``x4``, ``_LR4``, ``_HR``, ``_lq``, ``_gt``,
``_SR``; up to two, so ``0801x4_SR`` becomes ``0801``).

When several files of one folder share a key (both sides in one folder, as RealSR ships
them), each side takes the file whose marker names that side, then an unmarked one; a file
marked for the other side is used only when it is the only candidate.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from restorelab.imageio import iter_image_files

_MARKER = re.compile(r"[_-]?(x\d+|lr\d*|hr\d*|lq|gt|sr)$", re.IGNORECASE)
_MAX_MARKERS = 2

#: Which side a marker names: ``"reference"`` (ground truth) or ``"test"`` (degraded/restored).
REFERENCE, TEST = "reference", "test"


def _marker_side(marker: str) -> str:
    marker = marker.lower()
    if marker in ("gt", "x1") or marker.startswith("hr"):
        return REFERENCE
    return TEST


def pair_key(path: Path, folder: Path) -> tuple[str, str | None]:
    """The pairing key of ``path`` inside ``folder`` and the side its name marks (or None).

    >>> pair_key(Path("set/Canon_001_LR4.png"), Path("set"))
    ('canon_001', 'test')
    """
    stem = path.stem
    side = None
    for _ in range(_MAX_MARKERS):
        match = _MARKER.search(stem)
        if match is None or match.start() == 0:  # never strip a whole name
            break
        side = side or _marker_side(match.group(1))
        stem = stem[: match.start()]
    parent = path.parent.relative_to(folder).as_posix()
    key = stem if parent == "." else f"{parent}/{stem}"
    return key.lower(), side


class Pairing(NamedTuple):
    """Matched files of two folders (unpacks as ``pairs, unmatched``).

    ``pairs`` holds ``(image_id, test_path, reference_path)`` sorted by image id, the
    reference file's relative path without extension; ``unmatched`` holds one
    ``"<LABEL> <path>"`` line per file without a partner or sharing its key with another
    file of the same side.
    """

    pairs: list[tuple[str, Path, Path]]
    unmatched: list[str]


def match_folders(
    test_dir: str | os.PathLike,
    reference_dir: str | os.PathLike,
    *,
    labels: tuple[str, str] = ("LQ", "GT"),
) -> Pairing:
    """Pair the images of ``test_dir`` (degraded or restored) with those of ``reference_dir``.

    Both folders are searched recursively and may be the same folder. ``labels`` name the
    test and reference side in ``unmatched``. Raises FileNotFoundError for a missing folder.
    """
    test_dir, reference_dir = Path(test_dir), Path(reference_dir)
    for folder in (test_dir, reference_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"folder not found: {folder}")
    same_folder = test_dir.resolve() == reference_dir.resolve()
    unmatched: list[str] = []

    def index(folder: Path, side: str, label: str) -> dict[str, Path]:
        candidates: dict[str, list[tuple[int, Path]]] = {}
        for path in iter_image_files(folder):
            key, marked = pair_key(path, folder)
            rank = 0 if marked == side else (1 if marked is None else 2)
            candidates.setdefault(key, []).append((rank, path))
        chosen: dict[str, Path] = {}
        for key, found in candidates.items():
            found.sort(key=lambda item: item[0])  # stable: file order within a rank
            chosen[key] = found[0][1]
            for rank, path in found[1:]:
                if not (same_folder and rank == 2):  # the other side's file, expected here
                    unmatched.append(f"{label} {path} (same key as {found[0][1].name})")
        return chosen

    test = index(test_dir, TEST, labels[0])
    reference = index(reference_dir, REFERENCE, labels[1])
    pairs = []
    for key in sorted(set(test) & set(reference)):
        if test[key] == reference[key]:  # one folder holding only one side of this key
            unmatched.append(f"{labels[0]} {test[key]} (no partner in the same folder)")
            continue
        image_id = reference[key].relative_to(reference_dir).with_suffix("").as_posix()
        pairs.append((image_id, test[key], reference[key]))
    if not same_folder:
        unmatched += [f"{labels[0]} {test[k]}" for k in sorted(set(test) - set(reference))]
        unmatched += [f"{labels[1]} {reference[k]}" for k in sorted(set(reference) - set(test))]
    pairs.sort()
    return Pairing(pairs, unmatched)
