"""A regular (non-editable) install: sdist → wheel, checked file by file and imported in isolation.

The sdist is built from a copy of the checkout (PEP 517 ``build_sdist``), the wheel from the
unpacked sdist with ``pip wheel --no-index --no-deps --no-build-isolation`` (no network, the
build tools of this environment), the way an index install gets it. What the wheel must carry is
worked out here from the source tree, not from ``setup.py``: ``restorelab/`` is the package
``restorelab``, every other top-level folder with an ``__init__.py`` (``tests/`` aside) installs
as ``restorelab.<folder>``, and every file below them (Python or data) must be in the wheel at
the matching place. The modules are then imported by a ``python -I -S`` subprocess whose
``sys.path`` holds the unpacked wheel and the dependencies' site-packages folders only, so the
editable install (its ``.pth`` meta-path finder) and the checkout cannot answer.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {"__pycache__", ".ipynb_checkpoints"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# what a checkout without git holds besides the sources (build outputs, environments, caches)
NOT_SOURCES = {".git", ".venv", "build", "dist", "runs", ".pytest_cache", ".ruff_cache"}
DIST_NAME = "restorelab"


def source_version() -> str:
    """The version as written in ``restorelab/_version.py`` (read as text, not imported)."""
    text = (ROOT / "restorelab" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    assert match, "restorelab/_version.py does not set __version__"
    return match.group(1)


def checkout_files() -> list[str]:
    """Files of the checkout (posix paths relative to the root): git's tracked and untracked
    but not ignored files, or, outside a git checkout (an unpacked sdist), every file."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [f for f in out.split("\0") if f and (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for folder, dirs, names in os.walk(ROOT):
            dirs[:] = [
                d
                for d in dirs
                if d not in NOT_SOURCES | SKIPPED_DIRS and not d.endswith(".egg-info")
            ]
            files += [os.path.relpath(os.path.join(folder, n), ROOT) for n in names]
        files = [f.replace(os.sep, "/") for f in files]
    return sorted(
        f
        for f in files
        if not f.endswith(SKIPPED_SUFFIXES) and not SKIPPED_DIRS & set(f.split("/")[:-1])
    )


def shipped_folders() -> dict[str, str]:
    """Top-level source folder -> its wheel folder (``benchmark``: ``restorelab/benchmark``).

    Found without setup.py: ``restorelab/`` and every other top-level folder with an
    ``__init__.py`` except ``tests/``, so a new top-level subpackage must reach the wheel too.
    """
    folders = {}
    for child in sorted(ROOT.iterdir()):
        if child.is_dir() and child.name != "tests" and (child / "__init__.py").is_file():
            folders[child.name] = (
                "restorelab" if child.name == "restorelab" else f"restorelab/{child.name}"
            )
    assert "restorelab" in folders, folders
    return folders


def expected_wheel_files(files: list[str]) -> set[str]:
    """Every file below a shipped folder, at its place in the wheel."""
    folders = shipped_folders()
    expected = set()
    for f in files:
        top, _, rest = f.partition("/")
        if rest and top in folders:
            expected.add(f"{folders[top]}/{rest}")
    return expected


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """sdist from a copy of the checkout, wheel from the unpacked sdist, wheel unpacked."""
    tmp = tmp_path_factory.mktemp("wheel")
    files = checkout_files()
    src = tmp / "src"
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    sdist_dir = tmp / "sdist"
    sdist = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
            str(sdist_dir),
        ],
        cwd=src,
        capture_output=True,
        text=True,
    )
    assert sdist.returncode == 0, sdist.stdout + sdist.stderr
    sdist_path = sdist_dir / sdist.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist_path) as tar:
        sdist_names = tar.getnames()
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp / "sdist-unpacked", **safe)
    (sdist_root,) = (tmp / "sdist-unpacked").iterdir()
    wheel_dir = tmp / "dist"
    build = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", str(sdist_root), "--no-index", "--no-deps"),
            *("--no-build-isolation", "--disable-pip-version-check", "-w", str(wheel_dir)),
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, log
    (wheel_path,) = wheel_dir.glob("*.whl")
    unpacked = tmp / "wheel-unpacked"
    with zipfile.ZipFile(wheel_path) as wheel:
        wheel_names = wheel.namelist()
        wheel.extractall(unpacked)
    return {
        "files": files,
        "sdist": sdist_path,
        "sdist_names": sdist_names,
        "wheel": wheel_path,
        "wheel_names": wheel_names,
        "unpacked": unpacked,
        "log": log,
        "tmp": tmp,
    }


def run_from_wheel(built: dict, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in ``python -I -S`` with only the unpacked wheel and the dependencies'
    site-packages on ``sys.path`` (no .pth files, so no editable finder; no checkout)."""
    deps = [
        p
        for p in sys.path
        if p and {"site-packages", "dist-packages"} & set(Path(p).parts) and Path(p).is_dir()
    ]
    prelude = (
        "import json, sys\n"
        "sys.path[:0] = [sys.argv[1]]\n"
        "sys.path += json.loads(sys.argv[2])\n"
        "del sys.argv[1:3]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            prelude + code,
            str(built["unpacked"]),
            json.dumps(deps),
            *args,
        ],
        cwd=built["tmp"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_sdist_carries_the_sources_tests_and_docs(built: dict) -> None:
    version = source_version()
    assert built["sdist"].name == f"{DIST_NAME}-{version}.tar.gz"
    prefix = f"{DIST_NAME}-{version}/"
    names = {n[len(prefix) :] for n in built["sdist_names"] if n.startswith(prefix)}
    wanted = {
        f
        for f in built["files"]
        if f.split("/")[0] in {*shipped_folders(), "tests", "docs"}
        or f in {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in"}
    }
    assert "tests/test_wheel.py" in wanted and any(f.startswith("docs/") for f in wanted)
    missing = sorted(wanted - names)
    assert not missing, f"the sdist lacks {len(missing)} files: {missing[:20]}"
    assert (
        f"Version: {version}" in (built["tmp"] / "sdist-unpacked" / prefix / "PKG-INFO").read_text()
    )


def test_wheel_carries_every_module_and_data_file(built: dict) -> None:
    version = source_version()
    assert built["wheel"].name == f"{DIST_NAME}-{version}-py3-none-any.whl"
    dist_info = f"{DIST_NAME}-{version}.dist-info/"
    shipped = {
        n for n in built["wheel_names"] if not n.startswith(dist_info) and not n.endswith("/")
    }
    expected = expected_wheel_files(built["files"])
    assert any(n.endswith(".yaml") for n in expected), "no data files found in the source tree"
    missing, extra = sorted(expected - shipped), sorted(shipped - expected)
    assert not missing, f"the wheel lacks {len(missing)} files of the source folders: {missing}"
    assert not extra, f"the wheel has files that are not in the source folders: {extra}"
    metadata = (built["unpacked"] / dist_info / "METADATA").read_text(encoding="utf-8")
    assert f"Version: {version}" in metadata.splitlines()
    # setuptools says so when a data folder (grids/, pages/, …) is taken for a forgotten package
    assert "is absent from the `packages` configuration" not in built["log"]


def test_every_module_imports_from_the_unpacked_wheel(built: dict) -> None:
    unpacked: Path = built["unpacked"]
    modules = []
    for path in sorted((unpacked / "restorelab").rglob("*.py")):
        if not (path.parent / "__init__.py").is_file():
            continue  # a .py file in a data folder (for example a Streamlit page)
        parts = path.relative_to(unpacked).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert {"restorelab.benchmark.metrics", "restorelab.app.cli"} <= set(modules)
    code = (
        "import importlib, os\n"
        "wheel_dir = os.path.realpath(sys.path[0]) + os.sep\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "elsewhere = sorted(\n"
        "    n for n, m in list(sys.modules.items())\n"
        "    if n.split('.')[0] == 'restorelab' and getattr(m, '__file__', None)\n"
        "    and not os.path.realpath(m.__file__).startswith(wheel_dir))\n"
        "editable = [repr(f) for f in sys.meta_path if 'editable' in repr(f).lower()]\n"
        "print('RESULT ' + json.dumps({'failed': failed, 'elsewhere': elsewhere,\n"
        "                              'editable': editable}))\n"
    )
    proc = run_from_wheel(built, code, json.dumps(modules))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["editable"] == [], "the editable install's finder leaked into the subprocess"
    assert result["elsewhere"] == [], f"modules not loaded from the wheel: {result['elsewhere']}"
    assert result["failed"] == {}, f"modules that fail to import from the wheel: {result['failed']}"


def test_command_line_and_dashboard_resolve_from_the_wheel(built: dict) -> None:
    dist_info = built["unpacked"] / f"{DIST_NAME}-{source_version()}.dist-info"
    entry_points = configparser.ConfigParser()
    entry_points.read(dist_info / "entry_points.txt")
    script = entry_points["console_scripts"]["restorelab"]
    assert script == "restorelab.app.cli:main"
    call_script = (
        "import importlib\n"
        "module, _, attr = sys.argv[1].partition(':')\n"
        "sys.argv = ['restorelab', *sys.argv[2:]]\n"
        "getattr(importlib.import_module(module), attr)()\n"
    )
    helped = run_from_wheel(built, call_script, script, "--help")
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "Usage: restorelab" in helped.stdout and "dashboard" in helped.stdout
    listed = run_from_wheel(built, call_script, script, "list")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "degradations:" in listed.stdout
    grids = [line for line in listed.stdout.splitlines() if line.startswith("grids:")]
    assert grids and "mini" in grids[0] and "realesrgan" in grids[0], listed.stdout[-2000:]
    as_module = run_from_wheel(
        built,
        "import runpy\nsys.argv = ['restorelab', '--help']\n"
        "runpy.run_module('restorelab', run_name='__main__', alter_sys=True)\n",
    )
    assert as_module.returncode == 0 and "Usage:" in as_module.stdout, as_module.stderr[-3000:]
    app = run_from_wheel(
        built, "from restorelab.app.cli import dashboard_app_file\nprint(dashboard_app_file())\n"
    )
    assert app.returncode == 0, app.stderr[-3000:]
    app_file = Path(app.stdout.strip().splitlines()[-1])
    assert app_file.is_file() and app_file.name == "app.py"
    assert app_file.resolve().is_relative_to(built["unpacked"].resolve())
