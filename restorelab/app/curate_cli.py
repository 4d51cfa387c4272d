"""The ``restorelab curate`` command's option handling and report (the CLI stays a thin shell).

Command-line overrides go through the same schema as the YAML file
(:mod:`restorelab.curation.schema`), so ``--min-side 0`` or ``--workers -1`` are refused the
same way, naming the option; ``--target`` and ``--all`` together are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from restorelab.curation import CurationConfig, CurationResult


def config_from_options(
    config_path: str | None,
    target: int | None,
    keep_all: bool,
    min_side: int | None,
    workers: int | None,
) -> CurationConfig:
    """The run's config: the YAML file (or the defaults) with the command-line overrides."""
    if keep_all and target is not None:
        raise click.UsageError(
            f"--target {target} and --all contradict each other: --all keeps every image "
            "that passes, --target keeps that many; give one of them"
        )
    config = CurationConfig.from_yaml(config_path) if config_path else CurationConfig()
    changes: dict[str, Any] = {}
    if min_side is not None:
        changes["filters"] = {**config.filters, "min_side": min_side}
    if keep_all:
        changes["target"] = None
    elif target is not None:
        changes["target"] = target
    if workers is not None:
        changes["workers"] = workers
    if not changes:
        return config
    where = "command line (--target, --all, --min-side, --workers)"
    if config_path:
        where += f" over {config_path}"
    return config.replace(source=where, **changes)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` → (I, N); ``"env"`` → (RANK, WORLD_SIZE) from the environment; None → None."""
    if text is None:
        return None
    if text == "env":
        try:
            rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        except (KeyError, ValueError) as exc:
            raise click.UsageError(
                "--shard env needs the integer environment variables RANK and WORLD_SIZE"
            ) from exc
    else:
        head, sep, tail = text.partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise click.UsageError(f"--shard expects I/N (e.g. 0/4) or 'env', got {text!r}")
        rank, world = int(head), int(tail)
    if not 0 <= rank < world:
        raise click.UsageError(f"--shard {text}: need 0 <= I < N, got I={rank}, N={world}")
    return rank, world


def report_lines(result: CurationResult, config: CurationConfig, out: str | Path) -> list[str]:
    """What the command prints after a run: counts, what the sources skipped, where to look."""
    out = Path(out)
    if "shard" in result.sources:
        rank, world = result.sources["shard"]
        return [
            f"shard {rank}/{world}: analysed {result.sources['analysed']} inputs into "
            f"{result.out_dir} ({result.cache_hits} already there; {result.rejected} "
            f"unusable: {result.reasons}); no dataset written. Merge with: restorelab curate "
            "SOURCES --out OUT --merge-cache SHARD_CACHE ..."
        ]
    lines = [f"kept {result.kept}, rejected {result.rejected} {result.reasons}"]
    if result.shortfall:
        lines.append(f"shortfall: {result.shortfall} fewer than the target {config.target} passed")
    src = result.sources
    skipped = []
    if src.get("repeated_inputs"):
        skipped.append(f"{src['repeated_inputs']} inputs reached twice (read once)")
    if src.get("hidden_skipped"):
        skipped.append(f"{src['hidden_skipped']} hidden files/folders")
    if src.get("excluded"):
        skipped.append(f"{src['excluded']} entries of the output folder or its cache")
    if src.get("other_files_skipped"):
        skipped.append(f"{src['other_files_skipped']} non-image files")
    if skipped:
        lines.append("skipped: " + "; ".join(skipped))
    if src.get("caption_columns"):
        used = ", ".join(f"{k} ({v})" for k, v in sorted(src["caption_columns"].items()))
        lines.append(f"captions read from: {used}")
    lines.extend(src.get("notes", []))
    lines.append(f"analysis cache hits: {result.cache_hits}")
    lines.append(
        f"wrote {out / 'metadata.jsonl'}, {out / 'rejected.csv'} and the dataset card "
        f"{out / 'README.md'}"
    )
    return lines
