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

    done = run_measured(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); exit(3)"],
        timeout=30,
    )
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (3, "out", "err")
    assert done.peak_rss_mb > 1  # an interpreter's few MiB, sampled from /proc
    with pytest.raises(subprocess.TimeoutExpired):
        run_measured([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)
