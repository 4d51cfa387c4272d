"""The degradation zoo: ``degrade(image, name, severity, seed)`` on RGB ``uint8`` images.

Each op lives in its own module and registers itself in :data:`DEGRADATIONS`; severity
tables are data (``get_degradation(name).levels``). Grids of ops × severities × seeds ship as
YAML files in ``grids/`` and load by name with :func:`load_grid`.
"""

from restorelab.degradations import blur, digital, noise, realesrgan  # noqa: F401  (register the ops)
from restorelab.degradations.base import (
    DEGRADATIONS,
    Degradation,
    DegradationResult,
    degrade,
    degrade_with_params,
    get_degradation,
    is_stochastic,
    list_degradations,
    op_rng,
    register_degradation,
    rng_for,
)
from restorelab.degradations.grid import Grid, load_grid, packaged_grids

__all__ = [
    "DEGRADATIONS",
    "Degradation",
    "DegradationResult",
    "Grid",
    "degrade",
    "degrade_with_params",
    "get_degradation",
    "is_stochastic",
    "list_degradations",
    "load_grid",
    "op_rng",
    "packaged_grids",
    "register_degradation",
    "rng_for",
]
