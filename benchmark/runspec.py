"""The run spec: one typed, frozen description of everything that defines a run's numbers.

A :class:`RunSpec` holds the corpus fingerprint (image ids and content hashes), the grid's
meaning (:class:`~restorelab.degradations.gridspec.GridSpec`: the level behind every swept
degradation and severity, chains included), the restorers (configs and the identity of every
file they load), the metrics (labels and conventions) and, for ``--pairs`` runs, the pairing
(pair ids, both files' hashes and the pairing rule). Placement (device, workers, shard) is not
part of it. It is stored in ``run.json`` under ``"spec"`` and reads back equal
(:meth:`RunSpec.from_dict`).

Resuming compares the stored spec with the new one (:meth:`RunSpec.compare`): what the new spec
adds (images, severities, seeds, restorers, metrics) becomes work; anything that gives an
existing key another meaning (other content under an image id, another level under an op
name, another file or config behind a restorer label, another convention behind a metric
label, another pairing rule) refuses the run before any work (:class:`SpecConflictError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from restorelab.benchmark.restorers import Restorer
from restorelab.corpus import CorpusFingerprint
from restorelab.degradations.gridspec import GridSpec, freeze

#: Version of the spec's layout in ``run.json``.
SPEC_FORMAT = "restorelab-runspec/1"
#: How ``--pairs`` runs match and prepare their pairs (see ``run_benchmark_pairs``).
PAIRING_RULE = (
    "match_folders: names without side markers; GT cropped to scale*LQ; "
    "same-size restorers get the LQ upscaled bicubically (PIL)"
)


class SpecConflictError(ValueError):
    """A run folder holds results whose keys mean something else than in the new spec."""

    def __init__(self, run_dir: Any, differences: list[str]) -> None:
        self.differences = list(differences)
        lines = "\n  ".join(self.differences)
        super().__init__(
            f"refused: {run_dir} holds results made with another set-up; resuming would mix "
            f"two set-ups under the same keys:\n  {lines}\n"
            f"Nothing was computed. Use a new --out (e.g. {run_dir}-2), or re-run with the "
            "set-up the folder was made with."
        )


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _text(value: Any) -> str:
    return json.dumps(_thaw(value), sort_keys=True, default=str)


@dataclass(frozen=True)
class RestorerEntry:
    """One configured restorer: ``label`` (its name in tables), ``config`` (every option, as
    sorted (key, value) pairs), ``files`` (option → file identity) and ``config_hash``."""

    label: str
    config: tuple[tuple[str, Any], ...]
    files: tuple[tuple[str, str], ...]
    config_hash: str

    @classmethod
    def of(cls, restorer: Restorer) -> RestorerEntry:
        return cls(
            restorer.label,
            freeze(restorer.config),
            tuple(restorer.file_identity_map().items()),
            restorer.config_hash,
        )

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "config": {k: _thaw(v) for k, v in self.config},
            "files": dict(self.files),
            "config_hash": self.config_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> RestorerEntry:
        return cls(
            str(data["label"]),
            freeze(dict(data["config"])),
            tuple(sorted(dict(data.get("files", {})).items())),
            str(data["config_hash"]),
        )

    def differences(self, new: RestorerEntry) -> list[str]:
        """What differs between two entries with the same label."""
        out = []
        old_cfg, new_cfg = dict(self.config), dict(new.config)
        # a config that lists its files (sdxl) is compared on them below, one line per file
        for key in sorted((old_cfg.keys() | new_cfg.keys()) - {"files"}):
            if _text(old_cfg.get(key)) != _text(new_cfg.get(key)):
                out.append(
                    f"restorer {self.label}: option {key} is {_text(old_cfg.get(key))} in the "
                    f"run, {_text(new_cfg.get(key))} now"
                )
        old_files, new_files = dict(self.files), dict(new.files)
        for key in sorted(old_files.keys() | new_files.keys()):
            if old_files.get(key) != new_files.get(key):
                out.append(
                    f"restorer {self.label}: the file behind {key} changed "
                    f"({old_files.get(key, 'none')} in the run, {new_files.get(key, 'none')} now)"
                )
        if not out and self.config_hash != new.config_hash:
            out.append(
                f"restorer {self.label}: config hash {self.config_hash} in the run, "
                f"{new.config_hash} now"
            )
        return out


@dataclass(frozen=True)
class MetricEntry:
    """One metric column: its ``label``, ``convention`` string and direction."""

    label: str
    convention: str
    higher_is_better: bool

    @classmethod
    def of(cls, label: str, metric: Any) -> MetricEntry:
        """The entry of a bound :class:`~restorelab.benchmark.metrics.base.Metric`; its
        placement options (device, weights folder) are left out of the convention."""
        from restorelab.benchmark.metrics.base import PLACEMENT_OPTIONS

        options = {k: v for k, v in metric.options.items() if k not in PLACEMENT_OPTIONS}
        opts = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
        convention = str(metric.spec.convention) + (f"; {opts}" if opts else "")
        return cls(label, convention, bool(metric.higher_is_better))

    def to_dict(self) -> dict:
        return {"convention": self.convention, "higher_is_better": self.higher_is_better}


@dataclass(frozen=True)
class PairingSpec:
    """A paired test set: ``(image_id, lq_hash, gt_hash)`` per pair and the pairing ``rule``."""

    pairs: tuple[tuple[str, str, str], ...]
    rule: str = PAIRING_RULE

    def to_dict(self) -> dict:
        return {"rule": self.rule, "pairs": {i: [lq, gt] for i, lq, gt in self.pairs}}

    @classmethod
    def from_dict(cls, data: Mapping) -> PairingSpec:
        pairs = tuple(sorted((str(i), str(v[0]), str(v[1])) for i, v in data["pairs"].items()))
        return cls(pairs, str(data["rule"]))

    def conflicts(self, new: PairingSpec) -> list[str]:
        out = []
        if self.rule != new.rule:
            out.append(f"pairing rule {self.rule!r} in the run, {new.rule!r} now")
        old = {i: (lq, gt) for i, lq, gt in self.pairs}
        changed = sorted(i for i, lq, gt in new.pairs if i in old and old[i] != (lq, gt))
        if changed:
            more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            out.append(
                f"pairs: {len(changed)} pair id(s) now hold other LQ or GT content: "
                f"{', '.join(changed[:5])}{more}"
            )
        return out

    def merged(self, new: PairingSpec) -> PairingSpec:
        table = {i: (lq, gt) for i, lq, gt in self.pairs}
        table.update({i: (lq, gt) for i, lq, gt in new.pairs})
        return PairingSpec(tuple(sorted((i, *v) for i, v in table.items())), new.rule)


@dataclass(frozen=True)
class SpecDiff:
    """What a new spec adds to a stored one, and what it contradicts."""

    conflicts: tuple[str, ...] = ()
    added: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        return not self.conflicts and not self.added


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run's numbers (see the module docstring).

    Exactly one of (``corpus`` and ``grid``) or ``pairing`` is set.
    """

    restorers: tuple[RestorerEntry, ...]
    metrics: tuple[MetricEntry, ...]
    corpus: CorpusFingerprint | None = None
    grid: GridSpec | None = None
    pairing: PairingSpec | None = None
    format: str = field(default=SPEC_FORMAT)

    @classmethod
    def build(
        cls,
        restorers: Iterable[Restorer],
        metrics: Mapping[str, Any],
        *,
        corpus: CorpusFingerprint | None = None,
        grid: GridSpec | None = None,
        pairing: PairingSpec | None = None,
    ) -> RunSpec:
        """The spec of restorer objects and bound metrics (``{label: Metric}``)."""
        return cls(
            tuple(RestorerEntry.of(r) for r in restorers),
            tuple(MetricEntry.of(label, m) for label, m in metrics.items()),
            corpus,
            grid,
            pairing,
        )

    @property
    def metric_labels(self) -> tuple[str, ...]:
        return tuple(m.label for m in self.metrics)

    def to_dict(self) -> dict:
        """The JSON form stored in ``run.json`` under ``"spec"``."""
        out: dict[str, Any] = {"format": self.format}
        if self.corpus is not None:
            out["corpus"] = self.corpus.to_dict()
        if self.grid is not None:
            out["grid"] = self.grid.to_dict()
        if self.pairing is not None:
            out["pairing"] = self.pairing.to_dict()
        out["restorers"] = [r.to_dict() for r in self.restorers]
        out["metrics"] = {m.label: m.to_dict() for m in self.metrics}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> RunSpec:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on another format."""
        if data.get("format") != SPEC_FORMAT:
            raise ValueError(f"run spec format {data.get('format')!r}, expected {SPEC_FORMAT!r}")
        return cls(
            tuple(RestorerEntry.from_dict(r) for r in data.get("restorers", [])),
            tuple(
                MetricEntry(label, str(m["convention"]), bool(m["higher_is_better"]))
                for label, m in data.get("metrics", {}).items()
            ),
            CorpusFingerprint.from_dict(data["corpus"]) if "corpus" in data else None,
            GridSpec.from_dict(data["grid"]) if "grid" in data else None,
            PairingSpec.from_dict(data["pairing"]) if "pairing" in data else None,
        )

    def describe(self, width: int = 96) -> list[str]:
        """Lines (at most ``width`` characters) for reports and the dashboard: what the run's
        numbers were made from."""
        lines = []
        if self.corpus is not None:
            lines.append(f"corpus: {len(self.corpus.images)} images (ids with content hashes)")
        if self.grid is not None:
            keys = len(self.grid.keys())
            lines.append(
                f"grid: {self.grid.name}, {keys} (degradation, severity) keys × seeds "
                f"{list(self.grid.seeds)}"
            )
            for name, pairs in self.grid.levels:
                levels = " ".join(f"s{s}={_text(level)}" for s, level in pairs)
                lines.append(f"  {name}: {levels}")
        if self.pairing is not None:
            lines.append(f"pairs: {len(self.pairing.pairs)} ({self.pairing.rule})")
        for r in self.restorers:
            files = f", files: {dict(r.files)}" if r.files else ""
            lines.append(f"restorer {r.label} [{r.config_hash}]{files}")
        for m in self.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            lines.append(f"metric {m.label} {arrow} {m.convention}")
        return [line if len(line) <= width else line[: width - 1] + "…" for line in lines]

    def compare(self, new: RunSpec) -> SpecDiff:
        """How ``new`` relates to ``self`` (the stored spec): conflicts and additions."""
        conflicts: list[str] = []
        added: list[str] = []
        if (self.pairing is None) != (new.pairing is None):
            kinds = ("a paired test set", "a corpus × grid sweep")
            old_kind, new_kind = kinds[self.pairing is None], kinds[new.pairing is None]
            conflicts.append(f"the run is {old_kind}; this command is {new_kind}")
            return SpecDiff(tuple(conflicts))
        if self.corpus is not None and new.corpus is not None:
            conflicts += self.corpus.conflicts(new.corpus)
            if extra := self.corpus.added(new.corpus):
                added.append(f"{len(extra)} image(s)")
        if self.grid is not None and new.grid is not None:
            conflicts += self.grid.conflicts(new.grid)
            added += self.grid.added(new.grid)
        if self.pairing is not None and new.pairing is not None:
            conflicts += self.pairing.conflicts(new.pairing)
            old_ids = {p[0] for p in self.pairing.pairs}
            extra_pairs = [p for p in new.pairing.pairs if p[0] not in old_ids]
            if extra_pairs:
                added.append(f"{len(extra_pairs)} pair(s)")
        old_restorers = {r.label: r for r in self.restorers}
        for entry in new.restorers:
            if entry.label in old_restorers:
                conflicts += old_restorers[entry.label].differences(entry)
            else:
                added.append(f"restorer {entry.label}")
        old_metrics = {m.label: m for m in self.metrics}
        for metric in new.metrics:
            old = old_metrics.get(metric.label)
            if old is None:
                added.append(f"metric {metric.label}")
            elif old != metric:
                conflicts.append(
                    f"metric {metric.label}: convention {old.convention!r} "
                    f"(higher is better: {old.higher_is_better}) in the run, "
                    f"{metric.convention!r} (higher is better: {metric.higher_is_better}) now"
                )
        return SpecDiff(tuple(conflicts), tuple(added))

    def merged(self, new: RunSpec) -> RunSpec:
        """The union of ``self`` and ``new`` (call after :meth:`compare` found no conflict)."""

        def union(old: Any, now: Any) -> Any:
            if old is None:
                return now
            return old if now is None else old.merged(now)

        restorers = {r.label: r for r in self.restorers}
        restorers.update({r.label: r for r in new.restorers})
        metrics = {m.label: m for m in self.metrics}
        metrics.update({m.label: m for m in new.metrics})
        return RunSpec(
            tuple(restorers.values()),
            tuple(metrics.values()),
            union(self.corpus, new.corpus),
            union(self.grid, new.grid),
            union(self.pairing, new.pairing),
        )


def load_run_spec(run_dir: str | os.PathLike) -> RunSpec | None:
    """The spec stored in ``RUN_DIR/run.json`` (None for runs made before specs existed)."""
    from restorelab.results import read_run_info

    stored = read_run_info(run_dir).get("spec")
    return RunSpec.from_dict(stored) if stored else None
