"""Layout: one `restorelab` distribution, subpackages mapped from top-level folders."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("module", "folder"),
    [
        ("restorelab.curation", "curation"),
        ("restorelab.degradations", "degradations"),
        ("restorelab.benchmark", "benchmark"),
        ("restorelab.dashboard", "dashboard"),
    ],
)
def test_subpackages_live_in_top_level_folders(module: str, folder: str) -> None:
    mod = importlib.import_module(module)
    assert Path(mod.__file__).resolve().parent == ROOT / folder


def test_no_generic_top_level_names_are_importable(tmp_path: Path) -> None:
    code = (
        "import importlib.util as u; "
        "print([n for n in ('benchmark', 'curation', 'degradations', 'dashboard') "
        "if u.find_spec(n)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_packaged_grid_file_is_found() -> None:
    from restorelab.degradations.grid import packaged_grids

    assert "mini" in packaged_grids()
