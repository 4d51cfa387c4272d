"""Speed and values of PSNR / SSIM (RGB and Y): ours vs scikit-image vs pyiqa, one CPU thread.

One 1024² pair: scikit-image's astronaut upscaled (bicubic) to 1024², against a blurred, noisy
and JPEG-compressed copy of it. Each implementation scores the same pair; the script prints the
value and the median seconds per pair of each, and the ratio to ours. scikit-image is called
with the convention of ``restorelab.benchmark.metrics.fidelity`` (11x11 Gaussian σ=1.5,
population covariance, data_range=255, float64, unrounded Y) and must give the same values;
pyiqa (if importable; ``psnr``/``psnry``/``ssimc``/``ssim``, i.e. ``test_y_channel``) follows
its own conventions (float32 torch, inputs in [0, 1]), so its values differ slightly.

    .venv/bin/python benchmarks/metrics.py [--repeat 5] [--size 1024] [--json FILE]

``--throughput cuda`` instead measures batched pairs per second of psnr + ssim (RGB) + lpips
(alex) through ``Metric.batch`` on that device (goal ≥ 500 pairs/s at 1024² on a GPU): float64
and float32 fidelity, batches of ``--batch`` pairs. Without LPIPS weights on the machine a
randomly initialised AlexNet stands in (same architecture, so the same time; values
meaningless), and the output says so.

    .venv/bin/python benchmarks/metrics.py --throughput cuda [--size 1024] [--batch 16]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from restorelab.benchmark.metrics import create_metric, rgb_to_y  # noqa: E402
from restorelab.degradations import degrade  # noqa: E402

cv2.setNumThreads(1)


def make_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A real photo at ``size``² and a blurred + noisy + JPEG copy of it."""
    clean = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_CUBIC)
    return clean, degrade(clean, "gaussian_blur:1+gaussian_noise:1+jpeg_compression:1", 1)


def _skimage_ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None) -> float:
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255.0,
            channel_axis=channel_axis,
        )
    )


def implementations() -> dict[str, dict[str, Callable[[np.ndarray, np.ndarray], float]]]:
    """metric → implementation name → ``fn(clean, distorted) -> float``."""
    table: dict[str, dict[str, Callable]] = {
        "psnr": {
            "ours": create_metric("psnr"),
            "scikit-image": lambda a, b: peak_signal_noise_ratio(a, b, data_range=255),
        },
        "psnr_y": {
            "ours": create_metric("psnr_y"),
            "scikit-image": lambda a, b: peak_signal_noise_ratio(
                rgb_to_y(a), rgb_to_y(b), data_range=255
            ),
        },
        "ssim": {
            "ours": create_metric("ssim"),
            "scikit-image": lambda a, b: _skimage_ssim(a.astype(float), b.astype(float), -1),
        },
        "ssim_y": {
            "ours": create_metric("ssim_y"),
            "scikit-image": lambda a, b: _skimage_ssim(rgb_to_y(a), rgb_to_y(b), None),
        },
    }
    if importlib.util.find_spec("pyiqa") is not None:
        import pyiqa
        import torch

        torch.set_num_threads(1)

        def wrap(name: str) -> Callable:
            model = pyiqa.create_metric(name, device=torch.device("cpu"))

            def score(a: np.ndarray, b: np.ndarray) -> float:
                ta = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255.0
                tb = torch.from_numpy(b.copy()).permute(2, 0, 1)[None].float() / 255.0
                with torch.inference_mode():
                    return float(model(tb, ta).item())

            return score

        for ours, theirs in (("psnr", "psnr"), ("psnr_y", "psnry"), ("ssim", "ssimc")):
            table[ours]["pyiqa"] = wrap(theirs)
        table["ssim_y"]["pyiqa"] = wrap("ssim")
    return table


def time_call(fn: Callable, a: np.ndarray, b: np.ndarray, repeat: int) -> tuple[float, float]:
    """(value, median seconds) of ``fn(a, b)`` after one warm-up call."""
    value = fn(a, b)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(a, b)
        times.append(time.perf_counter() - start)
    return float(value), float(np.median(times))


def _lpips_metric(device: str) -> tuple:
    """(lpips Metric, note): the real backbone when present, else a random AlexNet."""
    import tempfile

    import torch
    import torchvision

    from restorelab.weights import MissingWeightsError

    try:
        return create_metric("lpips", device=device), "ImageNet AlexNet"
    except MissingWeightsError:
        folder = Path(tempfile.mkdtemp()) / "hub" / "checkpoints"
        folder.mkdir(parents=True)
        weights = torchvision.models.alexnet(weights=None).state_dict()
        torch.save(weights, folder / "alexnet-owt-7be5be79.pth")
        metric = create_metric("lpips", device=device, weights_dir=str(folder))
        return metric, "random AlexNet (no weights here): timing only"


def throughput(device: str, size: int, batch: int, repeat: int) -> dict:
    """Pairs/s of psnr + ssim + lpips through ``Metric.batch`` on ``device``."""
    import torch

    from restorelab.benchmark.metrics import batched

    clean, distorted = make_pair(size)
    to_batch = lambda image: (  # noqa: E731
        torch.from_numpy(image.copy()).permute(2, 0, 1)[None].repeat(batch, 1, 1, 1).to(device)
    )
    ref, dist = to_batch(clean), to_batch(distorted)
    lpips, note = _lpips_metric(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    unit_ref, unit_dist = ref.double() / 255, dist.double() / 255

    def with_filter(method: str, dtype: torch.dtype) -> Callable:
        def run() -> tuple:
            batched.FILTER_METHOD = method
            try:
                return (
                    batched.psnr_batch(unit_ref, unit_dist, dtype=dtype),
                    batched.ssim_batch(unit_ref, unit_dist, dtype=dtype),
                )
            finally:
                batched.FILTER_METHOD = None

        return run

    cases = {
        "psnr+ssim float64, shifted adds": with_filter("shift", torch.float64),
        "psnr+ssim float64, banded": with_filter("banded", torch.float64),
        "psnr+ssim float32, banded": with_filter("banded", torch.float32),
        "psnr+ssim float64": lambda: (
            batched.psnr_batch(unit_ref, unit_dist),
            batched.ssim_batch(unit_ref, unit_dist),
        ),
        "psnr+ssim float32": lambda: (
            batched.psnr_batch(unit_ref, unit_dist, dtype=torch.float32),
            batched.ssim_batch(unit_ref, unit_dist, dtype=torch.float32),
        ),
        "lpips alex": lambda: lpips.batch(ref, dist),
        "psnr+ssim float64 + lpips": lambda: (
            create_metric("psnr").batch(ref, dist),
            create_metric("ssim").batch(ref, dist),
            lpips.batch(ref, dist),
        ),
    }
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.machine()
    print(f"{name}: {size}² pairs, batches of {batch}; lpips: {note}")
    out = {"device": name, "size": size, "batch": batch, "lpips": note, "pairs_per_s": {}}
    with torch.inference_mode():
        for label, fn in cases.items():
            fn()
            sync()
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            sync()
            rate = repeat * batch / (time.perf_counter() - start)
            out["pairs_per_s"][label] = rate
            print(f"{label:<34} {rate:10.1f} pairs/s", flush=True)
    if device.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--json", default=None, help="Also write the results to this file.")
    parser.add_argument("--throughput", metavar="DEVICE", default=None)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    if args.throughput:
        result = throughput(args.throughput, args.size, args.batch, args.repeat)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(result, handle, indent=2)
        return

    clean, distorted = make_pair(args.size)
    print(f"{platform.processor() or platform.machine()}, one thread, {args.size}² pair")
    results: dict[str, dict] = {}
    for metric, impls in implementations().items():
        results[metric] = {}
        for name, fn in impls.items():
            value, seconds = time_call(fn, clean, distorted, args.repeat)
            results[metric][name] = {"value": value, "seconds": seconds}
        ours = results[metric]["ours"]
        for name, row in results[metric].items():
            row["time_vs_ours"] = row["seconds"] / ours["seconds"]
            row["diff_vs_ours"] = row["value"] - ours["value"]
            print(
                f"{metric:<7} {name:<13} value {row['value']:.10f}  "
                f"(Δ {row['diff_vs_ours']:+.1e})  {row['seconds'] * 1e3:8.1f} ms  "
                f"{row['time_vs_ours']:5.2f}× ours"
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"size": args.size, "repeat": args.repeat, "results": results}, handle)


if __name__ == "__main__":
    main()
