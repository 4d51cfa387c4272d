"""``restorelab restore``: restore a file or a folder with the ``sdxl`` restorer.

A folder is walked recursively; each image is written under OUTPUT at the same relative path
as a PNG. Outputs that exist are skipped, so an interrupted run resumes. Captions come from
``--prompt`` (one text for all), ``--captions METADATA`` (a ``metadata.jsonl`` with
``file_name`` and ``text``, as ``restorelab curate`` writes), or the input folder's own
``metadata.jsonl`` when it has one. Same seed, same device: same bytes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from restorelab.corpus import METADATA_FILE
from restorelab.imageio import iter_image_files, read_image, write_image
from restorelab.progress import tqdm


@dataclass
class RestoreSummary:
    """What :func:`restore_path` did."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    #: ``"<input>: <error>"`` per image that failed (the run went on).
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def load_captions(metadata: str | os.PathLike) -> dict[str, str]:
    """``file_name`` → ``text`` from a ``metadata.jsonl`` (also keyed by the bare file name)."""
    path = Path(metadata)
    if not path.is_file():
        raise FileNotFoundError(f"captions file not found: {path}")
    captions: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, text = str(row["file_name"]), str(row.get("text") or "")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{line_no}: bad metadata row ({exc})") from exc
        captions[Path(name).as_posix()] = text
        captions.setdefault(Path(name).name, text)
    return captions


def plan_outputs(source: Path, output: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file maps to OUTPUT (or OUTPUT/<name>.png when OUTPUT is a
    folder); a folder maps each image to OUTPUT/<relative path>.png, skipping OUTPUT itself."""
    if source.is_file():
        target = output / f"{source.stem}.png" if output.is_dir() else output
        return [(source, target)]
    if not source.is_dir():
        raise FileNotFoundError(f"input not found: {source}")
    pairs = []
    resolved_output = output.resolve()
    for path in iter_image_files(source):
        if resolved_output in path.resolve().parents:
            continue
        pairs.append((path, output / path.relative_to(source).with_suffix(".png")))
    if not pairs:
        raise ValueError(f"{source}: no images found")
    return pairs


def restore_path(
    source: str | os.PathLike,
    output: str | os.PathLike,
    restorer,
    *,
    prompt: str | None = None,
    captions: dict[str, str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    on_error: Callable[[str], None] | None = None,
) -> RestoreSummary:
    """Restore ``source`` (file or folder) into ``output`` with ``restorer`` (a Restorer that
    takes ``context=``, such as ``sdxl``).

    Each image gets its caption (``prompt`` for all, else ``captions`` by relative path or
    file name) and ``seed``. Existing outputs are skipped unless ``overwrite``; an image that
    fails is recorded in ``errors`` and the run goes on.
    """
    from restorelab.benchmark.restorers import RestoreContext

    source, output = Path(source), Path(output)
    pairs = plan_outputs(source, output)
    if captions is None and prompt is None and source.is_dir():
        metadata = source / METADATA_FILE
        captions = load_captions(metadata) if metadata.is_file() else {}
    captions = captions or {}
    summary = RestoreSummary()
    started = time.perf_counter()
    todo = []
    for src, dst in pairs:
        (todo.append((src, dst)) if overwrite or not dst.exists() else summary.skipped.append(dst))
    bar = tqdm(todo, desc="restore", unit="img", disable=not progress or len(todo) < 2)
    for src, dst in bar:
        rel = src.relative_to(source).as_posix() if source.is_dir() else src.name
        caption = prompt if prompt is not None else captions.get(rel, captions.get(src.name, ""))
        try:
            image = read_image(src)
            restored = restorer.restore(
                image, context=RestoreContext(caption=caption, seed=seed, image_id=rel)
            )
            write_image(dst, restored)
            summary.written.append(dst)
        except Exception as exc:  # a bad image is recorded; the run goes on
            message = f"{src}: {type(exc).__name__}: {exc}"
            summary.errors.append(message)
            if on_error is not None:
                on_error(message)
    summary.seconds = time.perf_counter() - started
    return summary


@click.command(name="restore")
@click.argument("source", metavar="INPUT", type=click.Path(exists=True))
@click.argument("output", metavar="OUTPUT", type=click.Path())
@click.option(
    "--base",
    default="",
    help="Diffusers SDXL folder, or a hub id in the local HF "
    "cache (default: $RESTORELAB_SDXL_BASE).",
)
@click.option(
    "--lora",
    "loras",
    multiple=True,
    metavar="NAME=PATH[:W]",
    help="LoRA adapter file (diffusers format) and its weight; repeat to mix.",
)
@click.option("--controlnet", default="", help="SDXL tile ControlNet or ControlNet-Union folder.")
@click.option(
    "--preset",
    type=click.Choice(["fidelity", "quality", "fast"]),
    default="fidelity",
    show_default=True,
    help="Sampling preset (values and sources: presets.yaml).",
)
@click.option("--prompt", default=None, help="One caption for every image.")
@click.option(
    "--captions",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="metadata.jsonl with file_name and text (default: INPUT/metadata.jsonl).",
)
@click.option("--steps", type=int, default=None, help="Denoising steps (default: preset).")
@click.option("--strength", type=float, default=None, help="img2img strength in (0, 1].")
@click.option(
    "--restoration-scale",
    type=float,
    default=None,
    help="τ of restoration guidance (<= 0: off; default: preset).",
)
@click.option("--s-cfg", type=float, default=None, help="CFG scale at σ = 0 (default: preset).")
@click.option(
    "--spt-linear-cfg",
    type=float,
    default=None,
    help="CFG scale at σ_max, linear in σ down to --s-cfg (default: preset).",
)
@click.option(
    "--controlnet-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="ControlNet conditioning scale.",
)
@click.option(
    "--colour-fix",
    type=click.Choice(["wavelet", "adain", "none"]),
    default="wavelet",
    show_default=True,
)
@click.option("--upscale", type=int, default=1, show_default=True, help="Output size factor.")
@click.option(
    "--min-side",
    type=int,
    default=1024,
    show_default=True,
    help="Process at a short side of at least this many pixels (0: as is).",
)
@click.option("--tile", type=int, default=128, show_default=True, help="Latent tile (8 px).")
@click.option("--tile-stride", type=int, default=64, show_default=True)
@click.option(
    "--tile-batch",
    type=int,
    default=1,
    show_default=True,
    help="Latent tiles per UNet call (more: faster on a large GPU, more memory).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "bf16", "fp16", "fp32"]),
    default="auto",
    show_default=True,
    help="UNet dtype (auto: bf16 on CUDA, fp32 on CPU).",
)
@click.option("--offload", is_flag=True, help="Model CPU offload, for small GPUs.")
@click.option("--compile", "compile_unet", is_flag=True, help="torch.compile the UNet.")
@click.option("--overwrite", is_flag=True, help="Restore again images whose output exists.")
def restore_command(
    source: str,
    output: str,
    base: str,
    loras: tuple[str, ...],
    controlnet: str,
    preset: str,
    prompt: str | None,
    captions: str | None,
    steps: int | None,
    strength: float | None,
    restoration_scale: float | None,
    s_cfg: float | None,
    spt_linear_cfg: float | None,
    controlnet_scale: float,
    colour_fix: str,
    upscale: int,
    min_side: int,
    tile: int,
    tile_stride: int,
    tile_batch: int,
    seed: int,
    device: str,
    dtype: str,
    offload: bool,
    compile_unet: bool,
    overwrite: bool,
) -> None:
    """Restore INPUT (a file or a folder, recursive) into OUTPUT with SDXL + LoRA."""
    from restorelab.benchmark.restorers import create_restorer
    from restorelab.devices import resolve_device

    if prompt is not None and captions:
        raise click.UsageError("give --prompt or --captions, not both")
    restorer = create_restorer(
        "sdxl",
        base=base,
        lora=list(loras),
        controlnet=controlnet,
        preset=preset,
        steps=steps,
        strength=strength,
        restoration_scale=restoration_scale,
        s_cfg=s_cfg,
        spt_linear_cfg=spt_linear_cfg,
        controlnet_scale=controlnet_scale,
        colour_fix=colour_fix,
        upscale=upscale,
        min_side=min_side,
        tile=tile,
        tile_stride=tile_stride,
        tile_batch=tile_batch,
        dtype=dtype,
        offload=offload,
        compile=compile_unet,
        seed=seed,
    ).to(resolve_device(device))
    summary = restore_path(
        source,
        output,
        restorer,
        prompt=prompt,
        captions=load_captions(captions) if captions else None,
        seed=seed,
        overwrite=overwrite,
        on_error=lambda line: click.echo(f"  error: {line}", err=True),
    )
    click.echo(
        f"{len(summary.written)} restored, {len(summary.skipped)} already done, "
        f"{len(summary.errors)} errors → {output} ({summary.seconds:.1f} s)"
    )
    if summary.errors:
        raise SystemExit(1)
