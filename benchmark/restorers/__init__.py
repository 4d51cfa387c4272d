"""Restorers behind one registry: ``create_restorer("name:key=value")``."""

from restorelab.benchmark.restorers import (  # noqa: F401  (register the restorers)
    classical,
    command,
)
from restorelab.benchmark.restorers.base import (
    RESTORERS,
    Restorer,
    create_restorer,
    float_restorer,
    list_restorers,
    register_restorer,
)

__all__ = [
    "RESTORERS",
    "Restorer",
    "create_restorer",
    "float_restorer",
    "list_restorers",
    "register_restorer",
]
