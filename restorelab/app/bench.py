"""``restorelab bench`` and ``restorelab degrade``: run, then say what happened and exit honestly.

Exit codes of ``bench``: 0 every requested cell has its scores; :data:`EXIT_CELLS_FAILED` the
run finished but some cells failed (the count and the grouped reasons are printed; the rows
are in the results with their ``error``); 1 the command was refused (bad input, or a run
folder made with another set-up) before any work; 2 wrong usage.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from restorelab.benchmark.runner import BenchmarkSummary
    from restorelab.degradations.export import ExportSummary

#: ``bench`` finished, but at least one cell failed (distinct from 1: refused / bad input).
EXIT_CELLS_FAILED = 3
#: Failure groups printed before "N more".
MAX_GROUPS = 20
#: Characters of one reason shown.
MAX_REASON = 240


def _one_line(text: str, limit: int = MAX_REASON) -> str:
    flat = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def format_failures(
    failures: Sequence, earlier: Sequence = (), limit: int = MAX_GROUPS
) -> list[str]:
    """Lines for the failures of a bench call, grouped (see ``group_failures``).

    ``earlier`` are failed rows reused from earlier calls. Never cut without saying how many
    groups were left out.
    """
    from restorelab.benchmark.runner import group_failures

    lines = []
    for title, items in (("failed in this call", failures), ("failed earlier, kept", earlier)):
        if not items:
            continue
        groups = group_failures(items)
        lines.append(f"{len(items)} rows {title}, by (restorer, reason):")
        for what, count, example in groups[:limit]:
            times = f"{count} rows" if not what.startswith("image ") else "reported once"
            where = f" (e.g. {example})" if example else ""
            lines.append(f"  [{times}] {_one_line(what)}{where}")
        if len(groups) > limit:
            lines.append(
                f"  … {len(groups) - limit} more groups (every row's reason is in the "
                "results' error column)"
            )
    return lines


def report_bench(summary: BenchmarkSummary, out: str) -> None:
    """Print the summary of a bench call and exit with :data:`EXIT_CELLS_FAILED` when any
    requested row holds an error."""
    click.echo(f"{summary.describe()} → {summary.run_dir}")
    for name in getattr(summary, "unmatched", []) or []:
        click.echo(f"  unmatched: {name}", err=True)
    if summary.damaged_parts:
        names = ", ".join(str(p) for p in summary.damaged_parts)
        click.echo(
            f"warning: {len(summary.damaged_parts)} result part(s) could not be used and their "
            f"cells were recomputed: {names}. Move them out of {Path(out) / 'results'} before "
            "`restorelab report`.",
            err=True,
        )
    failed = len(summary.failures) + len(summary.earlier_failures)
    if not failed:
        return
    for line in format_failures(summary.failures, summary.earlier_failures):
        click.echo(line, err=True)
    total = summary.rows_written + summary.rows_skipped + summary.rows_filled
    hint = " (--retry-failed runs them again)" if summary.earlier_failures else ""
    click.echo(f"{failed} of {total} rows failed{hint}; exit code {EXIT_CELLS_FAILED}", err=True)
    sys.exit(EXIT_CELLS_FAILED)


def report_degrade(summary: ExportSummary, manifest: Path) -> None:
    """Print what ``degrade`` did; exit with :data:`EXIT_CELLS_FAILED` when a cell failed."""
    click.echo(
        f"{summary.written} images written, {summary.skipped} already there, "
        f"{len(summary.errors)} errors → {manifest}"
    )
    if not summary.errors:
        return
    for line in summary.errors[:MAX_GROUPS]:
        click.echo(f"  error: {_one_line(line)}", err=True)
    if len(summary.errors) > MAX_GROUPS:
        click.echo(
            f"  … {len(summary.errors) - MAX_GROUPS} more (see the error column of {manifest})",
            err=True,
        )
    sys.exit(EXIT_CELLS_FAILED)
