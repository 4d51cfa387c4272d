"""``restorelab report``: means with bootstrap CIs, paired comparisons, breakdown and coverage.

All numbers come from :mod:`restorelab.benchmark.stats` with :class:`StatsSettings` (the same
path and settings as the dashboard). The tables are stored under ``RUN_DIR/report/`` and
printed as ``text`` (fits 100 columns), ``markdown``, ``csv`` or ``json`` on stdout; the
"wrote ..." line goes to stderr so that stdout parses.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--vs",
    nargs=2,
    multiple=True,
    metavar="A B",
    help="Paired comparison of restorers A and B by label (repeatable); external commands "
    "are named with cmd[name=NAME]:….",
)
@click.option("--metrics", default=None, help="Comma-separated (default: all in the run).")
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="METRIC=VALUE",
    help="Breakdown also when the restored metric crosses VALUE, e.g. psnr=20.",
)
@click.option(
    "--n-boot",
    type=int,
    default=None,
    help="Bootstrap resamples (default 2000, as the dashboard).",
)
@click.option(
    "--ci",
    type=float,
    default=None,
    help="Coverage of the intervals (default 0.95).",
)
@click.option(
    "--support",
    type=click.Choice(["common", "own"]),
    default="common",
    show_default=True,
    help="common: every number on the cells all compared restorers finished; own: each "
    "restorer on its own finished cells (labelled, not comparable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "csv", "json"]),
    default="text",
    show_default=True,
    help="Output format on stdout.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the rendered report to this file instead of stdout.",
)
@click.option(
    "--skip-damaged",
    is_flag=True,
    help="Leave damaged or foreign result parts out (named in a warning) instead of stopping.",
)
def report_command(
    run_dir: str,
    vs: tuple[tuple[str, str], ...],
    metrics: str | None,
    thresholds: tuple[str, ...],
    n_boot: int | None,
    ci: float | None,
    support: str,
    fmt: str,
    output: str | None,
    skip_damaged: bool,
) -> None:
    """Means with bootstrap CIs on common cells, coverage and failures, paired comparisons
    and breakdown severities of a run."""
    from restorelab.app.cli import _split_specs
    from restorelab.benchmark.stats import (
        DEFAULT_SETTINGS,
        compute_report,
        format_report,
        make_settings,
    )

    limits = {}
    for item in thresholds:
        name, eq, value = item.partition("=")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq:
            raise click.BadParameter(
                f"expected METRIC=VALUE, got {item!r}", param_hint="--threshold"
            )
    settings = make_settings(DEFAULT_SETTINGS, n_boot=n_boot, ci=ci, support=support)
    report = compute_report(
        run_dir,
        vs=[tuple(pair) for pair in vs] or None,
        metrics=_split_specs(metrics) if metrics else None,
        threshold=limits or None,
        settings=settings,
        skip_damaged=skip_damaged,
    )
    paths = report.write(run_dir)
    text = with_run_spec(format_report(report, fmt=fmt), run_dir, fmt)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
    folder = Path(run_dir) / "report"
    click.echo(f"tables: {folder}/ ({', '.join(p.name for p in paths.values())})", err=True)


def with_run_spec(text: str, run_dir: str, fmt: str) -> str:
    """The rendered report with the run's spec (what defines its numbers) added: a section
    at the top of ``text`` and ``markdown``, a ``"spec"`` key in ``json``; ``csv`` unchanged."""
    import json

    from restorelab.benchmark.runspec import load_run_spec

    spec = load_run_spec(run_dir)
    if spec is None or fmt == "csv":
        return text
    if fmt == "json":
        data = json.loads(text)
        data["spec"] = spec.to_dict()
        return json.dumps(data, indent=2) + "\n"
    lines = spec.describe()
    if fmt == "markdown":
        return "## Run spec\n\n```\n" + "\n".join(lines) + "\n```\n\n" + text
    return "run spec:\n" + "\n".join("  " + line for line in lines) + "\n\n" + text
