"""The restorer registry and the :class:`Restorer` interface every restorer follows.

A restorer maps a degraded RGB ``uint8`` (H, W, 3) image to a restored one of the same shape.
Options are keyword arguments validated against the restorer's declared defaults, and
``config`` / ``config_hash`` identify one configured restorer in result tables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from restorelab.config import parse_spec
from restorelab.degradations.base import to_float, to_uint8
from restorelab.imageio import check_image
from restorelab.registry import Registry


class Restorer:
    """Base class: subclasses set ``name`` and ``defaults`` and implement :meth:`restore_array`.

    Parameters
    ----------
    **options
        Overrides of ``defaults``; an unknown option raises ``ValueError`` listing the valid ones.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: Torch device the restorer runs on ("cpu" for the classical ones).
    device: str = "cpu"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"restorer {self.name!r}: unknown option(s) {unknown}; valid: {valid}")
        self.options: dict[str, Any] = {**self.defaults, **options}

    @property
    def config(self) -> dict[str, Any]:
        """Name and every option value: what identifies this configured restorer."""
        return {"name": self.name, **self.options}

    @property
    def config_hash(self) -> str:
        """Short stable hash of :attr:`config` (12 hex digits)."""
        blob = json.dumps(self.config, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def label(self) -> str:
        """Display name: the name, plus non-default options."""
        changed = {k: v for k, v in self.options.items() if self.defaults.get(k) != v}
        if not changed:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in sorted(changed.items()))

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        """Restore an RGB ``uint8`` image; subclasses implement this."""
        raise NotImplementedError

    def restore(self, image: np.ndarray) -> np.ndarray:
        """Restore ``image`` (RGB ``uint8`` (H, W, 3)); the result has the same shape and dtype."""
        check_image(image, name="degraded image")
        out = self.restore_array(image)
        check_image(out, name=f"{self.name} output")
        if out.shape != image.shape:
            raise ValueError(f"{self.name} returned shape {out.shape}, expected {image.shape}")
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


RESTORERS: Registry[type[Restorer]] = Registry("restorer")


def register_restorer(cls: type[Restorer]) -> type[Restorer]:
    """Class decorator: register a :class:`Restorer` subclass under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a class attribute 'name'")
    return RESTORERS.add(cls.name, cls)


def float_restorer(
    name: str, **defaults: Any
) -> Callable[[Callable[..., np.ndarray]], type[Restorer]]:
    """Register ``fn(image_float01, **options) -> float01`` as a restorer with ``defaults``.

    The wrapper converts ``uint8`` → float64 in [0, 1] and back (clipped, rounded).
    """

    def decorator(fn: Callable[..., np.ndarray]) -> type[Restorer]:
        def restore_array(self: Restorer, image: np.ndarray) -> np.ndarray:
            return to_uint8(fn(to_float(image), **self.options))

        cls = type(
            f"{name.title().replace('_', '')}Restorer",
            (Restorer,),
            {
                "name": name,
                "defaults": dict(defaults),
                "restore_array": restore_array,
                "__doc__": fn.__doc__,
                "__module__": fn.__module__,
                # the decorator binds the class to the function's name: pickle finds it there
                "__qualname__": fn.__qualname__,
            },
        )
        return register_restorer(cls)

    return decorator


def create_restorer(spec: str, **options: Any) -> Restorer:
    """Build a restorer from ``"name"`` or ``"name:key=value,..."`` plus keyword ``options``."""
    name, spec_options = parse_spec(spec)
    return RESTORERS.get(name)(**{**spec_options, **options})


def list_restorers() -> list[str]:
    """Names of all registered restorers."""
    return RESTORERS.names()
