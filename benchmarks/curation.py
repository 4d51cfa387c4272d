"""Wall time and peak memory of ``restorelab curate`` against cleanvision 0.3.7, same photos.

Both tools read the same folder of large photographs, each in its own subprocess, and the
script reports wall time (from process start to exit, imports included) and peak resident
memory of the whole process tree (the sum of RSS over the process and all its children,
polled every 50 ms; PSS, which splits the pages that forked workers share with their parent,
is shown too). Runs alternate between the tools; each is repeated ``--repeat`` times: wall
time best and median, memory median and maximum.

- cleanvision: ``Imagelab(data_path=DIR).find_issues()`` with its default issue types (what
  its README runs; a pool of one process per physical core, 2 here).
- restorelab: ``restorelab curate DIR --out OUT --all --workers 2`` (two analysis threads)
  with the default filters and near-duplicate grouping, first with an empty analysis cache,
  then again with the cache it left (the re-run figure).

The photos: by default the photographs of the Debian/Ubuntu package ``mate-backgrounds``
(``apt-get install -y mate-backgrounds``; :data:`MATE_PHOTOS`, the drawings and renders of the
package left out), or every image of ``--photos DIR``. ``--copies K`` adds K planted variants
of each photo (alternately a 1/3-size copy re-encoded as JPEG q60 and a crop of about 4 % per
side re-encoded as JPEG q95, each a little different), so that near-duplicate grouping has
work. The working folder is built once under a temporary directory (flat, JPEG/PNG files as
they are) and both tools read it.

Needs cleanvision, which is not a dependency of restorelab::

    .venv/bin/pip install cleanvision==0.3.7

Run::

    .venv/bin/python benchmarks/curation.py [--photos DIR] [--copies 4] [--repeat 3]
        [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALL_HINT = (
    "cleanvision is missing: install it into this environment with\n"
    f"    {sys.executable} -m pip install cleanvision==0.3.7"
)
MATE_DIR = Path("/usr/share/backgrounds/mate")
#: The photographs among mate-backgrounds 1.26 (the rest are drawings, renders and a
#: painting: abstract/*, desktop/*).
MATE_PHOTOS = (
    "nature/Aqua.jpg",
    "nature/Blinds.jpg",
    "nature/Dune.jpg",
    "nature/FreshFlower.jpg",
    "nature/Garden.jpg",
    "nature/GreenMeadow.jpg",
    "nature/LadyBird.jpg",
    "nature/RainDrops.jpg",
    "nature/Storm.jpg",
    "nature/TwoWings.jpg",
    "nature/Wood.jpg",
    "nature/YellowFlower.jpg",
)
IMAGE_ENDINGS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
POLL_SECONDS = 0.05
#: Crops (left, top, right, bottom share of the side) of the planted variants, in turn: the
#: 1/3-size JPEG q60 copies and the full-size JPEG q95 crops (4 % per side, or 4 % on some
#: sides), so that no two variants of a photo are the same file.
_THIRD_CROPS = (
    (0.0, 0.0, 0.0, 0.0),
    (0.02, 0.02, 0.02, 0.02),
    (0.03, 0.0, 0.0, 0.03),
    (0.0, 0.03, 0.03, 0.0),
    (0.01, 0.01, 0.03, 0.03),
    (0.03, 0.03, 0.01, 0.01),
)
_FULL_CROPS = (
    (0.04, 0.04, 0.04, 0.04),
    (0.04, 0.0, 0.0, 0.04),
    (0.0, 0.04, 0.04, 0.0),
    (0.02, 0.04, 0.04, 0.02),
    (0.04, 0.02, 0.02, 0.04),
    (0.03, 0.03, 0.03, 0.03),
)
MAX_COPIES = 2 * len(_FULL_CROPS)


# --- the photo folder ------------------------------------------------------------------------


def source_photos(photos: Path | None) -> list[Path]:
    """The photographs to start from."""
    if photos is None:
        found = [MATE_DIR / name for name in MATE_PHOTOS if (MATE_DIR / name).is_file()]
        if not found:
            sys.exit(
                f"no photographs under {MATE_DIR}: `apt-get install -y mate-backgrounds` "
                "or pass --photos DIR"
            )
        return found
    return sorted(p for p in photos.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_ENDINGS)


def _crop(image, shares):
    w, h = image.size
    left, top, right, bottom = shares
    return image.crop(
        (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
    )


def build_folder(photos: list[Path], copies: int, folder: Path) -> dict:
    """Copy the photos into ``folder`` and add the planted variants; returns its size."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    count, pixels, size = 0, 0, 0
    for k, path in enumerate(photos):
        stem = f"{k:03d}-{path.stem}"
        target = folder / f"{stem}{path.suffix.lower()}"
        shutil.copyfile(path, target)
        with Image.open(path) as img:
            image = ImageOps.exif_transpose(img).convert("RGB")
        outputs = [(target, image.size)]
        for j in range(copies):
            if j % 2 == 0:
                variant = _crop(image, _THIRD_CROPS[j // 2])
                variant = variant.resize(
                    (max(1, variant.width // 3), max(1, variant.height // 3)), Image.LANCZOS
                )
                name, quality = f"{stem}-third{j // 2}.jpg", 60
            else:
                variant = _crop(image, _FULL_CROPS[j // 2])
                name, quality = f"{stem}-crop{j // 2}.jpg", 95
            variant.save(folder / name, quality=quality)
            outputs.append((folder / name, variant.size))
        for file, (w, h) in outputs:
            count += 1
            pixels += w * h
            size += file.stat().st_size
    return {"images": count, "megapixels": round(pixels / 1e6, 1), "mb": round(size / 1e6, 1)}


# --- measuring a process tree ----------------------------------------------------------------


def measure(cmd: list[str], *, env: dict | None = None, log: Path | None = None) -> dict:
    """Run ``cmd``; wall seconds and peak RSS / PSS (MB) summed over its process tree."""
    import psutil

    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    started = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    peak_rss = peak_pss = 0
    try:
        while proc.poll() is None:
            rss = pss = 0
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                tree = [proc]
            for member in tree:
                try:
                    info = member.memory_full_info()
                except psutil.Error:
                    continue
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(POLL_SECONDS)
    finally:
        seconds = time.perf_counter() - started
        if log:
            out.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit status {proc.returncode}")
    return {"seconds": seconds, "rss_mb": peak_rss / 2**20, "pss_mb": peak_pss / 2**20}


def cleanvision_cmd(folder: Path) -> list[str]:
    return [
        os.fspath(sys.executable),
        os.fspath(Path(__file__)),
        "--run",
        "cleanvision",
        os.fspath(folder),
    ]


def restorelab_cmd(folder: Path, out: Path, workers: int) -> list[str]:
    script = Path(sys.executable).with_name("restorelab")
    head = [os.fspath(script)] if script.exists() else [sys.executable, "-m", "restorelab"]
    return [
        *head,
        "curate",
        os.fspath(folder),
        "--out",
        os.fspath(out),
        "--all",
        "--workers",
        str(workers),
    ]


def _run_cleanvision(folder: str) -> None:
    from cleanvision import Imagelab

    imagelab = Imagelab(data_path=folder)
    imagelab.find_issues()
    summary = imagelab.issue_summary
    print(summary.to_string())


# --- main ------------------------------------------------------------------------------------


def _stats(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return {
        "best": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "all": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=None, help="folder of photographs")
    parser.add_argument("--copies", type=int, default=4, help="planted variants per photo")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (>= 2)")
    parser.add_argument("--workers", type=int, default=2, help="restorelab analysis workers")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", type=Path, default=None, help="build the folder here, keep it")
    parser.add_argument("--run", nargs=2, metavar=("TOOL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        if args.run[0] != "cleanvision":
            sys.exit(f"unknown --run tool {args.run[0]}")
        _run_cleanvision(args.run[1])
        return
    try:
        import cleanvision
    except ImportError:
        sys.exit(INSTALL_HINT)
    if not 0 <= args.copies <= MAX_COPIES:
        sys.exit(f"--copies must be in 0..{MAX_COPIES}")

    work = args.keep or Path(tempfile.mkdtemp(prefix="curation-bench-"))
    folder = work / "photos"
    shutil.rmtree(folder, ignore_errors=True)
    size = build_folder(source_photos(args.photos), args.copies, folder)
    print(
        f"folder: {size['images']} images, {size['megapixels']} MP, {size['mb']} MB ({folder})",
        flush=True,
    )
    log = work / "tools.log"
    runs: dict[str, list[dict]] = {"cleanvision": [], "restorelab": [], "restorelab_cached": []}
    try:
        for repeat in range(max(1, args.repeat)):
            runs["cleanvision"].append(measure(cleanvision_cmd(folder), log=log))
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            cmd = restorelab_cmd(folder, out, args.workers)
            runs["restorelab"].append(measure(cmd, log=log))
            runs["restorelab_cached"].append(measure(cmd, log=log))
            line = ", ".join(
                f"{name} {r[-1]['seconds']:.2f} s {r[-1]['rss_mb']:.0f} MB"
                for name, r in runs.items()
            )
            print(f"run {repeat + 1}: {line}", flush=True)
        summary = json.loads((work / "out" / "curation.json").read_text())
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    import cv2

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "versions": {"cleanvision": cleanvision.__version__, "opencv": cv2.__version__},
        "folder": size,
        "restorelab_result": {k: summary[k] for k in ("kept", "rejected", "rejection_reasons")},
        "tools": {
            name: {key: _stats(r, key) for key in ("seconds", "rss_mb", "pss_mb")}
            for name, r in runs.items()
        },
    }
    tools = report["tools"]
    cv, rl, rc = (tools[k]["seconds"]["best"] for k in runs)
    cv_med, rl_med, rc_med = (tools[k]["seconds"]["median"] for k in runs)
    report["ratios"] = {
        "cleanvision_over_restorelab_wall": cv / rl,
        "cleanvision_over_restorelab_wall_median": cv_med / rl_med,
        "restorelab_first_over_cached_wall": rl / rc,
        "restorelab_first_over_cached_wall_median": rl_med / rc_med,
        "restorelab_over_cleanvision_peak_rss": (
            tools["restorelab"]["rss_mb"]["max"] / tools["cleanvision"]["rss_mb"]["max"]
        ),
    }
    print(
        f"\n{'tool':<20}{'wall s best':>12}{'median':>8}{'RSS MB median':>15}{'max':>6}"
        f"{'PSS MB median':>15}{'max':>6}"
    )
    for name in runs:
        t = tools[name]
        print(
            f"{name:<20}{t['seconds']['best']:>12.2f}{t['seconds']['median']:>8.2f}"
            f"{t['rss_mb']['median']:>15.0f}{t['rss_mb']['max']:>6.0f}"
            f"{t['pss_mb']['median']:>15.0f}{t['pss_mb']['max']:>6.0f}"
        )
    ratios = report["ratios"]
    print(
        f"\ncleanvision / restorelab wall: {ratios['cleanvision_over_restorelab_wall']:.2f}x "
        f"(medians {ratios['cleanvision_over_restorelab_wall_median']:.2f}x); "
        f"restorelab first / cached: {ratios['restorelab_first_over_cached_wall']:.2f}x "
        f"(medians {ratios['restorelab_first_over_cached_wall_median']:.2f}x); "
        f"restorelab / cleanvision peak RSS (max): "
        f"{ratios['restorelab_over_cleanvision_peak_rss']:.2f}"
    )
    print(f"restorelab kept/rejected: {report['restorelab_result']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
