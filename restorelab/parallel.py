"""Worker processes for the long stages (curation analysis, benchmark sweeps, exports).

Workers start from a fork server rather than by forking the caller: the caller may already
run threads (OpenCV, OpenMP in torch, a Streamlit or Jupyter server), and forking a
threaded process can deadlock the child. The fork server is a clean single-threaded process
that imports the heavy modules once and forks each worker from there.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: Imported once in the fork server so that each worker starts without re-importing them.
PRELOAD = (
    "numpy",
    "cv2",
    "PIL.Image",
    "restorelab.degradations",
    "restorelab.curation.pipeline",
    "restorelab.curation.dedup",
    "restorelab.curation.selection",
)


def process_pool(workers: int, **kwargs: Any) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes started from a fork server."""
    try:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
    except ValueError:  # platforms without fork server (Windows): spawn
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, **kwargs)
