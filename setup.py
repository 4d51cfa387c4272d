"""Package discovery for the one ``restorelab`` distribution (metadata lives in pyproject.toml).

The code folders are mapped into ``restorelab`` (``benchmark/`` installs as
``restorelab.benchmark``, …). Every folder with an ``__init__.py`` below a mapped folder is a
package, and every other file there (grids, presets, prompt files, dashboard pages, assets) is
package data, so a new subpackage or data file can never be left out of the wheel.
``tests/test_wheel.py`` builds the wheel and checks it.
"""

from __future__ import annotations

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

# distribution package -> source folder (relative to this file)
PACKAGE_ROOTS = {
    "restorelab": "restorelab",
    "restorelab.curation": "curation",
    "restorelab.degradations": "degradations",
    "restorelab.benchmark": "benchmark",
    "restorelab.dashboard": "dashboard",
}
SKIPPED_DIRS = {"__pycache__", ".ipynb_checkpoints"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def discover(roots: dict[str, str]) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """Packages, their folders and their data files (relative to each package's folder)."""
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    package_data: dict[str, list[str]] = {}
    for root_name, root_dir in roots.items():
        for folder, dirs, files in os.walk(root_dir):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            if "__init__.py" not in files:
                continue
            rel = os.path.relpath(folder, root_dir)
            name = root_name if rel == "." else root_name + "." + rel.replace(os.sep, ".")
            if name in packages or (rel != "." and name in roots):
                continue
            packages.append(name)
            package_dir[name] = folder.replace(os.sep, "/")
            data = [f for f in files if not f.endswith((".py", *SKIPPED_SUFFIXES))]
            # non-package subfolders (grids/, pages/, assets/) travel as data, .py files included
            for sub in dirs:
                sub_path = os.path.join(folder, sub)
                if os.path.isfile(os.path.join(sub_path, "__init__.py")):
                    continue
                for inner, inner_dirs, inner_files in os.walk(sub_path):
                    inner_dirs[:] = [d for d in inner_dirs if d not in SKIPPED_DIRS]
                    for f in inner_files:
                        if not f.endswith(SKIPPED_SUFFIXES):
                            data.append(os.path.relpath(os.path.join(inner, f), folder))
            if data:
                package_data[name] = sorted(d.replace(os.sep, "/") for d in data)
    return packages, package_dir, package_data


class CleanBuildPy(build_py):
    """``build_py`` that starts from an empty ``build/lib/restorelab``.

    setuptools reuses ``build/lib`` between builds in one checkout, so a module or data file
    deleted from the sources would otherwise still ship in the next ``pip wheel .``.
    """

    def run(self) -> None:
        for top in sorted({name.split(".")[0] for name in self.packages or ()}):
            shutil.rmtree(os.path.join(self.build_lib, top), ignore_errors=True)
        super().run()


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(here)
    PACKAGES, PACKAGE_DIR, PACKAGE_DATA = discover(PACKAGE_ROOTS)
    # include_package_data=False: the wheel carries exactly what discover() found (MANIFEST.in
    # only shapes the sdist), and setuptools does not mistake data folders such as grids/ for
    # packages left out of `packages`.
    setup(
        packages=PACKAGES,
        package_dir=PACKAGE_DIR,
        package_data=PACKAGE_DATA,
        include_package_data=False,
        cmdclass={"build_py": CleanBuildPy},
    )
