"""Peak memory, wall time per stage and ETA honesty of ``restorelab curate`` on a large pool.

Builds (once, cached under ``/tmp/restorelab-pool/``) a pool of ``--pool N`` small images
made from real photographs — the photos of ``mate-backgrounds`` (``/usr/share/backgrounds/
mate``) and a few of ``skimage.data`` — then runs ``restorelab curate POOL --out OUT --target
2600 --min-side 256 --workers 2`` in a subprocess and records:

- peak RSS of the process tree (polled every 0.2 s, and the kernel's high-water mark
  ``VmHWM`` of each process), wall time, ``curation.json``'s ``stage_seconds`` and
  ``near_duplicates`` counts (candidate pairs within the Hamming radius, prefilter
  survivors, aligned and confirmed pairs);
- how well each progress bar's ETA held: the remaining time tqdm predicted when the bar
  passed 10 % (and 50 %) of its total, against the time the bar then actually took;
- that the output has exactly ``--target`` rows in ``metadata.jsonl`` and that every input
  is in ``metadata.jsonl`` or ``rejected.csv``.

The pool: distinct *bases* — each a crop of one of the photos at a random place, scale and
angle (0–360°, mirrored for half of them; never enlarged), 4:3 with a short side of
256–384 px: near-duplicate grouping joins neither rotations nor mirror images nor crops that
share less than about 80 % of their area, so bases are distinct images — and, for about half
of them, 1–3 near-duplicate variants (JPEG q70 re-encode, 0.75× resize at q90, a lossless PNG
copy, a 3 %-per-side crop at q92). Bases are JPEG q95; about 0.57 N bases (1.75 images per
base); the file order is shuffled. Written as a folder (1,000 files per sub-folder) and,
with ``--shards``, as webdataset tar shards of 1,000 samples.

Run (low priority, no lock: the point is memory and scaling)::

    nice -n 10 .venv/bin/python benchmarks/curation_pool.py --pool 10000
    nice -n 10 .venv/bin/python benchmarks/curation_pool.py --pool 100000 --json res.json
    nice -n 10 .venv/bin/python benchmarks/curation_pool.py --pool 10000 --shards
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from mate_photos import MATE_DIR, MATE_LARGE, MATE_PHOTOS

ROOT = Path("/tmp/restorelab-pool")
#: The pool's photographs (the order fixes the pool of a given POOL_VERSION).
POOL_PHOTOS = (*MATE_PHOTOS, MATE_LARGE[1], "desktop/GreenTraditional.jpg")
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")
POOL_VERSION = 3
SHARD_SIZE = 1000
POLL_SECONDS = 0.2


# --- the pool --------------------------------------------------------------------------------


def _photos() -> list[np.ndarray]:
    import cv2

    photos = []
    for name in POOL_PHOTOS:
        path = MATE_DIR / name
        if path.is_file():
            photos.append(cv2.cvtColor(cv2.imread(os.fspath(path)), cv2.COLOR_BGR2RGB))
    from skimage import data

    for name in SKIMAGE_PHOTOS:
        try:
            photos.append(np.ascontiguousarray(getattr(data, name)()[..., :3]))
        except Exception:  # a data file that is not installed
            continue
    out = []
    for photo in photos:  # each with its 1/2 and 1/4 size copies
        pyramid = [photo]
        while min(pyramid[-1].shape[:2]) >= 1024 and len(pyramid) < 3:
            small = pyramid[-1]
            size = (small.shape[1] // 2, small.shape[0] // 2)
            pyramid.append(cv2.resize(small, size, interpolation=cv2.INTER_AREA))
        out.append(pyramid)
    if not out:
        raise SystemExit("no photos: apt-get install -y mate-backgrounds")
    return out


def _base_image(photos: list[list[np.ndarray]], b: int) -> np.ndarray:
    """Base ``b``: a crop of a random photo at a random place, scale and angle (any of
    0–360°, mirrored for half of them), never enlarged; 4:3, short side 256–384 px.

    Near-duplicate grouping joins neither rotations beyond about 2° nor mirror images nor
    crops that share less than about 80 % of their area, and two random crops almost never
    agree on all of place, scale and angle, so bases are distinct images.
    """
    import cv2

    rng = np.random.default_rng([POOL_VERSION, b])
    short = 256 + (b * 37) % 129
    width, height = short * 4 // 3, short
    pyramid = photos[int(rng.integers(len(photos)))]
    h, w = pyramid[0].shape[:2]
    # the rotated output rectangle must fit inside the photo: its diagonal at most the short side
    largest = min(h, w) / math.hypot(width, height)
    scale = float(np.exp(rng.uniform(0.0, math.log(max(largest, 1.0001)))))  # photo px per px
    level = min(len(pyramid) - 1, int(math.log2(max(scale, 1.0))))
    photo, scale = pyramid[level], scale / 2**level
    h, w = photo.shape[:2]
    reach = math.hypot(width, height) * scale / 2
    cx = rng.uniform(reach, max(reach, w - reach))
    cy = rng.uniform(reach, max(reach, h - reach))
    angle = rng.uniform(0.0, 2 * math.pi)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    # output pixel (u, v) -> photo (x, y), about the centres
    matrix = np.array(
        [
            [cos, -sin, cx - cos * width / 2 + sin * height / 2],
            [sin, cos, cy - sin * width / 2 - cos * height / 2],
        ],
        np.float64,
    )
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(photo, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    return out


def _encode(pixels: np.ndarray, kind: str) -> tuple[bytes, str]:
    import cv2

    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if kind == "png":
        _, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        return buf.tobytes(), ".png"
    _, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(kind)])
    return buf.tobytes(), ".jpg"


def _variant(pixels: np.ndarray, kind: int) -> tuple[bytes, str]:
    import cv2

    h, w = pixels.shape[:2]
    if kind == 0:
        return _encode(pixels, "70")
    if kind == 1:
        small = cv2.resize(pixels, (w * 3 // 4, h * 3 // 4), interpolation=cv2.INTER_AREA)
        return _encode(small, "90")
    if kind == 2:
        return _encode(pixels, "png")
    dy, dx = max(1, h * 3 // 100), max(1, w * 3 // 100)
    return _encode(np.ascontiguousarray(pixels[dy : h - dy, dx : w - dx]), "92")


def _images_of(b: int) -> int:
    """Images of base ``b``: itself and 0–3 variants (mean 1.65)."""
    return (1, 1, 2, 3, 4, 1, 2, 1, 2, 1, 3, 1, 2, 1, 1, 2, 1, 3, 2, 1)[b % 20]


def _generate_part(args: tuple) -> list[tuple[int, str, bytes]]:
    photos, items = args
    out = []
    for b, slot in items:
        pixels = _base_image(photos, b)
        data, ext = _encode(pixels, "95")
        out.append((slot[0], ext, data))
        for v, s in enumerate(slot[1:]):
            data, ext = _variant(pixels, (b + v) % 4)
            out.append((s, ext, data))
    return out


def build_pool(n: int, *, shards: bool) -> dict:
    """The folder (and shards) of an ``n``-image pool, built once under :data:`ROOT`."""
    where = ROOT / f"pool-{n}-v{POOL_VERSION}"
    folder, shard_dir, done = where / "folder", where / "shards", where / "complete.json"
    if done.is_file():
        info = json.loads(done.read_text())
        if not shards or info.get("shards"):
            return {**info, "folder": os.fspath(folder), "shards_dir": os.fspath(shard_dir)}
    photos = _photos()
    plan, total, b = [], 0, 0
    while total < n:
        k = min(_images_of(b), n - total)
        plan.append((b, k))
        total, b = total + k, b + 1
    slots = np.random.default_rng(99).permutation(n)
    items, pos = [], 0
    for base, k in plan:
        items.append((base, [int(s) for s in slots[pos : pos + k]]))
        pos += k
    print(f"building {n} images ({len(plan)} bases) in {where}", file=sys.stderr, flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[int, str] = {}
    started = time.perf_counter()
    chunk = 500
    for start in range(0, len(items), chunk):
        for slot, ext, data in _generate_part((photos, items[start : start + chunk])):
            sub = folder / f"p{slot // SHARD_SIZE:03d}"
            sub.mkdir(exist_ok=True)
            name = f"img{slot:06d}{ext}"
            (sub / name).write_bytes(data)
            names[slot] = f"{sub.name}/{name}"
        if start % (chunk * 20) == 0:
            print(f"  {start}/{len(items)} bases", file=sys.stderr, flush=True)
    info = {
        "images": n,
        "bases": len(plan),
        "photos": len(photos),
        "build_seconds": round(time.perf_counter() - started, 1),
        "bytes": sum((folder / names[s]).stat().st_size for s in range(n)),
        "shards": False,
    }
    if shards:
        shard_dir.mkdir(exist_ok=True)
        for k in range(0, n, SHARD_SIZE):
            with tarfile.open(shard_dir / f"shard-{k // SHARD_SIZE:05d}.tar", "w") as tar:
                for s in range(k, min(n, k + SHARD_SIZE)):
                    path = folder / names[s]
                    tar.add(path, arcname=f"{s:06d}{path.suffix}")
        info["shards"] = True
    done.write_text(json.dumps(info, indent=1))
    return {**info, "folder": os.fspath(folder), "shards_dir": os.fspath(shard_dir)}


# --- measuring -------------------------------------------------------------------------------

_BAR = re.compile(
    r"(?P<desc>[\w :.-]+): +(?P<pct>\d+)%\|[^|]*\| *(?P<n>[\d.]+[kMG]?)/(?P<total>[\d.]+[kMG]?)"
    r" \[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:?]+)"
)


def _seconds(text: str) -> float | None:
    if "?" in text:
        return None
    parts = [int(p) for p in text.split(":")]
    value = 0
    for p in parts:
        value = value * 60 + p
    return float(value)


def eta_honesty(stderr: str) -> dict:
    """Per bar: the ETA tqdm showed at 10 % and 50 % against the time the bar then took."""
    bars: dict[str, list[tuple[int, float, float | None]]] = {}
    for piece in re.split(r"[\r\n]", stderr):
        m = _BAR.search(piece)
        if not m:
            continue
        elapsed = _seconds(m["elapsed"])
        bars.setdefault(m["desc"].strip(), []).append(
            (int(m["pct"]), elapsed, _seconds(m["remaining"]))
        )
    report = {}
    for desc, points in bars.items():
        final = points[-1][1]
        entry = {"seconds": final}
        for mark in (10, 50):
            hit = next((p for p in points if p[0] >= mark and p[2] is not None), None)
            if hit is not None and final >= 5:
                actual = final - hit[1]
                entry[f"eta_at_{mark}pct"] = hit[2]
                entry[f"actual_after_{mark}pct"] = actual
        report[desc] = entry
    return report


def _tree_memory(proc) -> tuple[int, int]:
    import psutil

    rss = hwm = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        tree = [proc]
    for member in tree:
        try:
            rss += member.memory_info().rss
            with open(f"/proc/{member.pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        hwm += int(line.split()[1]) * 1024
        except (psutil.Error, OSError, ValueError):
            continue
    return rss, hwm


def run_curate(
    source: str,
    out: Path,
    cache: Path,
    *,
    target: int,
    workers: int,
    pythonpath: str | None,
    radius: int | None = None,
) -> dict:
    import psutil

    script = Path(sys.executable).with_name("restorelab")
    head = [os.fspath(script)] if script.exists() else [sys.executable, "-m", "restorelab"]
    env = dict(os.environ)
    if pythonpath:  # another copy of the code (e.g. a checkout of an earlier commit)
        head = [sys.executable, "-m", "restorelab"]
        env["PYTHONPATH"] = pythonpath
    cmd = [
        *head,
        "curate",
        source,
        "--out",
        os.fspath(out),
        "--cache-dir",
        os.fspath(cache),
        "--target",
        str(target),
        "--min-side",
        "256",
        "--workers",
        str(workers),
    ]
    if radius is not None:
        config = out.parent / "config.yaml"
        config.write_text(f"hamming_radius: {radius}\n")
        cmd += ["--config", os.fspath(config)]
    log = out.parent / f"{out.name}.stderr.txt"
    started = time.perf_counter()
    timeline = []
    live = out.parent / f"{out.name}.rss.tsv"  # the timeline as it goes (seconds, RSS MB)
    with open(log, "wb") as err, open(live, "w") as tsv:
        proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        peak_rss = peak_hwm = 0
        while proc.poll() is None:
            rss, hwm = _tree_memory(proc)
            peak_rss, peak_hwm = max(peak_rss, rss), max(peak_hwm, hwm)
            timeline.append((round(time.perf_counter() - started, 1), rss // 2**20))
            if len(timeline) % 25 == 1:
                tsv.write(f"{timeline[-1][0]}\t{timeline[-1][1]}\t{peak_hwm // 2**20}\n")
                tsv.flush()
            time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    stderr = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    summary = json.loads((out / "curation.json").read_text())
    with open(out / "metadata.jsonl", encoding="utf-8") as handle:
        kept = sum(1 for _ in handle)
    import csv

    with open(out / "rejected.csv", encoding="utf-8", newline="") as handle:
        rejected = sum(1 for _ in csv.DictReader(handle))
    step = max(1, len(timeline) // 60)
    return {
        "command": " ".join(cmd),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "peak_hwm_mb": round(peak_hwm / 2**20, 1),
        "stage_seconds": summary.get("stage_seconds"),
        "near_duplicates": summary.get("near_duplicates"),
        "inputs": summary.get("inputs"),
        "kept": kept,
        "rejected": rejected,
        "accounted": kept + rejected == summary.get("inputs"),
        "rejection_reasons": summary.get("rejection_reasons"),
        "eta": eta_honesty(stderr),
        "rss_timeline_mb": timeline[::step],
    }


def candidates_only(cache: Path, radius: int | None) -> dict:
    """The streamed candidate search alone over the fingerprints in ``cache``: counts,
    seconds and the peak RSS of this process (the fingerprints are written to a
    thumbnail store first, as a curation run does while it analyses)."""
    import pickle
    import sqlite3
    import tempfile

    import psutil

    from restorelab.curation import dedup

    work = Path(tempfile.mkdtemp(dir=cache.parent))
    store = dedup.ThumbnailStore(work / "thumbs")
    db = sqlite3.connect(cache / "analysis.sqlite")
    for (blob,) in db.execute("SELECT record FROM analysis"):
        fp = pickle.loads(blob).get("fingerprint")
        if fp is not None:
            store.append(fp)
    store.flush()
    db.close()
    stats: dict = {}
    members = np.arange(len(store))
    survivors = dedup._PairSpools(work / "pairs", "survivors")
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    r = dedup.DEFAULT_HAMMING_RADIUS if radius is None else radius
    stats.update(candidates=0)
    from tqdm.auto import tqdm

    with tqdm(total=len(members) * (len(members) - 1) // 2, unit_scale=True) as bar:
        dedup._candidates(store, members, r, survivors, stats, bar)
    seconds = time.perf_counter() - started
    with open("/proc/self/status") as handle:
        hwm = next(int(x.split()[1]) for x in handle if x.startswith("VmHWM"))
    result = {
        "images": len(members),
        "radius": r,
        "hash_comparisons": len(members) * (len(members) - 1) // 2,
        "candidates": stats["candidates"],
        "prefilter_passed": len(survivors),
        "seconds": round(seconds, 1),
        "rss_before_mb": round(before / 2**20, 1),
        "peak_hwm_mb": round(hwm / 1024, 1),
        "load": [round(v, 2) for v in os.getloadavg()],
    }
    survivors.close()
    store.close()
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=10000, help="images in the pool")
    parser.add_argument("--target", type=int, default=2600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", action="store_true", help="curate the webdataset shards")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--warm", action="store_true", help="keep the cache of an earlier run")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--pythonpath",
        help="run restorelab from this import path (a tree laid out as the installed package)",
    )
    parser.add_argument("--label", default="", help="suffix of the run folder")
    parser.add_argument(
        "--radius", type=int, help="hamming_radius of the curation config (default: 22)"
    )
    parser.add_argument(
        "--candidates-only",
        action="store_true",
        help="only the near-duplicate candidate search (hashes, prefilter) on the fingerprints "
        "of an earlier run's cache (--warm): counts, seconds, peak memory",
    )
    args = parser.parse_args(argv)
    pool = build_pool(args.pool, shards=args.shards)
    print(json.dumps({k: v for k, v in pool.items()}, indent=1), file=sys.stderr)
    if args.build_only:
        return
    kind = "shards" if args.shards else "folder"
    work = ROOT / f"run-{args.pool}-{kind}{args.label}"
    out, cache = work / "out", work / "cache"
    if not args.warm and not args.candidates_only:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    source = pool["shards_dir"] if args.shards else pool["folder"]
    if args.candidates_only:
        print(json.dumps(candidates_only(cache, args.radius), indent=1))
        return
    load = os.getloadavg()
    result = run_curate(
        source,
        out,
        cache,
        target=args.target,
        workers=args.workers,
        pythonpath=args.pythonpath,
        radius=args.radius,
    )
    result.update(
        pool=args.pool,
        kind=kind,
        load_before=[round(v, 2) for v in load],
        load_after=[round(v, 2) for v in os.getloadavg()],
        code=args.pythonpath or "this checkout",
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    ok = result["kept"] == min(args.target, result["kept"]) and result["accounted"]
    result["exact_target"] = result["kept"] == args.target
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    if not ok:
        raise SystemExit("inputs not all accounted for")
    if math.isnan(result["seconds"]):  # pragma: no cover
        raise SystemExit(1)


if __name__ == "__main__":
    main()
