"""``restorelab degrade calibrate``: measure a grid's severities and match them to PSNR targets.

See :mod:`restorelab.benchmark.calibration`. The tables are written as CSV and Parquet; with
``--matched`` a grid YAML whose severity k hits the k-th target for every op (within
``--tolerance`` dB), refusing (or, with ``--on-repeat drop``, leaving out) ops that would
repeat a level.
"""

from __future__ import annotations

from pathlib import Path

import click


def _load_images(corpus: str, max_images: int, max_side: int | None) -> list:
    from restorelab.corpus import load_corpus
    from restorelab.imageio import read_image, thumbnail

    items = load_corpus(corpus)[:max_images]
    images = [read_image(item.path) for item in items]
    if max_side:
        images = [thumbnail(image, max_side) for image in images]
    return images


@click.command(name="calibrate")
@click.argument("grid_name", metavar="GRID")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False), required=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="calibration",
    show_default=True,
    help="Folder for the tables (and the matched grid).",
)
@click.option(
    "--matched",
    default=None,
    help="Target PSNRs in dB, mildest first, e.g. 30,27,24,21,18,15: write a grid whose "
    "severity k hits the k-th target for every op.",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.25,
    show_default=True,
    help="A target is reachable when the mean PSNR is within ± this many dB.",
)
@click.option(
    "--on-repeat",
    type=click.Choice(["refuse", "drop"]),
    default="refuse",
    show_default=True,
    help="When an op would repeat a level (a step-function op cannot tell two targets "
    "apart): refuse, or leave that op out of the matched grid.",
)
@click.option("--max-images", type=int, default=16, show_default=True)
@click.option(
    "--max-side",
    type=int,
    default=None,
    help="Scale images down to this long side first (faster; blur is in pixels).",
)
def calibrate_command(
    grid_name: str,
    corpus: str,
    out: str,
    matched: str | None,
    tolerance: float,
    on_repeat: str,
    max_images: int,
    max_side: int | None,
) -> None:
    """Mean PSNR/SSIM of degraded vs clean per op × severity (and PSNR-matched levels)."""
    import pandas as pd
    import yaml

    from restorelab.app.cli import _split_list
    from restorelab.benchmark.calibration import RepeatedLevelError, calibrate, matched_grid
    from restorelab.degradations.grid import load_grid

    grid = load_grid(grid_name)
    targets = []
    for item in _split_list(matched or ""):
        try:
            targets.append(float(item))
        except ValueError:
            raise click.BadParameter(f"not a number: {item!r}", param_hint="--matched") from None
    images = _load_images(corpus, max_images, max_side)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = calibrate(images, grid)
    table.to_parquet(out_dir / f"calibration-{grid.name}.parquet", index=False)
    table.to_csv(out_dir / f"calibration-{grid.name}.csv", index=False)
    click.echo(table.round(4).to_string(index=False))
    click.echo(f"\nsaved {out_dir / f'calibration-{grid.name}.csv'} (+ .parquet)")
    if not targets:
        return
    report_path = out_dir / f"{grid.name}-matched.csv"
    try:
        new_grid, report = matched_grid(
            images, grid, targets, tolerance_db=tolerance, on_repeat=on_repeat
        )
    except RepeatedLevelError as exc:
        exc.report.to_csv(report_path, index=False)
        _show(exc.report, pd)
        raise click.ClickException(f"{exc}\n(matching table: {report_path})") from None
    path = out_dir / f"{new_grid.name}.yaml"
    path.write_text(yaml.safe_dump(new_grid.to_dict(), sort_keys=False), encoding="utf-8")
    report.to_csv(report_path, index=False)
    _show(report, pd)
    missed = report[~report["reachable"]]
    if len(missed):
        click.echo(
            f"\n{len(missed)} target(s) not reachable within ±{tolerance:g} dB "
            "(reachable = False; the nearest achievable level is used):"
        )
        for row in missed.itertuples(index=False):
            click.echo(f"  {row.degradation} severity {row.severity}: {row.note}")
    dropped = sorted(set(report.loc[~report["in_grid"], "degradation"]))
    if dropped:
        click.echo(
            f"\nleft out of the matched grid (they would repeat a level): {', '.join(dropped)}"
        )
    click.echo(f"\nmatched grid: {path}  (use it with: restorelab bench --grid {path} ...)")


def _show(report, pd) -> None:
    shown = report.drop(columns=["note"]).round(3)
    with pd.option_context("display.width", 100, "display.max_columns", 20):
        click.echo("\n" + shown.to_string(index=False))
