"""``restorelab score``: metrics of one image pair, or of two folders paired by file name.

Exit codes: 0 when every pair was scored (unmatched files are listed on stderr), 1 on a user
error, :data:`EXIT_PAIRS_FAILED` when some pairs could not be scored (each listed with its
reason; the means cover the scored pairs only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

#: Exit code of ``score`` when at least one pair of two folders could not be scored.
EXIT_PAIRS_FAILED = 3


def _split_specs(value: str) -> list[str]:
    from restorelab.app.cli import _split_specs as split

    return split(value)


@click.command(name="score")
@click.argument("ref", type=click.Path(exists=True))
@click.argument("dist", type=click.Path(exists=True))
@click.option(
    "--metrics",
    default="psnr,ssim",
    show_default=True,
    help="Comma-separated names or specs, e.g. psnr,lpips:net=vgg or "
    "consistency:degradation=gaussian_blur,severity=3 (REF is then the degraded input).",
)
@click.option(
    "--crop-border",
    type=int,
    default=0,
    show_default=True,
    help="Pixels removed from each side before scoring.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON: one object metric → value for two files; for two folders, per-pair "
    "rows, means over the scored pairs, n (scored pairs), failed, errors and unmatched files.",
)
def score_command(ref: str, dist: str, metrics: str, crop_border: int, as_json: bool) -> None:
    """Score DIST against reference REF: two images, or two folders paired by file name.

    Folder pairs match by relative path and name, ignoring side markers at the end of the
    name (x4, _LR4, _HR, _lq, _gt, _SR): 0801x4_SR.png pairs with 0801.png. A pair that
    cannot be scored is shown with its reason and left out of the means; the command then
    exits with code 3.
    """
    from restorelab.benchmark.scoring import bind_metrics, json_number, score_folders, score_pair

    bound = bind_metrics(_split_specs(metrics), crop_border=crop_border, by_label=False)
    if Path(ref).is_dir() != Path(dist).is_dir():
        raise click.UsageError("REF and DIST must both be files or both be folders")
    if not Path(ref).is_dir():
        values = score_pair(ref, dist, bound)
        if as_json:  # JSON has no infinity: identical images give PSNR null
            click.echo(json.dumps({k: json_number(v) for k, v in values.items()}))
        else:
            for name, value in values.items():
                click.echo(f"{name:<10} {value:.6f}")
        return
    result = score_folders(ref, dist, bound)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        names = list(bound)
        width = max([4, *[len(r["pair"]) for r in result.rows]])
        width = min(width, 40)
        click.echo("pair".ljust(width) + "".join(f"  {n:>12}" for n in names))
        for row in result.rows:
            label = row["pair"] if len(row["pair"]) <= width else row["pair"][: width - 1] + "…"
            if "error" in row:
                click.echo(f"{label:<{width}}  failed: {row['error'].splitlines()[0]}")
                continue
            click.echo(f"{label:<{width}}" + "".join(f"  {row[n]:>12.4f}" for n in names))
        means = result.means()
        n = len(result.scored)
        click.echo(
            f"{'mean':<{width}}" + "".join(f"  {means[m]:>12.4f}" for m in names)
            + f"   over {n} scored pair{'s' if n != 1 else ''}"
        )  # fmt: skip
    for item in result.unmatched:
        click.echo(f"unmatched {item}", err=True)
    if result.failed:
        click.echo(
            f"{len(result.failed)} of {len(result.rows)} pairs could not be scored "
            "(left out of the means):",
            err=True,
        )
        for row in result.failed:
            click.echo(f"  {row['pair']}: {row['error']}", err=True)
        sys.exit(EXIT_PAIRS_FAILED)
