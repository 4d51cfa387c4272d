"""``restorelab doctor``: what this installation can do, and how to get what it lacks."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass

from restorelab.environment import gpu_info, hardware_info, package_version
from restorelab.weights import WEIGHTS


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    section: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


#: Optional extras: (name, distribution that marks it installed, what it enables, install hint)
EXTRAS = (
    (
        "iqa",
        "pyiqa",
        "no-reference metrics (NIQE, MUSIQ, CLIPIQA, MANIQA); PolyForm-Noncommercial licence",
        "pip install 'restorelab[iqa]'",
    ),
    ("notebooks", "jupyterlab", "the walkthrough notebooks", "pip install 'restorelab[notebooks]'"),
    ("dev", "pytest", "the test suite", "pip install -e '.[dev]'"),
)


def run_checks() -> list[Check]:
    """Every check of the report, in display order."""
    hw = hardware_info()
    checks = [
        Check("system", "python", True, f"{hw['python']} on {hw['platform']}"),
        Check("system", "cpu", True, f"{hw['cpu_count']} cores"),
    ]
    gpu = gpu_info()
    torch_version = gpu.get("torch")
    checks.append(
        Check(
            "system",
            "torch",
            torch_version is not None,
            f"{torch_version} (CUDA build {gpu.get('cuda_build')})"
            if torch_version
            else "not installed",
            "pip install torch",
        )
    )
    if gpu["cuda_available"]:
        names = ", ".join(f"{d['name']} ({d['memory_gib']} GiB)" for d in gpu["devices"])
        checks.append(Check("system", "gpu", True, names))
    else:
        checks.append(
            Check(
                "system",
                "gpu",
                False,
                "no CUDA device visible; GPU restorers and "
                "batched GPU metrics fall back to the CPU or are unavailable",
                "run on a machine with an NVIDIA GPU and a CUDA build of torch",
            )
        )
    for package in ("diffusers", "peft", "transformers", "lpips", "streamlit", "datasets"):
        version = package_version(package)
        checks.append(
            Check(
                "packages",
                package,
                version is not None,
                version or "not installed",
                f"pip install {package}",
            )
        )
    for extra, dist, what, hint in EXTRAS:
        # find_spec only locates the package: pyiqa is never imported by core code.
        present = importlib.util.find_spec(dist.replace("-", "_")) is not None
        checks.append(
            Check(
                "extras",
                extra,
                present,
                f"{dist} {package_version(dist) or ''}: {what}".replace("  ", " "),
                hint,
            )
        )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    checks.append(
        Check(
            "extras",
            "chromium",
            chromium is not None,
            chromium or "not found: browser test of the dashboard is skipped",
            "apt-get install -y chromium",
        )
    )
    for spec in WEIGHTS.values():
        path = spec.locate()
        problem = spec.verify(path) if path is not None and spec.verify else None
        if path is None:
            detail = f"{spec.description}: missing ({spec.expected}); needed for {spec.needed_for}"
        elif problem:
            detail = f"{spec.description}: {path} is incomplete ({problem})"
        else:
            detail = f"{spec.description}: {path}"
        checks.append(
            Check("weights", spec.key, path is not None and not problem, detail, spec.how_to_get)
        )
    return checks


def format_report(checks: list[Check]) -> str:
    """Plain-text report: one line per check, grouped by section, with a fix for each miss."""
    lines, section = [], None
    for check in checks:
        if check.section != section:
            section = check.section
            lines.append(f"\n[{section}]")
        mark = "ok " if check.ok else "-- "
        lines.append(f"  {mark} {check.name:<22} {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"      how to get it: {check.fix}")
    missing = sum(not c.ok for c in checks)
    lines.append(f"\n{len(checks) - missing} ok, {missing} missing or unavailable")
    return "\n".join(lines).lstrip("\n")
