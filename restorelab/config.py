"""Configuration as data: YAML stage configs and ``name:key=value`` specs, validated up front.

Every error names the file, the key and the fix; configs round-trip through ``to_dict``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names where and why."""


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping from ``path``; raise :class:`ConfigError` on anything else."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    import yaml  # here, not at import: most commands read no YAML (8 ms of start-up)

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def dataclass_from_dict(cls: type[T], data: dict, *, source: str) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError`."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}"
        )
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        message = str(exc)  # errors raised by ``cls`` itself may already name the source
        if not message.startswith(f"{source}:"):
            message = f"{source}: {message}"
        raise ConfigError(message) from exc


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:key=value,key=value"`` into the name and typed options (YAML scalars).

    >>> parse_spec("nlm:h=0.8,fast=true")
    ('nlm', {'h': 0.8, 'fast': True})
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"empty name in spec {spec!r}")
    options: dict[str, Any] = {}
    if rest.strip():
        import yaml

        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"spec {spec!r}: expected key=value, got {item!r}")
            options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return name, options


def spec_label(
    name: str,
    options: dict[str, Any],
    defaults: dict[str, Any],
    *,
    ignore: Collection[str] = (),
) -> str:
    """The short spec of a configured entry: ``name``, plus ``:key=value,...`` for the options
    that differ from ``defaults`` (sorted by key; keys in ``ignore`` left out).

    >>> spec_label("tv", {"weight": 0.2, "eps": 2e-4}, {"weight": 0.1, "eps": 2e-4})
    'tv:weight=0.2'
    """
    changed = sorted(
        ((k, v) for k, v in options.items() if k not in ignore and defaults.get(k) != v),
        key=lambda item: item[0],
    )
    if not changed:
        return name
    return name + ":" + ",".join(f"{k}={v}" for k, v in changed)
