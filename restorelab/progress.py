"""Progress bars: tqdm's notebook widget inside Jupyter, its text bar (with rate and ETA)
anywhere else — what ``tqdm.auto`` picks, without the asyncio subclass it mixes in, which
imported asyncio and ssl into every command (about 15 ms of each start-up) for async
iteration that nothing here uses."""

from __future__ import annotations

import warnings

from tqdm.std import TqdmExperimentalWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=TqdmExperimentalWarning)
    from tqdm.autonotebook import tqdm

__all__ = ["tqdm"]
