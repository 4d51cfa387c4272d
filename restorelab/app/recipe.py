"""``restorelab recipe``: the whole method on a user's folders, in one resumable run.

curate → train the adapters (by default ``scene`` on ``not face`` and ``face`` on
``face == true``) → bench the ``sdxl`` restorer with the base only, with each adapter and with
all of them (at the weights given) across a grid (``extreme`` by default) → report; the run
folder ``OUT/run`` opens in the dashboard.

Configuration is data: a YAML file whose keys are :class:`RecipeConfig`'s fields (sections
``curation``, ``train``, ``adapters``, ``bench``), overridden by CLI options. Every stage
leaves its output under ``OUT`` and is skipped when done, so re-running the same command
after an interruption continues where it stopped (a training resumes from its checkpoint,
the benchmark from its finished rows). An adapter whose training fails (a subset that selects
nothing, say) is recorded in ``OUT/recipe.json`` and left out of the benchmark; the rest goes
on.

Example ``recipe.yaml``::

    sources: [photos/]
    base: /models/sdxl-base
    curation: {target: 2600, category: face}
    train: {steps: 1000, rank: 16, resolution: 1024, batch_size: 4,
            gradient_checkpointing: true}
    adapters:
      scene: {subset: "not face"}
      face: {subset: "face == true"}
    bench:
      grid: extreme
      weights: {scene: 1.0, face: 0.8}
      restorer: {preset: fidelity}
      metrics: [psnr, ssim, lpips]
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from restorelab.config import ConfigError, dataclass_from_dict, load_yaml
from restorelab.results import write_json_atomic

#: The adapters of the method: one for scenes, one for faces, each on a subset of the corpus.
DEFAULT_ADAPTERS: dict[str, dict[str, Any]] = {
    "scene": {"subset": "not face"},
    "face": {"subset": "face == true"},
}
RECIPE_FILE = "recipe.json"


@dataclass
class BenchSection:
    """What the benchmark stage sweeps.

    ``configs`` names the restorer set-ups: ``base`` (no adapter), an adapter name, or
    adapters joined by ``+``; default ``base``, each adapter alone, and all together.
    ``weights`` gives each adapter's weight (default 1.0). ``restorer`` holds further ``sdxl``
    options (``preset``, ``steps``, ``controlnet_scale``, ...). ``corpus`` is a folder of test
    images (default: the curated corpus, i.e. the training images; pass held-out photos to
    measure generalisation). ``max_images`` keeps the first N images.
    """

    grid: str = "extreme"
    configs: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    restorer: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim"])
    corpus: str | None = None
    max_images: int | None = None
    save_images: bool = False
    device: str = "auto"
    n_boot: int = 2000


@dataclass
class RecipeConfig:
    """One recipe run. ``train`` holds options shared by every adapter (the fields of
    :class:`~restorelab.benchmark.training.TrainConfig`); ``adapters`` maps a name to its own
    options (``subset`` at least), which override ``train``."""

    sources: list[str] = field(default_factory=list)
    out: str = "runs/recipe"
    base: str | None = None
    controlnet: str | None = None
    curation: dict[str, Any] = field(default_factory=lambda: {"category": "face"})
    corpus: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    adapters: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_ADAPTERS.items()}
    )
    bench: BenchSection = field(default_factory=BenchSection)

    def __post_init__(self) -> None:
        if isinstance(self.bench, dict):
            self.bench = dataclass_from_dict(BenchSection, self.bench, source="recipe bench")
        if isinstance(self.sources, str):
            self.sources = [self.sources]
        if not self.sources and not self.corpus:
            raise ConfigError("recipe: give sources (folders of photos) or a curated corpus")
        if not self.adapters:
            raise ConfigError("recipe: give at least one adapter")
        for name in self.adapters:
            if not name.isidentifier():
                raise ConfigError(f"recipe: adapter name {name!r} must be a plain identifier")
        for item in self.bench.configs:
            for part in item.split("+"):
                if part != "base" and part not in self.adapters:
                    raise ConfigError(
                        f"recipe: bench config {item!r} names {part!r}, which is not an adapter "
                        f"({', '.join(self.adapters)}) or base"
                    )

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> RecipeConfig:
        data = load_yaml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return dataclass_from_dict(cls, data, source=str(path))

    def bench_configs(self) -> list[str]:
        if self.bench.configs:
            return list(self.bench.configs)
        names = list(self.adapters)
        both = ["+".join(names)] if len(names) > 1 else []
        return ["base", *names, *both]


@dataclass
class RecipeResult:
    """Where each stage wrote, and what failed."""

    out: Path
    corpus: Path
    adapters: dict[str, Path]
    run: Path
    labels: dict[str, str]
    errors: dict[str, str]
    rows_written: int


def sdxl_spec(
    base: str | os.PathLike,
    loras: list[tuple[str, str | os.PathLike, float]],
    *,
    controlnet: str | os.PathLike | None = None,
    **options: Any,
) -> str:
    """The ``sdxl`` restorer spec for a base, LoRAs ``(name, path, weight)`` and options.

    >>> sdxl_spec("/m/sdxl", [("scene", "/a/s.safetensors", 1.0)], preset="fidelity")
    'sdxl:base=/m/sdxl,lora=scene=/a/s.safetensors:1.0,preset=fidelity'
    """
    items = [f"base={base}"]
    if loras:
        items.append("lora=" + "+".join(f"{n}={p}:{float(w)}" for n, p, w in loras))
    if controlnet:
        items.append(f"controlnet={controlnet}")
    for key, value in options.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "," in text:
            raise ConfigError(f"sdxl option {key}={value!r}: a spec value cannot hold a comma")
        items.append(f"{key}={text}")
    return "sdxl:" + ",".join(items)


def _log(message: str, progress: bool) -> None:
    if progress:
        click.echo(message, err=True)


def run_recipe(config: RecipeConfig, *, progress: bool = True) -> RecipeResult:
    """Run (or continue) a recipe; see the module docstring.

    Raises
    ------
    KeyError
        The ``sdxl`` restorer is not registered in this installation.
    MissingWeightsError
        The SDXL base (or ControlNet) is missing: one line naming the path.
    """
    from restorelab.benchmark.restorers import RESTORERS
    from restorelab.benchmark.training import TrainConfig, train_lora
    from restorelab.benchmark.training.lora import LORA_FILE
    from restorelab.benchmark.training.models import resolve_base

    if "sdxl" not in RESTORERS.names():
        raise KeyError(
            "the recipe benches the sdxl restorer, which this installation does not have "
            "(restorelab list shows the restorers)"
        )
    started = time.time()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    base = resolve_base(config.base)  # fail before curating when the weights are missing
    record: dict[str, Any] = {
        "config": _jsonable(dataclasses.asdict(config)),
        "stages": {},
        "errors": {},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    # 1. curate
    corpus = Path(config.corpus) if config.corpus else out / "corpus"
    if config.corpus:
        record["stages"]["curate"] = {"skipped": "corpus given", "corpus": str(corpus)}
    elif (corpus / "metadata.jsonl").is_file():
        record["stages"]["curate"] = {"skipped": "already curated", "corpus": str(corpus)}
    else:
        from restorelab.curation import CurationConfig, curate

        _log(f"[recipe] curate {', '.join(config.sources)} → {corpus}", progress)
        curation = dataclass_from_dict(CurationConfig, dict(config.curation), source="curation")
        result = curate(list(config.sources), corpus, curation, progress=progress)
        record["stages"]["curate"] = {
            "corpus": str(corpus),
            "kept": result.kept,
            "rejected": result.rejected,
            "reasons": result.reasons,
        }
    write_json_atomic(out / RECIPE_FILE, record)

    # 2. train the adapters
    adapters: dict[str, Path] = {}
    for name, options in config.adapters.items():
        folder = out / "adapters" / name
        lora = folder / LORA_FILE
        merged = {**config.train, **(options or {})}
        train_config = dataclass_from_dict(
            TrainConfig,
            {
                "corpus": str(corpus),
                "out": str(folder),
                "base": str(base),
                "controlnet": merged.pop("controlnet", config.controlnet),
                **merged,
            },
            source=f"adapter {name}",
        )
        done = folder / "training.json"
        if lora.is_file() and done.is_file():
            info = json.loads(done.read_text(encoding="utf-8"))
            if info.get("finished") and info.get("step") == train_config.steps:
                adapters[name] = lora
                record["stages"][f"train_{name}"] = {
                    "skipped": "already trained",
                    "lora": str(lora),
                }
                continue
        _log(f"[recipe] train adapter {name!r} (subset {train_config.subset!r})", progress)
        train_config.resume = True
        try:
            trained = train_lora(train_config, progress=progress)
        except (ValueError, FileNotFoundError) as exc:
            record["errors"][f"train_{name}"] = str(exc)
            _log(f"[recipe] adapter {name!r} not trained: {exc}", progress)
            continue
        adapters[name] = trained.lora
        record["stages"][f"train_{name}"] = {
            "lora": str(trained.lora),
            "steps": trained.step,
            "final_loss": trained.loss_history[-1][1] if trained.loss_history else None,
            "seconds": round(trained.seconds, 1),
        }
        write_json_atomic(out / RECIPE_FILE, record)

    # 3. bench base vs adapters
    from restorelab.benchmark import run_benchmark
    from restorelab.benchmark.restorers.base import create_restorer
    from restorelab.degradations.grid import load_grid

    bench = config.bench
    specs: dict[str, str] = {}
    for item in config.bench_configs():
        parts = [p for p in item.split("+") if p != "base"]
        missing = [p for p in parts if p not in adapters]
        if missing:
            record["errors"][f"bench_{item}"] = f"adapter(s) {missing} were not trained"
            continue
        loras = [(p, adapters[p], float(bench.weights.get(p, 1.0))) for p in parts]
        specs[item] = sdxl_spec(base, loras, controlnet=config.controlnet, **bench.restorer)
    restorers = [create_restorer(spec) for spec in specs.values()]
    labels = {item: r.label for item, r in zip(specs, restorers, strict=True)}
    bench_corpus = Path(bench.corpus) if bench.corpus else corpus
    if bench.max_images:
        bench_corpus = _first_images(bench_corpus, bench.max_images, out / "bench_corpus")
    run_dir = out / "run"
    _log(f"[recipe] bench {', '.join(specs)} on grid {bench.grid} → {run_dir}", progress)
    summary = run_benchmark(
        bench_corpus,
        load_grid(bench.grid),
        restorers,
        run_dir,
        metrics=list(bench.metrics),
        progress=progress,
        save_images=bench.save_images,
        device=bench.device,
    )
    record["stages"]["bench"] = {
        "run": str(run_dir),
        "labels": labels,
        "rows_written": summary.rows_written,
        "rows_skipped": summary.rows_skipped,
        "errors": list(summary.errors)[:20],
    }
    write_json_atomic(out / RECIPE_FILE, record)

    # 4. report: each set-up against the base (and all adapters against each single one)
    from restorelab.benchmark.stats import write_report

    pairs = []
    if "base" in labels:
        pairs += [(labels["base"], labels[k]) for k in labels if k != "base"]
    combined = [k for k in labels if "+" in k]
    for mix in combined:
        pairs += [(labels[p], labels[mix]) for p in mix.split("+") if p in labels]
    paths = write_report(run_dir, vs=pairs or None, n_boot=bench.n_boot)
    record["stages"]["report"] = {k: str(v) for k, v in paths.items()}
    record["seconds"] = round(time.time() - started, 1)
    write_json_atomic(out / RECIPE_FILE, record)
    (run_dir / "recipe_labels.json").write_text(json.dumps(labels, indent=1), encoding="utf-8")
    return RecipeResult(
        out=out,
        corpus=corpus,
        adapters=adapters,
        run=run_dir,
        labels=labels,
        errors=dict(record["errors"]),
        rows_written=summary.rows_written,
    )


def _first_images(corpus: Path, count: int, folder: Path) -> Path:
    """A corpus of the first ``count`` rows of ``corpus`` (links, or copies where links fail)."""
    import shutil

    from restorelab.corpus import load_corpus

    items = load_corpus(corpus)[:count]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in items:
        name = item.path.name
        target = folder / name
        if not target.exists():
            try:
                os.link(item.path, target)
            except OSError:
                shutil.copy2(item.path, target)
        rows.append({"file_name": name, "text": item.caption})
    (folder / "metadata.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    return folder


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --- the command ------------------------------------------------------------------------------


@click.command(name="recipe")
@click.argument("config_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--sources", multiple=True, help="Folder (glob, dataset) of photos to curate; repeat."
)
@click.option("--corpus", default=None, help="An already curated corpus (skips curation).")
@click.option("--base", default=None, help="Local diffusers SDXL folder.")
@click.option("--controlnet", default=None, help="ControlNet folder (restore objective, bench).")
@click.option("--out", default=None, help="Recipe folder (default runs/recipe).")
@click.option("--grid", default=None, help="Bench grid (default extreme).")
@click.option("--steps", type=int, default=None, help="Training steps of every adapter.")
@click.option(
    "--weights", default=None, help="Adapter weights in the bench, e.g. scene=1.0,face=0.8."
)
@click.option("--max-images", type=int, default=None, help="Bench only the first N images.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def recipe_command(
    config_file: str | None,
    sources: tuple[str, ...],
    corpus: str | None,
    base: str | None,
    controlnet: str | None,
    out: str | None,
    grid: str | None,
    steps: int | None,
    weights: str | None,
    max_images: int | None,
    quiet: bool,
) -> None:
    """Curate → train scene and face LoRAs → bench base/each/both on a grid → report.

    CONFIG_FILE is an optional YAML recipe (see the README); options override it. Re-running
    the same command continues an interrupted recipe.
    """
    from restorelab.weights import MissingWeightsError

    top = {
        "sources": list(sources) or None,
        "corpus": corpus,
        "base": base,
        "controlnet": controlnet,
        "out": out,
    }
    try:
        if config_file:
            config = RecipeConfig.from_yaml(config_file, **top)
        else:
            config = RecipeConfig(**{k: v for k, v in top.items() if v is not None})
        if steps is not None:
            config.train = {**config.train, "steps": steps}
        if grid:
            config.bench.grid = grid
        if max_images is not None:
            config.bench.max_images = max_images
        if weights:
            for item in weights.split(","):
                name, eq, value = item.partition("=")
                if not eq:
                    raise click.BadParameter(
                        f"expected NAME=WEIGHT, got {item!r}", param_hint="--weights"
                    )
                config.bench.weights[name.strip()] = float(value)
        result = run_recipe(config, progress=not quiet)
    except (ValueError, KeyError, FileNotFoundError, MissingWeightsError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise click.ClickException(str(message)) from exc
    click.echo(f"corpus:   {result.corpus}")
    for name, path in result.adapters.items():
        click.echo(f"adapter:  {name} → {path}")
    for stage, error in result.errors.items():
        click.echo(f"skipped:  {stage}: {error}")
    click.echo(f"bench:    {result.rows_written} rows → {result.run}")
    for item, label in result.labels.items():
        click.echo(f"  {item:<12} {label}")
    click.echo(f"\nOpen the dashboard with:\n\n  restorelab dashboard {result.run}\n")
