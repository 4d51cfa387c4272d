"""The ``restorelab`` command line. Every subcommand is a thin shell over a library function."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from restorelab import __version__

#: Errors of the user's input or environment (bad values, unknown names, missing or unreadable
#: files, a missing optional package), shown as one clear line instead of a traceback.
_USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError, ImportError)
#: Exit code of an internal error (a bug): ``EX_SOFTWARE`` of sysexits.h.
EXIT_INTERNAL = 70


def _friendly(fn: Callable) -> Callable:
    """User errors (bad values, unknown names, missing files) become one clear line; any other
    exception is a bug: its traceback is shown with a line asking to report it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise click.ClickException(str(message)) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception:
            import traceback

            traceback.print_exc(file=sys.stderr)
            click.echo(
                f"\ninternal error in restorelab {__version__}: this is a bug, not a problem "
                "with your input. Please report it to the restorelab issue tracker with the "
                "traceback above and the command you ran.",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)

    return wrapper


def _self_command() -> str:
    """How to call this CLI: ``restorelab`` when that is on PATH, else its full path."""
    here = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    on_path = shutil.which("restorelab")
    if here and here.name == "restorelab" and (not on_path or Path(on_path).resolve() != here):
        return os.path.relpath(here) if not os.path.relpath(here).startswith("..") else str(here)
    return "restorelab"


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _split_specs(value: str) -> list[str]:
    """Split ``"psnr,lpips:net=vgg,weights_dir=/w,ssim"`` into specs: a ``key=value`` item
    belongs to the spec before it (names never contain ``=``)."""
    specs: list[str] = []
    for item in _split_list(value):
        if "=" in item and ":" not in item.split("=", 1)[0] and specs:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="restorelab")
def main() -> None:
    """Curate data for, stress-test and compare diffusion-based image restorers."""


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="runs/demo",
    show_default=True,
    help="Folder for the sample sources, the curated corpus and the run.",
)
@click.option(
    "--grid",
    "grid_name",
    default="mini",
    show_default=True,
    help="Packaged grid name or YAML file.",
)
@click.option("--workers", type=int, default=None, help="Processes (default: all CPU cores).")
@click.option(
    "--max-side",
    type=int,
    default=512,
    show_default=True,
    help="Long side of the sample photos, pixels.",
)
@_friendly
def demo(out: str, grid_name: str, workers: int | None, max_side: int) -> None:
    """Run curate → degrade → restore → score on scikit-image's sample photos."""
    from restorelab.app.demo import run_demo
    from restorelab.degradations.grid import load_grid

    started = time.time()
    result = run_demo(out, grid=load_grid(grid_name), workers=workers, max_side=max_side)
    bench = result.benchmark
    click.echo(
        f"curated {result.curation.kept} images into {result.corpus} "
        f"({result.curation.rejected} rejected: {result.curation.reasons}, see "
        f"{result.corpus / 'rejected.csv'})"
    )
    click.echo(
        f"benchmark: {bench.rows_written} rows written, {bench.rows_skipped} already "
        f"done, {len(bench.errors)} errors, in {time.time() - started:.0f} s"
    )
    click.echo("\nOpen the dashboard with:\n")
    click.echo(f"  {_self_command()} dashboard {result.run}\n")


@main.command()
def doctor() -> None:
    """Report Python, torch, GPU, extras and model weights, with how to get what is missing."""
    from restorelab.app.doctor import format_report, run_checks

    click.echo(format_report(run_checks()))


def dashboard_app_file() -> Path:
    """The Streamlit script of ``restorelab.dashboard`` (source folder or installed wheel)."""
    spec = importlib.util.find_spec("restorelab.dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise click.ClickException("the restorelab.dashboard package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--port", type=int, default=8501, show_default=True)
@click.option(
    "--address",
    default="localhost",
    show_default=True,
    help="Interface to listen on (0.0.0.0 to serve other machines).",
)
def dashboard(run_dirs: tuple[str, ...], port: int, address: str) -> None:
    """Start the Streamlit dashboard on one or several RUN_DIRS (one Ctrl+C or SIGTERM
    stops it).

    Several runs on the same corpus and grid are compared as one table (differences are
    shown); a folder that holds runs (such as the demo's output folder) lists them.
    """
    from restorelab.app.serve import serve

    click.echo(f"dashboard on http://{address}:{port}  (Ctrl+C stops it)")
    raise SystemExit(serve(run_dirs, port, address))


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--help-config",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _param, value: _print_config_help(ctx) if value else None,
    help="Print every curation config key with its default and meaning, and exit.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Output folder (a Hugging Face imagefolder).",
)
@click.option(
    "--target",
    type=int,
    default=None,
    help="How many images to keep (default: the config's, 2600).",
)
@click.option("--all", "keep_all", is_flag=True, help="Keep every image that passes (no target).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML curation config (filters, target, quotas, ...).",
)
@click.option("--min-side", type=int, default=None, help="Override the min_side filter.")
@click.option(
    "--captioner",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Local image-to-text model folder (BLIP, Florence, LLaVA style) for "
    "images without a caption.",
)
@click.option("--device", default="cpu", show_default=True, help="Device of the captioner.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Analysis cache (default OUT/.cache); re-runs skip analysed images.",
)
@click.option("--workers", type=int, default=None, help="Analysis threads (default: cores).")
@click.option(
    "--shard",
    default=None,
    help="I/N, or 'env' for RANK/WORLD_SIZE: analyse only every N-th input (from the I-th) "
    "into --cache-dir, writing no dataset; then merge the shards with --merge-cache.",
)
@click.option(
    "--merge-cache",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Cache folder of an analysis shard to merge before curating (repeatable).",
)
@_friendly
def curate(
    sources: tuple[str, ...],
    out: str,
    target: int | None,
    keep_all: bool,
    config_path: str | None,
    min_side: int | None,
    captioner: str | None,
    device: str,
    cache_dir: str | None,
    workers: int | None,
    shard: str | None,
    merge_cache: tuple[str, ...],
) -> None:
    """Curate image SOURCES (folders, globs, HF datasets, Parquet, .tar shards, URL lists).

    Config keys: `restorelab curate --help-config`.
    """
    from restorelab.app.curate_cli import config_from_options, parse_shard, report_lines
    from restorelab.curation import curate as run_curation

    config = config_from_options(config_path, target, keep_all, min_side, workers)
    model = None
    if captioner:
        from restorelab.curation.captioner import Captioner

        model = Captioner.from_pretrained(captioner, device=device)
    result = run_curation(
        list(sources),
        out,
        config,
        captioner=model,
        cache_dir=cache_dir,
        shard=parse_shard(shard),
        merge_caches=merge_cache,
    )
    for line in report_lines(result, config, out):
        click.echo(line)


@main.command()
@click.option(
    "--corpus",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Curated folder or plain folder of clean images.",
)
@click.option("--grid", "grid_name", default=None, help="Packaged grid name or YAML file.")
@click.option(
    "--pairs",
    nargs=2,
    type=click.Path(exists=True, file_okay=False),
    default=None,
    metavar="LQ_DIR GT_DIR",
    help="Paired test set (real degradations) instead of --corpus and --grid.",
)
@click.option(
    "--restorer",
    "restorers",
    multiple=True,
    required=True,
    help="Restorer spec NAME[:key=value,...] or an external program "
    "'cmd[name=SHORT,scale=S]:COMMAND {in} {out}' (name: its label in reports; scale=4 for a "
    "x4 upscaler); repeat.",
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder.")
@click.option(
    "--metrics",
    default="psnr,ssim",
    show_default=True,
    help="Comma-separated names or specs, e.g. psnr,ssim_y,lpips:net=vgg,consistency "
    "(consistency re-applies each cell's own degradation).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="CPU processes.")
@click.option(
    "--shard",
    default=None,
    help="I/N: only every N-th image, starting at I (default: RANK/WORLD_SIZE).",
)
@click.option(
    "--save-images",
    is_flag=True,
    help="Keep restored and degraded images (PNG) and thumbnails in the run.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto, cpu, cuda or cuda:N: where learned metrics and GPU restorers run. Under "
    "torchrun / accelerate launch, cuda is this rank's GPU (LOCAL_RANK).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Run again the cells that failed in earlier calls (default: keep them, report them "
    "and exit 3).",
)
@_friendly
def bench(
    corpus: str | None,
    grid_name: str | None,
    pairs: tuple[str, str] | None,
    restorers: tuple[str, ...],
    out: str,
    metrics: str,
    workers: int,
    shard: str | None,
    save_images: bool,
    device: str,
    retry_failed: bool,
) -> None:
    """Sweep restorers over CORPUS × GRID (or a paired set); re-running resumes.

    Re-running into the same --out skips finished cells, runs only added images, severities,
    seeds and restorers, and fills added metrics into finished rows; a set-up that would give
    stored results another meaning (other image content, other levels, another restorer file)
    is refused before any work. Exit codes: 0 all cells scored; 3 some cells failed (count
    and reasons printed); 1 refused or bad input; 2 usage.
    """
    from restorelab.app.bench import report_bench
    from restorelab.benchmark import run_benchmark
    from restorelab.benchmark.runner import run_benchmark_pairs
    from restorelab.degradations.grid import load_grid

    if pairs:
        if corpus or grid_name:
            raise click.UsageError("--pairs replaces --corpus and --grid; give one or the other")
        summary = run_benchmark_pairs(
            pairs[0],
            pairs[1],
            list(restorers),
            out,
            metrics=_split_specs(metrics),
            shard=shard,
            save_images=save_images,
            device=device,
            retry_failed=retry_failed,
        )
    else:
        if not corpus or not grid_name:
            raise click.UsageError("give --corpus and --grid (or --pairs LQ_DIR GT_DIR)")
        summary = run_benchmark(
            corpus,
            load_grid(grid_name),
            list(restorers),
            out,
            metrics=_split_specs(metrics),
            workers=workers,
            shard=shard,
            save_images=save_images,
            device=device,
            retry_failed=retry_failed,
        )
    report_bench(summary, out)


class _DefaultGroup(click.Group):
    """A group that runs ``default`` when the first argument is not one of its commands."""

    def __init__(self, *args: Any, default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@main.group(cls=_DefaultGroup, default="apply")
def degrade() -> None:
    """Degrade a corpus over a grid (default), or calibrate a grid's severities.

    \b
    restorelab degrade GRID --corpus DIR --out DIR
    restorelab degrade calibrate GRID --corpus DIR [--matched 30,27,24,21,18,15]
    """


@degrade.command(name="apply")
@click.argument("grid_name", metavar="GRID")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--workers", type=int, default=1, show_default=True, help="CPU processes.")
@_friendly
def degrade_apply(grid_name: str, corpus: str, out: str, workers: int) -> None:
    """Write degraded copies of CORPUS for every cell of GRID, with a Parquet manifest.

    Re-running into the same --out keeps files made with the same image and level, adds new
    cells, and refuses (before any work) where a file would be made from another image or
    level. Exit code 3 when some cells failed.
    """
    from restorelab.app.bench import report_degrade
    from restorelab.degradations.export import MANIFEST_FILE, export_degraded
    from restorelab.degradations.grid import load_grid

    summary = export_degraded(corpus, load_grid(grid_name), out, workers=workers)
    report_degrade(summary, Path(out) / MANIFEST_FILE)


@main.command(name="list")
def list_registered() -> None:
    """List degradations, restorers, metrics, packaged grids and the curation config keys."""
    from restorelab.app.listing import format_listing
    from restorelab.curation import config_help

    click.echo(format_listing(), nl=False)
    click.echo(config_help())


def _print_config_help(ctx: click.Context) -> None:
    from restorelab.curation import config_help

    click.echo(config_help())
    ctx.exit(0)


from restorelab.app.calibrate import calibrate_command  # noqa: E402
from restorelab.app.report import report_command  # noqa: E402
from restorelab.app.score import score_command  # noqa: E402

main.add_command(report_command)
degrade.add_command(calibrate_command)
main.add_command(score_command)
for _command in (report_command, calibrate_command, score_command):
    _command.callback = _friendly(_command.callback)

from restorelab.app.train import train_lora_command  # noqa: E402  (one module per command)

main.add_command(train_lora_command)

from restorelab.app.recipe import recipe_command  # noqa: E402

main.add_command(recipe_command)

from restorelab.app.restore import restore_command  # noqa: E402  (its own module)

main.add_command(restore_command, name="restore")
restore_command.callback = _friendly(restore_command.callback)

if __name__ == "__main__":
    main()
