"""The dataset card (``README.md``) of a curated corpus: a Hugging Face card with a YAML header.

It records where the images came from, every filter and its threshold, how many inputs each
rejection reason took, the distribution of each quality signal over the kept images, how
captions were made and how the final N were selected.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import yaml

from restorelab import __version__
from restorelab.curation.filters import FILTERS

_DISTRIBUTION_SIGNALS = (
    "width",
    "height",
    "megapixels",
    "sharpness",
    "noise_sigma",
    "jpeg_quality",
    "clipped_dark",
    "clipped_bright",
    "colourfulness",
    "entropy",
)


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "n>1M"


def _distribution_table(rows: list[dict]) -> list[str]:
    lines = ["| signal | n | min | 5 % | median | 95 % | max |", "|---|---|---|---|---|---|---|"]
    for name in _DISTRIBUTION_SIGNALS:
        values = np.array(
            [
                float(r[name])
                for r in rows
                if isinstance(r.get(name), (int, float))
                and not isinstance(r.get(name), bool)
                and math.isfinite(float(r[name]))
            ]
        )
        if values.size == 0:
            continue
        q = np.percentile(values, [0, 5, 50, 95, 100])
        lines.append(f"| {name} | {values.size} | " + " | ".join(f"{v:.4g}" for v in q) + " |")
    return lines


def render_dataset_card(summary: dict, kept_rows: list[dict], config: Any) -> str:
    """The card's Markdown text (YAML header included)."""
    header = {
        "license": config.license,
        "pretty_name": "restorelab curated corpus",
        "size_categories": [_size_category(len(kept_rows))],
        "task_categories": ["text-to-image", "image-to-image"],
        "tags": ["image-restoration", "restorelab", "curated"],
    }
    captions = [r.get("text") or "" for r in kept_rows]
    with_caption = sum(1 for c in captions if c.strip())
    words = [len(c.split()) for c in captions if c.strip()]
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        "# Curated photographs for restoration training",
        "",
        f"Made by restorelab {__version__} (`restorelab curate`). {summary['kept']} images "
        f"kept of {summary['inputs']} inputs; {summary['rejected']} rejected, each listed with "
        "its reason and signal values in `rejected.csv`. Every input is in exactly one of "
        "`metadata.jsonl` and `rejected.csv`.",
        "",
        "## Sources",
        "",
        *[f"- `{s}`" for s in summary["sources"]],
        "",
        "## Filters",
        "",
        "An image is kept when every active filter passes (`signal op threshold`).",
        "",
        "| filter | signal | rule | threshold | why |",
        "|---|---|---|---|---|",
    ]
    for name, value in config.filters.items():
        spec = FILTERS.get(name)
        threshold = spec.threshold(value)
        shown = "off" if threshold is None else threshold
        lines.append(f"| {name} | {spec.signal} | {spec.op} | {shown} | {spec.doc} |")
    dedup = "on" if config.near_duplicates else "off"
    lines += [
        "",
        "Duplicates keep their source, the file the others were made from: of exact "
        "duplicates (same decoded pixels) a plain file over an alpha or CMYK one, a JPEG over "
        "lossless copies of its pixels, then the first read; of near duplicates "
        f"({dedup}: resized, re-encoded or slightly cropped copies) first a member no other "
        "was derived from (a higher-quality re-encode or a PNG of a JPEG keeps the JPEG's "
        "quantisation lattice; alpha-composited, CMYK and tone-shifted copies lose to their "
        "source), then the largest, then one not visibly blurrier or noisier than the "
        "others, then the least compressed, then the sharpest. Members that pass the "
        "filters come first. Captions and metadata of dropped duplicates go to the keeper "
        "(`caption_source: duplicate`).",
        "",
        "## Rejections",
        "",
        "| reason | count |",
        "|---|---|",
        *[
            f"| {reason} | {count} |"
            for reason, count in sorted(summary["rejection_reasons"].items(), key=lambda kv: -kv[1])
        ],
        "",
        "## Selection",
        "",
    ]
    if summary.get("target") is None:
        lines.append("Every image that passed was kept (no target).")
    else:
        lines.append(
            f"Target: {summary['target']} images, chosen by quality first (the best "
            f"{config.quality_pool:g}× target) and then for diversity (greedy k-center on an "
            "image embedding)"
            + (f", with quotas {config.quotas} by {config.category}" if config.quotas else "")
            + ". Kept rows carry `quality_score` and `selection_rank` (pick order); each "
            "image not selected says in `rejected.csv` whether it lost on quality (outside the "
            "quality pool) or on diversity (with its distance to the nearest kept image)."
        )
        if summary.get("shortfall"):
            lines.append(
                f"**Shortfall:** only {summary['kept']} images passed, "
                f"{summary['shortfall']} fewer than the target."
            )
    lines += [
        "",
        "## Captions",
        "",
        f"{with_caption} of {len(kept_rows)} images have a caption"
        + (f" (median {int(np.median(words))} words)" if words else "")
        + ". ",
    ]
    sources = {}
    for row in kept_rows:
        key = row.get("caption_source") or "none"
        sources[key] = sources.get(key, 0) + 1
    lines.append(
        "`caption_source` per row: "
        + ", ".join(f"{k} {v}" for k, v in sorted(sources.items()))
        + " (`source`: the image's own sidecar or column, `duplicate`: taken from a dropped "
        "duplicate, `model`: written by the captioner; `caption_origin` says which)."
    )
    if summary.get("captioner"):
        lines.append(
            f"Missing captions were written by the local model `{summary['captioner']}`"
            f' with the prompt: "{summary.get("captioner_prompt")}".'
        )
    else:
        lines.append("Captions come from the sources (sidecar files or metadata columns).")
    columns = (summary.get("source_accounting") or {}).get("caption_columns") or {}
    if columns:
        lines.append(
            "Caption columns read: " + ", ".join(f"`{k}` ({v})" for k, v in columns.items()) + "."
        )
    lines += [
        "",
        "## Signal distributions (kept images)",
        "",
        *_distribution_table(kept_rows),
        "",
        "## Loading",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("imagefolder", data_dir="PATH/TO/THIS/FOLDER", split="train")',
        "```",
        "",
        *(
            [
                f"The same rows, image bytes embedded, as {len(summary['parquet_shards'])} "
                "Parquet shard(s) under `parquet/`:",
                "",
                "```python",
                'ds = datasets.load_dataset("parquet", data_dir="PATH/TO/THIS/FOLDER/parquet", '
                'split="train")',
                "```",
                "",
            ]
            if summary.get("parquet_shards")
            else []
        ),
        "## Licence",
        "",
        f"Declared licence: `{config.license}`. The images keep the licences of their "
        "sources; check them before redistributing.",
        "",
    ]
    return "\n".join(lines)


def write_dataset_card(
    path: str | os.PathLike, summary: dict, kept_rows: list[dict], config: Any
) -> None:
    """Write :func:`render_dataset_card` to ``path``."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_dataset_card(summary, kept_rows, config))
