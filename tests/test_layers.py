"""Import layers (an AST check, run with the suite so an upward import fails CI).

From the ground up:
1. ``restorelab`` core (image I/O, config, registry, results, devices, weights, …) imports no
   subpackage and nothing of the application layer;
2. ``restorelab.degradations`` and ``restorelab.curation`` import the core only (they are
   independent of each other);
3. ``restorelab.benchmark`` imports the core and ``degradations`` (calibration measures the
   zoo with the metrics, so it lives here);
4. ``restorelab.dashboard`` imports the core and the three subpackages below it;
5. ``restorelab.app`` (CLI, demo, doctor) sits on top and may import anything; nothing
   imports it except ``restorelab/__main__.py``.
Imports inside functions count as much as module-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FOLDERS = {
    "core": ROOT / "restorelab",
    "degradations": ROOT / "degradations",
    "curation": ROOT / "curation",
    "benchmark": ROOT / "benchmark",
    "dashboard": ROOT / "dashboard",
}
# layer -> layers it may import (besides itself)
ALLOWED = {
    "core": set(),
    "degradations": {"core"},
    "curation": {"core"},
    "benchmark": {"core", "degradations"},
    "dashboard": {"core", "degradations", "benchmark", "curation"},
    "app": {"core", "degradations", "curation", "benchmark", "dashboard"},
}


def layer_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "restorelab":
        return None
    if len(parts) == 1:
        return "core"
    if parts[1] in ("degradations", "curation", "benchmark", "dashboard"):
        return parts[1]
    if parts[1] == "app":
        return "app"
    return "core"


def layer_of_file(path: Path) -> str:
    for layer, folder in FOLDERS.items():
        if folder in path.parents:
            if layer == "core" and (FOLDERS["core"] / "app") in path.parents:
                return "app"
            return layer
    raise AssertionError(path)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def source_files() -> list[Path]:
    files = []
    for folder in FOLDERS.values():
        files += [p for p in folder.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def test_layer_contracts_hold() -> None:
    violations = []
    for path in source_files():
        if path == FOLDERS["core"] / "__main__.py":
            continue
        own = layer_of_file(path)
        for lineno, module in imported_modules(path):
            target = layer_of_module(module)
            if target is None or target == own:
                continue
            if target not in ALLOWED[own]:
                rel = path.relative_to(ROOT)
                violations.append(f"{rel}:{lineno}: {own} imports {module} ({target})")
    assert not violations, "upward imports:\n" + "\n".join(sorted(set(violations)))


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("restorelab.imageio", "core"),
        ("restorelab.app.cli", "app"),
        ("restorelab.benchmark.runner", "benchmark"),
        ("numpy", None),
    ],
)
def test_layer_of_module(module: str, expected: str | None) -> None:
    assert layer_of_module(module) == expected


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from restorelab.benchmark import runner\n", encoding="utf-8")
    assert imported_modules(bad) == [
        (2, "restorelab.benchmark"),
        (2, "restorelab.benchmark.runner"),
    ]
