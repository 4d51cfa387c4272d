"""restorelab.memory: the malloc tuning context is safe to enter, nest and leave."""

from __future__ import annotations

import numpy as np
import pytest

from restorelab.memory import keep_freed_memory


def test_keep_freed_memory_leaves_results_unchanged() -> None:
    rng = np.random.default_rng(0)
    expected = [float(np.sqrt(rng.random(3_000_000)).sum()) for _ in range(3)]
    rng = np.random.default_rng(0)
    with keep_freed_memory(), keep_freed_memory(64 * 2**20):
        inside = [float(np.sqrt(rng.random(3_000_000)).sum()) for _ in range(3)]
    assert inside == expected


def test_run_measured_output_exit_code_and_timeout() -> None:
    import subprocess
    import sys

    from restorelab.memory import run_measured

    code = (
        "import sys, time; block = b'x' * 2**27; time.sleep(0.2); print('out'); "
        "print('err', file=sys.stderr); exit(3)"
    )
    done = run_measured([sys.executable, "-c", code], timeout=30)
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (3, "out", "err")
    assert 128 <= done.peak_rss_mb < 300  # its 128 MiB block and an interpreter, not ours
    with pytest.raises(subprocess.TimeoutExpired):
        run_measured([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)


def test_keep_freed_memory_for_threads_leaves_results_unchanged() -> None:
    """``threads=True`` (new threads allocate from the main heap) changes no result; run in
    a child process, since glibc keeps the arena limit for the rest of a process."""
    import subprocess
    import sys

    code = """
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from restorelab.memory import keep_freed_memory

def work(seed):
    rng = np.random.default_rng(seed)
    return [float(np.sqrt(rng.random(10_000_000)).sum()) for _ in range(2)]

expected = [work(seed) for seed in range(4)]
with keep_freed_memory(threads=True), ThreadPoolExecutor(2) as pool:
    inside = list(pool.map(work, range(4)))
after = [work(seed) for seed in range(4)]
assert inside == expected == after, (inside, expected)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
