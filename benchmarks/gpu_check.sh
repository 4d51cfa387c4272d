#!/usr/bin/env bash
# The prepared GPU check of issues 3 and 5, as one device call (3-6 minutes on an H100/H200):
#
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# `.whl/` (git-ignored) must hold the lpips wheel, which the device image lacks:
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux2014_x86_64 -d .whl lpips==0.1.4
# It installs restorelab (no dependencies: the image has torch, numpy, OpenCV, numba,
# scikit-image, xxhash) into /tmp/site, runs the CUDA tests of the batched torch zoo and
# metrics, then the GPU throughput of `benchmarks/degradations.py --gpu-only` (goal ≥ 200
# images/s per op at 1024²) and `benchmarks/metrics.py --throughput cuda` (goal ≥ 500 pairs/s
# for psnr + ssim + lpips at 1024²). Logs and JSON land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/lpips-*.whl || exit 1
python3 -m pip install -q --no-deps --no-build-isolation --no-index --no-compile \
    --target /tmp/site . || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
# -P: the repository root must not shadow the installed package (its restorelab/ folder holds
# the core only; the subpackages are mapped in by the install)
nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -P -m pytest -q -p no:cacheprovider tests/test_torch_ops.py tests/test_metrics_batched.py \
    2>&1 | tee "$OUT/tests.log" | tail -n 15
# device resolution against a real GPU (the bench test needs pandas, absent there)
python3 -P -m pytest -q -p no:cacheprovider tests/test_devices.py -k "not bench" \
    2>&1 | tee "$OUT/tests_devices.log" | tail -n 5
python3 -P benchmarks/degradations.py --gpu-only --json "$OUT/degradations_gpu.json" \
    2>&1 | tee "$OUT/degradations_gpu.log"
python3 -P benchmarks/metrics.py --throughput cuda --size 1024 --batch 16 --repeat 5 \
    --json "$OUT/metrics_gpu.json" 2>&1 | tee "$OUT/metrics_gpu.log"
