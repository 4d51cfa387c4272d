"""Pairing two folders by file name, as test sets and restorer outputs name their files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restorelab.benchmark.pairing import match_folders, pair_key


def _touch(folder: Path, *names: str) -> None:
    pixel = np.zeros((4, 4, 3), np.uint8)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixel).save(folder / name)


@pytest.mark.parametrize(
    ("name", "key", "side"),
    [
        ("0801x4.png", "0801", "test"),
        ("0801.png", "0801", None),
        ("Canon_001_LR4.png", "canon_001", "test"),
        ("Canon_001_HR.png", "canon_001", "reference"),
        ("DSC_1454_x1.png", "dsc_1454", "reference"),
        ("DSC_1454_x4.png", "dsc_1454", "test"),
        ("0801x4_SR.png", "0801", "test"),
        ("butterfly_gt.png", "butterfly", "reference"),
        ("x4.png", "x4", None),  # a whole name is never stripped
        ("flower.png", "flower", None),
    ],
)
def test_pair_key(name: str, key: str, side: str | None) -> None:
    assert pair_key(Path("root") / name, Path("root")) == (key, side)


def test_div2k_style_folders_and_restorer_outputs(tmp_path: Path) -> None:
    gt, lq, sr = tmp_path / "HR", tmp_path / "LR_x4", tmp_path / "SR"
    _touch(gt, "0801.png", "0802.png", "0803.png")
    _touch(lq, "0801x4.png", "0802x4.png")
    _touch(sr, "0801x4_SR.png", "0802x4_SR.png", "0803x4_SR.png")
    pairs, unmatched = match_folders(lq, gt)
    assert [(i, t.name, r.name) for i, t, r in pairs] == [
        ("0801", "0801x4.png", "0801.png"),
        ("0802", "0802x4.png", "0802.png"),
    ]
    assert unmatched == [f"GT {gt / '0803.png'}"]
    pairs, unmatched = match_folders(sr, gt, labels=("dist", "ref"))
    assert len(pairs) == 3 and unmatched == []


def test_realsr_style_both_sides_in_one_folder(tmp_path: Path) -> None:
    folder = tmp_path / "Canon" / "Test" / "4"
    _touch(folder, "Canon_001_HR.png", "Canon_001_LR4.png", "Canon_002_HR.png")
    _touch(folder, "Canon_002_LR4.png", "Canon_003_HR.png")
    pairs, unmatched = match_folders(folder, folder)
    assert [(i, t.name, r.name) for i, t, r in pairs] == [
        ("Canon_001_HR", "Canon_001_LR4.png", "Canon_001_HR.png"),
        ("Canon_002_HR", "Canon_002_LR4.png", "Canon_002_HR.png"),
    ]
    assert unmatched == [f"LQ {folder / 'Canon_003_HR.png'} (no partner in the same folder)"]


def test_subfolders_pair_by_relative_path(tmp_path: Path) -> None:
    gt, lq = tmp_path / "gt", tmp_path / "lq"
    _touch(gt, "set5/baby.png", "set14/baby.png")
    _touch(lq, "set5/baby_lq.png", "set14/baby_lq.png")
    pairs, unmatched = match_folders(lq, gt)
    assert [i for i, _, _ in pairs] == ["set14/baby", "set5/baby"] and unmatched == []
    assert all(t.parent.name == r.parent.name for _, t, r in pairs)


def test_clashing_names_are_reported(tmp_path: Path) -> None:
    gt, lq = tmp_path / "gt", tmp_path / "lq"
    _touch(gt, "a.png", "a.jpg", "b_hr.png", "b.png")
    _touch(lq, "a_lr.png", "b_lr.png")
    pairs, unmatched = match_folders(lq, gt)
    assert [(i, r.name) for i, _, r in pairs] == [("a", "a.jpg"), ("b_hr", "b_hr.png")]
    # the marked GT file wins over the unmarked one; two unmarked files are a clash
    assert sorted(unmatched) == [
        f"GT {gt / 'a.png'} (same key as a.jpg)",
        f"GT {gt / 'b.png'} (same key as b_hr.png)",
    ]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder not found"):
        match_folders(tmp_path / "nope", tmp_path)
