"""Restorers behind one registry: ``create_restorer("name:key=value")``."""

from restorelab.benchmark.restorers import (  # noqa: F401  (register the restorers)
    classical,
    command,
    sdxl,
)
from restorelab.benchmark.restorers.base import (
    RESTORERS,
    RestoreContext,
    Restorer,
    create_restorer,
    float_restorer,
    list_restorers,
    register_restorer,
)

__all__ = [
    "RESTORERS",
    "RestoreContext",
    "Restorer",
    "create_restorer",
    "float_restorer",
    "list_restorers",
    "register_restorer",
]
