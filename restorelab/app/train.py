"""``restorelab train-lora``: a thin CLI over :func:`restorelab.benchmark.training.train_lora`.

One process on the CPU or one GPU as it is; on several GPUs through accelerate::

    accelerate launch --num_processes 4 -m restorelab train-lora --corpus DIR --base SDXL ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from restorelab.weights import MissingWeightsError


def _one_line_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError, FileNotFoundError, MissingWeightsError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise click.ClickException(str(message)) from exc

    return wrapper


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@click.command(name="train-lora")
@click.option(
    "--corpus",
    type=click.Path(exists=True, file_okay=False),
    required=True,
    help="Folder written by `restorelab curate`, or any imagefolder with metadata.jsonl.",
)
@click.option(
    "--base",
    default=None,
    help="Local diffusers SDXL folder (or a hub id in the local HF cache; default: "
    "$RESTORELAB_SDXL_BASE).",
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option(
    "--subset",
    default=None,
    help='Rows to train on, by metadata: "face == true", "source ~ \'portraits/\'", '
    "combined with and/or/not.",
)
@click.option(
    "--objective",
    type=click.Choice(["prior", "restore"]),
    default="prior",
    show_default=True,
    help="prior: text-to-image loss on clean images; restore: LQ made by the zoo "
    "conditions through --controlnet, loss on the clean target.",
)
@click.option("--rank", type=int, default=16, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=float, default=None, help="LoRA alpha (default: the rank).")
@click.option(
    "--targets",
    default=",".join(("to_q", "to_k", "to_v", "to_out.0")),
    show_default=True,
    help="UNet modules that get LoRA (comma-separated names or suffixes).",
)
@click.option("--text-encoder-lora", is_flag=True, help="Also train LoRA on both text encoders.")
@click.option("--dora", is_flag=True, help="DoRA (weight-decomposed LoRA) instead of LoRA.")
@click.option("--steps", type=int, default=1000, show_default=True, help="Optimizer steps.")
@click.option("--batch-size", type=int, default=1, show_default=True, help="Per process.")
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--lr-warmup", type=int, default=0, show_default=True, help="Warm-up steps.")
@click.option(
    "--resolution",
    type=int,
    default=1024,
    show_default=True,
    help="Pixels; aspect buckets have about resolution² pixels.",
)
@click.option(
    "--buckets/--no-buckets",
    default=True,
    show_default=True,
    help="Aspect-ratio buckets, or square crops.",
)
@click.option("--center-crop", is_flag=True, help="Centred instead of random crops.")
@click.option(
    "--mixed-precision",
    type=click.Choice(["auto", "bf16", "fp16", "no"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on a GPU that has it, else no.",
)
@click.option(
    "--gradient-checkpointing",
    is_flag=True,
    help="Less memory, more compute (activations recomputed).",
)
@click.option(
    "--8bit-adam/--no-8bit-adam",
    "use_8bit_adam",
    default=None,
    help="bitsandbytes AdamW8bit (default: on CUDA when bitsandbytes works).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option("--allow-empty-captions", is_flag=True, help="Train uncaptioned images too.")
@click.option(
    "--cache-latents",
    is_flag=True,
    help="Cache VAE latents and text embeddings on disk (crops are then fixed per image).",
)
@click.option("--cache-dir", default=None, help="Cache folder (default OUT/cache).")
@click.option("--checkpoint-every", type=int, default=250, show_default=True, help="0: off.")
@click.option("--keep-checkpoints", type=int, default=2, show_default=True)
@click.option("--sample-every", type=int, default=0, show_default=True, help="0: no samples.")
@click.option(
    "--sample-prompt",
    "sample_prompts",
    multiple=True,
    help="Prompt of the sample images (repeat; default: the first two captions).",
)
@click.option("--sample-steps", type=int, default=20, show_default=True)
@click.option(
    "--controlnet",
    default=None,
    help="ControlNet folder for --objective restore (frozen; the one the restorer uses).",
)
@click.option("--controlnet-scale", type=float, default=1.0, show_default=True)
@click.option(
    "--lq-grid",
    default="realesrgan",
    show_default=True,
    help="Grid (packaged name or YAML) whose cells make the LQ images of --objective restore.",
)
@click.option("--noise-offset", type=float, default=0.0, show_default=True)
@click.option("--snr-gamma", type=float, default=None, help="Min-SNR loss weighting (e.g. 5).")
@click.option("--caption-dropout", type=float, default=0.0, show_default=True)
@click.option("--workers", "num_workers", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_one_line_errors
def train_lora_command(
    targets: str, sample_prompts: tuple[str, ...], quiet: bool, **options: Any
) -> None:
    """LoRA fine-tuning of SDXL on a curated corpus (resumable; diffusers-format output)."""
    from restorelab.benchmark.training import TrainConfig, train_lora

    config = TrainConfig(targets=_split(targets), sample_prompts=list(sample_prompts), **options)
    result = train_lora(config, progress=not quiet)
    last = result.loss_history[-1][1] if result.loss_history else float("nan")
    resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from else ""
    click.echo(
        f"trained {result.step} steps{resumed} in {result.seconds:.0f} s, last loss {last:.4f}"
    )
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo(f"LoRA: {result.lora}")
    click.echo(f"log:  {result.out / 'training.json'}, plot {result.out / 'loss.png'}")
