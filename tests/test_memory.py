"""restorelab.memory: the malloc tuning context is safe to enter, nest and leave."""

from __future__ import annotations

import numpy as np

from restorelab.memory import keep_freed_memory


def test_keep_freed_memory_leaves_results_unchanged() -> None:
    rng = np.random.default_rng(0)
    expected = [float(np.sqrt(rng.random(3_000_000)).sum()) for _ in range(3)]
    rng = np.random.default_rng(0)
    with keep_freed_memory(), keep_freed_memory(64 * 2**20):
        inside = [float(np.sqrt(rng.random(3_000_000)).sum()) for _ in range(3)]
    assert inside == expected
