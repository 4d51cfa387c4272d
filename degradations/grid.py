"""Benchmark grids: which degradations, severities and seeds a run sweeps, read from YAML.

A grid is data (``to_dict`` round-trips); packaged grids live in ``grids/*.yaml`` beside this
module and load by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from restorelab.config import ConfigError, dataclass_from_dict, load_yaml


def _int_list(value: Any, key: str, source: str) -> list[int]:
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ConfigError(f"{source}: {key} must be a list of integers, got {item!r}")
        out.append(item)
    if not out:
        raise ConfigError(f"{source}: {key} must not be empty")
    return out


@dataclass
class Grid:
    """A benchmark grid: every degradation × severity × seed is one cell per image.

    YAML keys: ``name``; ``degradations`` (registered op names); ``severities`` (1-based ints);
    ``seeds`` (non-negative ints); optional ``chains``, each a chain spec such as
    ``"gaussian_blur:8+gaussian_noise"`` swept over ``severities`` (see
    :mod:`restorelab.degradations.chain`), or a mapping ``{chain: SPEC, severities: [...]}``;
    optional ``levels``, per-op replacement severity tables (``{op: [level1, level2, ...]}``,
    e.g. written by ``restorelab degrade calibrate --matched``); optional ``description``.
    """

    name: str
    degradations: list[str] = field(default_factory=list)
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    seeds: list[int] = field(default_factory=lambda: [0])
    chains: list = field(default_factory=list)
    levels: dict = field(default_factory=dict)
    description: str = ""
    source: str = "<memory>"

    def __post_init__(self) -> None:
        from restorelab.degradations import DEGRADATIONS

        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{self.source}: name must be a non-empty string")
        if isinstance(self.degradations, str):
            self.degradations = [self.degradations]
        self.degradations = list(self.degradations or [])
        if not self.degradations and not self.chains:
            raise ConfigError(f"{self.source}: give at least one of degradations or chains")
        self.severities = _int_list(self.severities, "severities", self.source)
        self.seeds = _int_list(self.seeds, "seeds", self.source)
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"{self.source}: seeds must be non-negative")
        if not isinstance(self.levels, dict):
            raise ConfigError(f"{self.source}: levels must map op names to lists of levels")
        for name in self.degradations:
            try:
                op = DEGRADATIONS.get(name)
            except KeyError as exc:
                raise ConfigError(f"{self.source}: {exc}") from None
            if name in self.levels:
                valid = tuple(range(1, len(self.levels[name]) + 1))
            else:
                valid = op.severities
            bad = [s for s in self.severities if s not in valid]
            if bad:
                raise ConfigError(
                    f"{self.source}: severities {bad} out of range for {name} "
                    f"(valid: {valid[0]}..{valid[-1]})"
                )
        unknown_levels = sorted(set(self.levels) - set(self.degradations))
        if unknown_levels:
            raise ConfigError(
                f"{self.source}: levels given for {unknown_levels}, which are not in degradations"
            )
        self.chains = [self._normalise_chain(entry) for entry in self.chains]

    def _normalise_chain(self, entry: Any) -> dict:
        from restorelab.degradations.chain import chain_severities

        if isinstance(entry, dict):
            spec, severities = entry.get("chain"), entry.get("severities", self.severities)
            if set(entry) - {"chain", "severities"} or not spec:
                raise ConfigError(
                    f"{self.source}: a chain mapping takes the keys chain and severities, got "
                    f"{sorted(entry)}"
                )
        else:
            spec, severities = entry, self.severities
        try:
            valid = chain_severities(spec)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{self.source}: chain {spec!r}: {exc}") from None
        if valid == (0,):
            return {"chain": spec, "severities": [0]}
        severities = _int_list(severities, f"severities of chain {spec!r}", self.source)
        bad = [s for s in severities if s not in valid]
        if bad:
            raise ConfigError(f"{self.source}: severities {bad} out of range for chain {spec!r}")
        return {"chain": spec, "severities": list(severities)}

    def cells(self) -> Iterator[tuple[str, int, int]]:
        """(degradation or chain, severity, seed) for every cell of the grid, in a fixed order."""
        for name in self.degradations:
            for severity in self.severities:
                for seed in self.seeds:
                    yield name, severity, seed
        for chain in self.chains:
            for severity in chain["severities"]:
                for seed in self.seeds:
                    yield chain["chain"], severity, seed

    def levels_for(self, degradation: str) -> list | None:
        """The replacement severity table of ``degradation`` (None: the op's own)."""
        return self.levels.get(degradation)

    def __len__(self) -> int:
        return sum(1 for _ in self.cells())

    def to_dict(self) -> dict:
        """The YAML-serialisable form (without ``source``)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["degradations"] = list(self.degradations)
        out["severities"] = list(self.severities)
        out["seeds"] = list(self.seeds)
        if self.chains:
            out["chains"] = [dict(c) for c in self.chains]
        if self.levels:
            out["levels"] = {
                k: [list(v) if isinstance(v, tuple) else v for v in vs]
                for k, vs in self.levels.items()
            }
        return out


def packaged_grids() -> list[str]:
    """Names of the grids that ship with restorelab."""
    folder = resources.files("restorelab.degradations") / "grids"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_grid(name_or_path: str | os.PathLike) -> Grid:
    """Load a grid from a YAML file, or a packaged grid by name (see :func:`packaged_grids`)."""
    path = Path(name_or_path)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        data = load_yaml(path)
        source = str(path)
    else:
        resource = resources.files("restorelab.degradations") / "grids" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ConfigError(
                f"no grid file {str(name_or_path)!r} and no packaged grid of that name; "
                f"packaged grids: {', '.join(packaged_grids())}"
            )
        data = yaml.safe_load(resource.read_text(encoding="utf-8")) or {}
        source = f"packaged grid {name_or_path!r}"
    data = dict(data)
    data.setdefault("name", Path(str(name_or_path)).stem)
    return dataclass_from_dict(Grid, {**data, "source": source}, source=source)
