"""What a grid *means* for a run: the level behind every (degradation, severity) it sweeps.

A :class:`~restorelab.degradations.grid.Grid` names ops, severities, seeds, chains and optional
replacement ``levels``. Two grids may share a key such as ``("gaussian_blur", 2)`` and still
mean different images (a PSNR-matched grid gives severity 2 another sigma). :class:`GridSpec`
records, for every swept key, the level actually applied (the grid's replacement table, else
the op's own; for a chain, each step's op and level), so a resumed run can tell "more cells"
from "other cells under the same name".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from restorelab.degradations.grid import Grid


def freeze(value: Any) -> Any:
    """Lists and tuples (recursively) as tuples, mappings as sorted (key, value) tuples."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _level_text(level: Any) -> str:
    return json.dumps(_thaw(level), default=str)


def _chain_level(spec: str, severity: int) -> tuple:
    from restorelab.degradations import get_degradation
    from restorelab.degradations.chain import parse_chain

    steps = []
    for step in parse_chain(spec):
        op = get_degradation(step.name)
        used = step.severity if step.severity is not None else severity
        steps.append((op.name, freeze(op.level(used))))
    return tuple(steps)


@dataclass(frozen=True)
class GridSpec:
    """Seeds and, per swept degradation or chain, ``(severity, level)`` pairs in grid order.

    ``name`` is informative only (two grids with other names but the same levels mean the
    same cells).
    """

    name: str
    seeds: tuple[int, ...]
    levels: tuple[tuple[str, tuple[tuple[int, Any], ...]], ...]

    @classmethod
    def of(cls, grid: Grid) -> GridSpec:
        from restorelab.degradations import get_degradation

        table: dict[str, list[tuple[int, Any]]] = {}
        for name in grid.degradations:
            own = grid.levels_for(name) or get_degradation(name).levels
            table[name] = [(s, freeze(own[s - 1])) for s in grid.severities]
        for chain in grid.chains:
            spec = chain["chain"]
            table[spec] = [(s, _chain_level(spec, s)) for s in chain["severities"]]
        return cls(
            grid.name,
            tuple(int(s) for s in grid.seeds),
            tuple((k, tuple(v)) for k, v in table.items()),
        )

    def level(self, degradation: str, severity: int) -> Any:
        """The level applied at ``(degradation, severity)``; KeyError when not swept."""
        return dict(dict(self.levels)[degradation])[int(severity)]

    def keys(self) -> set[tuple[str, int]]:
        return {(name, int(s)) for name, pairs in self.levels for s, _ in pairs}

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seeds": list(self.seeds),
            "levels": {
                name: {str(s): _thaw(level) for s, level in pairs} for name, pairs in self.levels
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> GridSpec:
        return cls(
            str(data["name"]),
            tuple(int(s) for s in data["seeds"]),
            tuple(
                (name, tuple((int(s), freeze(level)) for s, level in pairs.items()))
                for name, pairs in data["levels"].items()
            ),
        )

    def conflicts(self, new: GridSpec) -> list[str]:
        """One line per (degradation, severity) swept by both whose level differs."""
        out = []
        mine, theirs = dict(self.levels), dict(new.levels)
        for name in mine.keys() & theirs.keys():
            old, now = dict(mine[name]), dict(theirs[name])
            for severity in sorted(old.keys() & now.keys()):
                if _level_text(old[severity]) != _level_text(now[severity]):
                    out.append(
                        f"grid: {name} severity {severity} is level "
                        f"{_level_text(old[severity])} in the run, {_level_text(now[severity])} now"
                    )
        return sorted(out)

    def added(self, new: GridSpec) -> list[str]:
        """Short descriptions of what ``new`` sweeps beyond ``self``."""
        out = []
        extra = sorted(new.keys() - self.keys())
        if extra:
            out.append(f"{len(extra)} (degradation, severity) key(s)")
        seeds = sorted(set(new.seeds) - set(self.seeds))
        if seeds:
            out.append(f"seed(s) {seeds}")
        return out

    def merged(self, new: GridSpec) -> GridSpec:
        """The union of both (call after :meth:`conflicts` found none); ``new``'s name."""
        table = {name: dict(pairs) for name, pairs in self.levels}
        for name, pairs in new.levels:
            table.setdefault(name, {}).update(dict(pairs))
        seeds = tuple(sorted(set(self.seeds) | set(new.seeds)))
        return GridSpec(
            new.name,
            seeds,
            tuple((name, tuple(sorted(pairs.items()))) for name, pairs in table.items()),
        )
