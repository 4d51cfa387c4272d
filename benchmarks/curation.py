"""Wall time and peak memory of ``restorelab curate`` against cleanvision 0.3.7, same photos.

Both tools read the same folder of large photographs, each in its own subprocess, and the
script reports wall time (from process start to exit, imports included) and peak resident
memory of the whole process tree (the sum of RSS over the process and all its children,
polled every 50 ms; PSS, which splits the pages that forked workers share with their parent,
is shown too). Runs alternate between the tools; each is repeated ``--repeat`` times: wall
time best and median, memory median and maximum. Before the timed runs each tool runs once,
untimed, on two of the images, and all runs get the environment without
``PYTHONDONTWRITEBYTECODE`` (this sandbox sets it): the tools start as on a machine where
they have run before, with their bytecode cached.

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

``--odd`` stores every photo in the form of the folder of issue 14 instead, cycling through
a lossless PNG, an RGBA PNG, a 16-bit PNG, a CMYK JPEG, an EXIF-rotated JPEG and the JPEG
as it is (with ``--large`` the two 8.3 and 17.9 MP ``abstract/Elephants_*.jpg`` photos join
the set): files that cannot be copied, so the export has to encode them.

Needs cleanvision, which is not a dependency of restorelab; install it into this environment
or into a throwaway one and pass its interpreter::

    .venv/bin/pip install cleanvision==0.3.7
    # or: python3 -m venv /tmp/cv && /tmp/cv/bin/pip install cleanvision==0.3.7
    #     ... --cleanvision-python /tmp/cv/bin/python

Run::

    .venv/bin/python benchmarks/curation.py [--photos DIR] [--copies 4] [--repeat 3]
        [--odd] [--large] [--cleanvision-python PY] [--json FILE] [--keep DIR]
    .venv/bin/python benchmarks/curation.py --profile   # per-signal cost on >= 5 MP photos
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

from mate_photos import MATE_DIR, MATE_LARGE, MATE_PHOTOS

INSTALL_HINT = (
    "cleanvision is missing: install it into this environment with\n"
    f"    {sys.executable} -m pip install cleanvision==0.3.7"
)
IMAGE_ENDINGS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
POLL_SECONDS = 0.05
#: The tools run as on a user's machine, with Python's bytecode cache: this sandbox sets
#: ``PYTHONDONTWRITEBYTECODE=1``, under which every run of the editable restorelab compiled
#: its own modules from source (about 50 ms a start) while pip had compiled cleanvision's.
TOOL_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
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


#: Photos of at least 5 MP in mate-backgrounds (8.3 and 17.9 MP).
#: The forms ``--odd`` cycles through.
ODD_FORMS = ("png", "rgba", "png16", "cmyk", "rotated", "jpeg")


def _save_odd(image, path: Path, form: str, source: Path) -> Path:
    """Save ``image`` (RGB PIL) under ``path``'s stem in ``form``; returns the file."""
    import numpy as np
    from PIL import Image

    if form == "png":
        target = path.with_suffix(".png")
        image.save(target)
    elif form == "rgba":
        target = path.with_suffix(".png")
        rgba = image.convert("RGBA")
        rgba.putalpha(255)
        rgba.save(target)
    elif form == "png16":
        target = path.with_suffix(".png")
        grey16 = (np.asarray(image.convert("L"), np.uint16) * 257).astype(np.uint16)
        Image.fromarray(grey16).save(target)
    elif form == "cmyk":
        target = path.with_suffix(".jpg")
        image.convert("CMYK").save(target, quality=95)
    elif form == "rotated":
        target = path.with_suffix(".jpg")
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(target, quality=95, exif=exif)
    else:
        target = path.with_suffix(source.suffix.lower())
        shutil.copyfile(source, target)
    return target


def _crop(image, shares):
    w, h = image.size
    left, top, right, bottom = shares
    return image.crop(
        (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
    )


def build_folder(photos: list[Path], copies: int, folder: Path, *, odd: bool = False) -> dict:
    """Copy the photos into ``folder`` and add the planted variants; returns its size."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    count, pixels, size = 0, 0, 0
    for k, path in enumerate(photos):
        stem = f"{k:03d}-{path.stem}"
        with Image.open(path) as img:
            image = ImageOps.exif_transpose(img).convert("RGB")
        if odd:
            target = _save_odd(image, folder / stem, ODD_FORMS[k % len(ODD_FORMS)], path)
        else:
            target = folder / f"{stem}{path.suffix.lower()}"
            shutil.copyfile(path, target)
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
    """Run ``cmd``; wall seconds, peak RSS / PSS (MB) summed over its process tree, CPU
    seconds (user + system) of the tree, the cores it kept busy on average (CPU / wall) and
    the 1-minute load average when it ended."""
    import resource

    import psutil

    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    # CPU time of the tree (the command and every descendant it waited for): user + system
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children.ru_utime - children_before.ru_utime) + (
        children.ru_stime - children_before.ru_stime
    )
    return {
        "seconds": seconds,
        "rss_mb": peak_rss / 2**20,
        "pss_mb": peak_pss / 2**20,
        "cpu_s": cpu,
        "cores_busy": cpu / seconds,
        "load_average": os.getloadavg()[0],
    }


def versions_for(args: argparse.Namespace) -> dict[str, str | None]:
    """The restorelab interpreters to run: this one, and ``--before-python``'s."""
    versions: dict[str, str | None] = {"restorelab": None}
    if args.before_python:
        versions["before"] = args.before_python
    return versions


def warm_up(
    folder: Path,
    scratch: Path,
    python: str,
    versions: dict[str, str | None],
    workers: int,
    log: Path,
) -> None:
    """Run each tool once, untimed, on two of the folder's images: their modules are
    compiled into Python's bytecode cache and read into the page cache, as on a machine
    where the tool has run before (the timed runs then measure the tool, not its first
    start)."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_ENDINGS)[:2]
    photos = scratch / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for image in images:
        shutil.copyfile(image, photos / image.name)
    with open(log, "ab") as out:
        subprocess.run(cleanvision_cmd(photos, python), env=TOOL_ENV, stdout=out, stderr=out)
        for version, interpreter in versions.items():
            cmd = restorelab_cmd(photos, scratch / f"out-{version}", workers, interpreter)
            subprocess.run(cmd, env=TOOL_ENV, stdout=out, stderr=out)
    shutil.rmtree(scratch, ignore_errors=True)


def cleanvision_cmd(folder: Path, python: str | None = None) -> list[str]:
    return [
        python or os.fspath(sys.executable),
        os.fspath(Path(__file__)),
        "--run",
        "cleanvision",
        os.fspath(folder),
    ]


def restorelab_cmd(
    folder: Path, out: Path, workers: int, python: str | None = None, min_side: int | None = None
) -> list[str]:
    python = python or sys.executable
    script = Path(python).with_name("restorelab")
    head = [os.fspath(script)] if script.exists() else [python, "-m", "restorelab"]
    return [
        *head,
        "curate",
        os.fspath(folder),
        "--out",
        os.fspath(out),
        "--all",
        "--workers",
        str(workers),
        *(["--min-side", str(min_side)] if min_side is not None else []),
    ]


def _run_cleanvision(folder: str) -> None:
    from cleanvision import Imagelab

    imagelab = Imagelab(data_path=folder)
    imagelab.find_issues()
    summary = imagelab.issue_summary
    print(summary.to_string())


# --- per-signal cost --------------------------------------------------------------------------


def profile_signals(paths: list[Path], json_path: Path | None = None, repeat: int = 3) -> dict:
    """Best-of-``repeat`` single-thread seconds of each analysis step on each photo, in ms/MP.

    Also decodes each JPEG at 1/2 and 1/4 size (libjpeg DCT scaling through Pillow's
    ``draft``) and reports how far sharpness and noise then move from their full-resolution
    values: the signals are defined per full-resolution pixel, so they cannot be computed on
    the reduced decode within their tolerance (see docs/PERFORMANCE.md).
    """
    import io

    import cv2
    import numpy as np
    from PIL import Image

    from restorelab.curation import pipeline, provenance, signals
    from restorelab.curation.dedup import fingerprint, working_copy
    from restorelab.curation.selection import embed
    from restorelab.imageio import pixel_hash

    cv2.setNumThreads(1)
    rows = []
    for path in paths:
        data = path.read_bytes()
        for form in ("jpeg", "png"):
            if form == "png":
                pixels = pipeline.decode(data, path.name).pixels
                data_form = pipeline.encode_png(pixels)
            else:
                data_form = data
            timings: dict[str, float] = {}

            def timed(name, fn, *args, timings=timings):
                best = float("inf")
                for _ in range(repeat):
                    start = time.perf_counter()
                    value = fn(*args)
                    best = min(best, time.perf_counter() - start)
                timings[name] = best
                return value

            decoded = timed("decode", pipeline.decode, data_form, path.name, 10**9)
            pixels = decoded.pixels
            y8 = timed("luma", signals.luma, pixels)
            yf = y8.astype("float32")
            timed("sharpness", signals.sharpness, yf)
            timed("noise_sigma", signals.noise_sigma, yf)
            timed("all signals (compute_signals)", signals.compute_signals, decoded, data_form)
            timed("jpeg tables", signals.jpeg_quality, data_form)
            timed("pixel hash (XXH3)", pixel_hash, pixels)
            small = timed("working copy (shrink)", working_copy, pixels)
            timed("fingerprint", fingerprint, small)
            timed("embedding", embed, small)
            timed("tone comb", provenance.tone_comb, pixels)
            timed("whole analysis", pipeline.analyse, data_form, str(path), 10**9, False)
            timed("PNG encode (export: level 1, Huffman, SUB)", pipeline.encode_png, pixels)
            if form == "png":
                timed(
                    "PNG encode (Pillow default 6)",
                    lambda pixels=pixels: Image.fromarray(pixels).save(io.BytesIO(), format="PNG"),
                )
            megapixels = pixels.shape[0] * pixels.shape[1] / 1e6
            row = {"photo": path.name, "form": form, "megapixels": round(megapixels, 1)}
            row["ms_per_mp"] = {k: round(1000 * v / megapixels, 2) for k, v in timings.items()}
            if form == "jpeg":
                full = (signals.sharpness(yf), signals.noise_sigma(yf))
                drafts = {}
                for scale in (2, 4):
                    with Image.open(io.BytesIO(data)) as img:
                        img.draft("RGB", (img.width // scale, img.height // scale))
                        small_rgb = np.asarray(img.convert("RGB"))
                    luma_small = signals.luma(small_rgb).astype("float32")
                    drafts[f"1/{scale}"] = {
                        "sharpness": round(signals.sharpness(luma_small), 3),
                        "noise_sigma": round(signals.noise_sigma(luma_small), 3),
                    }
                row["full_resolution"] = {
                    "sharpness": round(full[0], 3),
                    "noise_sigma": round(full[1], 3),
                }
                row["draft"] = drafts
            rows.append(row)
            print(json.dumps(row), flush=True)
    if json_path:
        json_path.write_text(json.dumps(rows, indent=2))
    return {"rows": rows}


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
    parser.add_argument(
        "--min-side", type=int, default=None, help="restorelab's min_side filter (px; small photos)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--keep", type=Path, default=None, help="build the folder here, keep it")
    parser.add_argument("--odd", action="store_true", help="photos in forms needing a PNG export")
    parser.add_argument("--large", action="store_true", help="add the >= 5 MP mate photos")
    parser.add_argument(
        "--cleanvision-python", default=None, help="interpreter that has cleanvision 0.3.7"
    )
    parser.add_argument(
        "--before-python",
        default=None,
        help="interpreter of another restorelab tree, run interleaved as 'before'",
    )
    parser.add_argument(
        "--profile", action="store_true", help="per-signal cost on the >= 5 MP photos, and exit"
    )
    parser.add_argument("--run", nargs=2, metavar=("TOOL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        if args.run[0] != "cleanvision":
            sys.exit(f"unknown --run tool {args.run[0]}")
        _run_cleanvision(args.run[1])
        return
    if args.profile:
        profile_signals([MATE_DIR / name for name in MATE_LARGE], args.json)
        return
    python = args.cleanvision_python or sys.executable
    found = subprocess.run(
        [python, "-c", "import cleanvision; print(cleanvision.__version__)"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        sys.exit(INSTALL_HINT)
    cleanvision_version = found.stdout.strip()
    if not 0 <= args.copies <= MAX_COPIES:
        sys.exit(f"--copies must be in 0..{MAX_COPIES}")

    work = args.keep or Path(tempfile.mkdtemp(prefix="curation-bench-"))
    folder = work / "photos"
    shutil.rmtree(folder, ignore_errors=True)
    photos = source_photos(args.photos)
    if args.large:
        photos += [MATE_DIR / name for name in MATE_LARGE if (MATE_DIR / name).is_file()]
    size = build_folder(photos, args.copies, folder, odd=args.odd)
    print(
        f"folder: {size['images']} images, {size['megapixels']} MP, {size['mb']} MB ({folder})",
        flush=True,
    )
    log = work / "tools.log"
    warm_up(folder, work / "warm-up", python, versions_for(args), args.workers, log)
    runs: dict[str, list[dict]] = {"cleanvision": [], "restorelab": [], "restorelab_cached": []}
    stages: dict[str, list[dict]] = {"restorelab": [], "restorelab_cached": []}
    versions = versions_for(args)
    if args.before_python:  # another tree's restorelab, interleaved with this one
        runs |= {"before": [], "before_cached": []}
        stages |= {"before": [], "before_cached": []}
    try:
        for repeat in range(max(1, args.repeat)):
            runs["cleanvision"].append(
                measure(cleanvision_cmd(folder, python), env=TOOL_ENV, log=log)
            )
            for version, interpreter in versions.items():
                out = work / "out" if version == "restorelab" else work / f"out-{version}"
                shutil.rmtree(out, ignore_errors=True)
                cmd = restorelab_cmd(folder, out, args.workers, interpreter, args.min_side)
                for name in (version, f"{version}_cached"):
                    runs[name].append(measure(cmd, env=TOOL_ENV, log=log))
                    done = json.loads((out / "curation.json").read_text())
                    stages[name].append(done.get("stage_seconds", {}))
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
        "versions": {"cleanvision": cleanvision_version, "opencv": cv2.__version__},
        "folder": size,
        "restorelab_result": {k: summary[k] for k in ("kept", "rejected", "rejection_reasons")},
        "tools": {
            name: {
                key: _stats(r, key)
                for key in ("seconds", "rss_mb", "pss_mb", "cpu_s", "cores_busy", "load_average")
            }
            for name, r in runs.items()
        },
    }
    report["stage_seconds_median"] = {
        name: {
            stage: statistics.median(run.get(stage, 0.0) for run in done)
            for stage in (done[0] if done else {})
        }
        for name, done in stages.items()
    }
    tools = report["tools"]
    names = ("cleanvision", "restorelab", "restorelab_cached")
    cv, rl, rc = (tools[k]["seconds"]["best"] for k in names)
    cv_med, rl_med, rc_med = (tools[k]["seconds"]["median"] for k in names)
    report["ratios"] = {
        "cleanvision_over_restorelab_wall": cv / rl,
        "cleanvision_over_restorelab_wall_median": cv_med / rl_med,
        "restorelab_first_over_cached_wall": rl / rc,
        "restorelab_first_over_cached_wall_median": rl_med / rc_med,
        "restorelab_over_cleanvision_peak_rss": (
            tools["restorelab"]["rss_mb"]["max"] / tools["cleanvision"]["rss_mb"]["max"]
        ),
    }
    # each round's own ratio: the runs of one round are seconds apart, under about the same
    # load, which the best and median of each tool need not be
    for version in ("restorelab", "before"):
        if version in runs:
            rounds = [
                c["seconds"] / r["seconds"]
                for c, r in zip(runs["cleanvision"], runs[version], strict=True)
            ]
            report["ratios"][f"cleanvision_over_{version}_per_round"] = rounds
            report["ratios"][f"cleanvision_over_{version}_per_round_median"] = statistics.median(
                rounds
            )
            shares = [
                s.get("export", 0.0) / r["seconds"]
                for s, r in zip(stages[version], runs[version], strict=True)
            ]
            report["ratios"][f"{version}_export_share_median"] = statistics.median(shares)
    print(
        f"\n{'tool':<20}{'wall s best':>12}{'median':>8}{'RSS MB median':>15}{'max':>6}"
        f"{'PSS MB median':>15}{'max':>6}{'CPU s median':>14}{'cores busy':>12}"
        f"{'load 1 min':>12}"
    )
    for name in runs:
        t = tools[name]
        print(
            f"{name:<20}{t['seconds']['best']:>12.2f}{t['seconds']['median']:>8.2f}"
            f"{t['rss_mb']['median']:>15.0f}{t['rss_mb']['max']:>6.0f}"
            f"{t['pss_mb']['median']:>15.0f}{t['pss_mb']['max']:>6.0f}"
            f"{t['cpu_s']['median']:>14.2f}{t['cores_busy']['median']:>12.2f}"
            f"{t['load_average']['median']:>12.2f}"
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
    for version in ("restorelab", "before"):
        if f"cleanvision_over_{version}_per_round" in ratios:
            rounds = ratios[f"cleanvision_over_{version}_per_round"]
            print(
                f"cleanvision / {version} per round: "
                + ", ".join(f"{r:.2f}x" for r in rounds)
                + f" (median {statistics.median(rounds):.2f}x); export share of the first run "
                f"(median): {100 * ratios[f'{version}_export_share_median']:.0f} %"
            )
    print(f"restorelab kept/rejected: {report['restorelab_result']}")
    for name, by_stage in report["stage_seconds_median"].items():
        total = tools[name]["seconds"]["median"]
        parts = ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f} %)" for k, v in by_stage.items())
        print(f"{name} stages (median): {parts}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
