"""Speed of the degradation zoo against imagecorruptions 1.1.2, one CPU thread, same script.

Runs the 11 ImageNet-C ops × severities 1-5 on a 512² and a 1024² crop of a real photograph
(scikit-image's astronaut, upscaled for 1024²), and reports seconds per op for each library
and their ratio. glass_blur of 1.1.2 is pure Python (seconds per call): it is timed on one
severity and extrapolated to five unless ``--full-glass`` is given. Where CUDA is available
the batched torch path is timed too (images/s at 1024²).

Our noise ops keep the unit noise field of the last call, so the five severities of one
(image, op, seed) share one draw (``restorelab.degradations.noise.unit_field``; the bytes are
the same with and without it). Ours is timed two ways, and both are printed: "grid", the
cache emptied before each run of five severities (one draw per run, as a severity sweep
does), and "cold", the cache emptied before every call (a draw per call, as scattered
single calls do). ``--cold`` makes the cold numbers the headline ratio (and ``speedup`` in
``--json``). Every op of ours runs once before its timings (numba loads its compiled loops).

    .venv/bin/python benchmarks/degradations.py [--repeat 3] [--sizes 512 1024] [--full-glass]
        [--cold] [--json FILE]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from restorelab.config import load_grid  # noqa: E402
from restorelab.degradations import degrade  # noqa: E402
from restorelab.degradations.noise import clear_noise_cache  # noqa: E402
from restorelab.degradations.reference import load_imagecorruptions  # noqa: E402

OPS = load_grid("imagenet-c").degradations  # the 11 ImageNet-C ops


def photo(size: int) -> np.ndarray:
    """The astronaut photo resized (Lanczos) to size × size."""
    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.LANCZOS))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ours_grid(image: np.ndarray, op: str) -> None:
    """Severities 1-5 at seed 0, starting from an empty noise cache (one draw per run)."""
    clear_noise_cache()
    for severity in range(1, 6):
        degrade(image, op, severity, seed=0)


def ours_cold(image: np.ndarray, op: str) -> None:
    """Severities 1-5 at seed 0, the noise cache emptied before every call."""
    for severity in range(1, 6):
        clear_noise_cache()
        degrade(image, op, severity, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--full-glass", action="store_true")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="headline ratio from ours with the noise cache emptied before every call",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--gpu-only", action="store_true", help="only the batched GPU throughput (needs CUDA)"
    )
    args = parser.parse_args()
    if args.gpu_only:
        gpu = gpu_throughput()
        if gpu is None:
            raise SystemExit("--gpu-only: CUDA is not available")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"gpu": gpu}, handle, indent=2)
        return
    cv2.setNumThreads(1)
    ic = load_imagecorruptions()
    results = {
        "machine": platform.processor() or platform.machine(),
        "headline": "cold" if args.cold else "grid",
        "sizes": {},
    }
    for size in args.sizes:
        image = photo(size)
        rows = {}
        for op in OPS:
            ours_cold(image, op)  # load the compiled loops (numba) outside the timings
            grid = best_of(lambda op=op, image=image: ours_grid(image, op), args.repeat)
            cold = best_of(lambda op=op, image=image: ours_cold(image, op), args.repeat)
            if op == "glass_blur" and not args.full_glass:
                one = best_of(
                    lambda op=op, image=image: ic.corrupt(image, severity=1, corruption_name=op), 1
                )
                theirs = one * 5  # severities differ in iterations; severity 1 has 2 of ~2
            else:
                reps = 1 if op == "glass_blur" else args.repeat
                theirs = best_of(
                    lambda op=op, image=image: [
                        ic.corrupt(image, severity=s, corruption_name=op) for s in range(1, 6)
                    ],
                    reps,
                )
            ours = cold if args.cold else grid
            rows[op] = {
                "restorelab_s": ours,
                "restorelab_grid_s": grid,
                "restorelab_cold_s": cold,
                "imagecorruptions_s": theirs,
                "speedup": theirs / ours,
                "speedup_grid": theirs / grid,
                "speedup_cold": theirs / cold,
            }
            print(
                f"{size}² {op:<17} ours {grid * 1000:8.1f} ms (cold {cold * 1000:8.1f})   "
                f"imagecorruptions {theirs * 1000:9.1f} ms   ×{theirs / grid:7.1f} "
                f"(cold ×{theirs / cold:7.1f})",
                flush=True,
            )
        ten = [op for op in OPS if op != "glass_blur"]
        theirs_total = sum(rows[op]["imagecorruptions_s"] for op in ten)
        totals = {}
        for mode in ("grid", "cold"):
            total = sum(rows[op][f"restorelab_{mode}_s"] for op in ten)
            totals[mode] = total
            print(
                f"{size}² ten ops (all but glass_blur), {mode}: ours {total:.3f} s, "
                f"imagecorruptions {theirs_total:.3f} s, ×{theirs_total / total:.1f}",
                flush=True,
            )
        print(flush=True)
        headline = totals["cold" if args.cold else "grid"]
        results["sizes"][size] = {
            "ops": rows,
            "ten_ops_speedup": theirs_total / headline,
            "ten_ops_speedup_grid": theirs_total / totals["grid"],
            "ten_ops_speedup_cold": theirs_total / totals["cold"],
        }
    gpu = gpu_throughput()
    if gpu:
        results["gpu"] = gpu
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


def gpu_throughput() -> dict | None:
    """Batched torch degradations at 1024² on CUDA, images/s per op (None without CUDA)."""
    try:
        import torch

        from restorelab.degradations.torch_ops import TORCH_OPS, degrade_batch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    batch = torch.from_numpy(photo(1024).copy()).permute(2, 0, 1).float().div(255)
    batch = batch.unsqueeze(0).repeat(32, 1, 1, 1).cuda()
    out = {}
    torch.cuda.reset_peak_memory_stats()
    cases = [(op, 3) for op in sorted(TORCH_OPS)]
    cases += [("motion_blur", 10), ("glass_blur", 10), ("jpeg_compression", 10)]
    for op, severity in cases:
        degrade_batch(batch, op, severity, seeds=list(range(32)))
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            degrade_batch(batch, op, severity, seeds=list(range(32)))
        torch.cuda.synchronize()
        rate = 5 * 32 / (time.perf_counter() - start)
        out[f"{op}:{severity}"] = rate
        print(f"GPU 1024² batch 32 {op:<17} s{severity:<2} {rate:8.0f} images/s", flush=True)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"peak GPU memory {peak:.1f} GiB ({torch.cuda.get_device_name()})", flush=True)
    return out


if __name__ == "__main__":
    main()
