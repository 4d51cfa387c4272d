"""``restorelab list``: registered degradations, restorers, metrics and packaged grids.

Descriptions are the whole first paragraph of each docstring, wrapped to the terminal
(at most 100 columns) instead of cut at the end of the first source line.
"""

from __future__ import annotations

import shutil
import textwrap


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, joined into one line (``""`` when empty)."""
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent) or []


def format_listing(width: int | None = None) -> str:
    """The text ``restorelab list`` prints, at most ``width`` columns (default: the
    terminal's, capped at 100)."""
    from restorelab.benchmark.metrics import METRICS
    from restorelab.benchmark.restorers import RESTORERS
    from restorelab.degradations import DEGRADATIONS
    from restorelab.degradations.grid import packaged_grids

    width = width or min(100, shutil.get_terminal_size((100, 24)).columns)
    pad = " " * 4
    out = ["degradations:  (name [unit of a level]; severity k uses levels[k-1])"]
    for name in DEGRADATIONS:
        op = DEGRADATIONS.get(name)
        kind = "random" if op.stochastic else "deterministic"
        out.append(f"  {name}  [{op.unit}, {kind}]")
        out += _wrap(first_paragraph(op.fn.__doc__) or op.description, width, pad)
        out += _wrap("levels: " + ", ".join(map(str, op.levels)), width, pad)
    out.append("restorers:  (spec NAME[:key=value,...])")
    for name in RESTORERS:
        cls = RESTORERS.get(name)
        out.append(f"  {name}")
        out += _wrap(first_paragraph(cls.__doc__), width, pad)
        if cls.defaults:
            options = ", ".join(f"{k}={v!r}" for k, v in cls.defaults.items())
            out += _wrap(f"options: {options}", width, pad)
        if name == "cmd":
            out += _wrap(
                "e.g. cmd[name=median]:python median.py {in} {out} (short label median); "
                "cmd[name=sr,scale=4]:python sr.py -i {in} -o {out} for a x4 upscaler",
                width,
                pad,
            )
    out.append("metrics:  (↑ higher is better, ↓ lower is better)")
    for name in METRICS:
        spec = METRICS.get(name)
        arrow = "↑" if spec.higher_is_better else "↓"
        batched = " [batched torch: Metric.batch]" if spec.batch else ""
        out.append(f"  {name} {arrow}{batched}")
        out += _wrap(spec.convention, width, pad)
        if spec.default_options:
            options = ", ".join(f"{k}={v}" for k, v in spec.default_options.items())
            out += _wrap(f"options ({name}:key=value,...): {options}", width, pad)
    out += _wrap("grids: " + ", ".join(packaged_grids()), width, "")
    return "\n".join(out) + "\n"
