"""The curation config: one schema for the YAML file, the Python API and the command line.

Every key is declared once in :data:`CONFIG_KEYS` with its type, range, default and meaning.
:func:`validate_config` checks a whole mapping against it before any work starts — types
(no strings for numbers, no numbers for booleans), ranges, NaN and infinities, unknown keys
(with the closest valid name), every filter threshold and the quotas — and raises one
:class:`~restorelab.config.ConfigError` naming the file, the key and the allowed values.
:func:`config_help` prints every key (``restorelab list``, ``restorelab curate
--help-config``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from restorelab.config import ConfigError, load_yaml
from restorelab.curation.filters import FILTERS, default_thresholds
from restorelab.imageio import MAX_PIXELS


@dataclass(frozen=True)
class ConfigKey:
    """One top-level key of the curation config.

    ``kind`` is ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"filters"`` or ``"quotas"``;
    numbers must lie in ``[minimum, maximum]``; ``nullable`` allows ``null``; ``choices``
    lists the words a string may be (None: any string).
    """

    name: str
    kind: str
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    choices: tuple[str, ...] | None = None

    def allowed(self) -> str:
        """The values this key accepts, in words."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind in ("int", "float"):
            text = "an integer" if self.kind == "int" else "a number"
            if self.minimum is not None and self.maximum is not None:
                text += f" from {_fmt(self.minimum)} to {_fmt(self.maximum)}"
            elif self.minimum is not None:
                text += f" >= {_fmt(self.minimum)}"
        elif self.kind == "str":
            text = "a string" if not self.choices else " or ".join(repr(c) for c in self.choices)
        elif self.kind == "filters":
            text = "a mapping of filter name to threshold (see the filters below)"
        else:
            text = (
                "a mapping of category to an integer count or a share from 0.0 to 1.0 of the target"
            )
        return text + (" or null" if self.nullable else "")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


#: Every top-level key, in the order ``--help-config`` prints them.
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "target",
        "int",
        2600,
        "How many images to keep (null: every image that passes). The reference recipe: 2600.",
        minimum=1,
        nullable=True,
    ),
    ConfigKey(
        "filters",
        "filters",
        {},
        "Filter name -> threshold, merged over the defaults below; null switches one off.",
    ),
    ConfigKey(
        "near_duplicates",
        "bool",
        True,
        "Group near duplicates (resized, re-encoded, slightly cropped copies) and keep one.",
    ),
    ConfigKey(
        "hamming_radius",
        "int",
        None,
        "Largest pHash distance (bits of 64) of a near-duplicate candidate pair "
        "(null: 22, see restorelab.curation.dedup).",
        minimum=0,
        maximum=64,
        nullable=True,
    ),
    ConfigKey(
        "min_similarity",
        "float",
        None,
        "Smallest aligned band-pass correlation of a near-duplicate pair (null: 0.7).",
        minimum=-1,
        maximum=1,
        nullable=True,
    ),
    ConfigKey(
        "require_captions",
        "bool",
        False,
        "Reject images whose caption is empty, shorter than min_caption_words or the same "
        "text as another kept image's.",
    ),
    ConfigKey(
        "min_caption_words", "int", 5, "Shortest caption, in words, with require_captions.", 1
    ),
    ConfigKey(
        "quality_pool",
        "float",
        2.0,
        "Selection takes the best quality_pool x target images by quality, then the most "
        "diverse target of them (1: quality alone decides).",
        minimum=1,
    ),
    ConfigKey(
        "category",
        "str",
        None,
        "Where quotas read an image's category: 'folder' (its folder in the source), 'face' "
        "(face / no_face, OpenCV face detector) or a metadata column name.",
        nullable=True,
    ),
    ConfigKey(
        "quotas",
        "quotas",
        {},
        "Category -> integer count or share (0.0-1.0) of the target, filled first; needs category.",
    ),
    ConfigKey(
        "split",
        "str",
        "train",
        "Split read from a saved DatasetDict source (its other splits are not read).",
    ),
    ConfigKey(
        "max_pixels",
        "int",
        MAX_PIXELS,
        "Larger images are rejected without decoding (decompression-bomb guard).",
        minimum=1,
    ),
    ConfigKey(
        "parquet_shard_rows",
        "int",
        0,
        "Also write Parquet shards of this many rows (image bytes embedded) under "
        "OUT/parquet (0: none).",
        minimum=0,
    ),
    ConfigKey(
        "license", "str", "other", "Licence field of the dataset card (check your sources')."
    ),
    ConfigKey("workers", "int", 0, "Analysis and export threads (0: one per CPU core).", minimum=0),
)
_KEYS = {key.name: key for key in CONFIG_KEYS}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_number(value: Any, kind: str, low: float | None, high: float | None) -> str | None:
    """Why ``value`` is not a valid number of ``kind`` in [low, high]; None when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"got {value!r} ({_type_name(value)})"
    if kind == "int" and not isinstance(value, int):
        return f"got {value!r} (a float; write an integer)"
    if not math.isfinite(value):
        return f"got {value!r}"
    if (low is not None and value < low) or (high is not None and value > high):
        return f"got {value!r} (out of range)"
    return None


def validate_config(data: Mapping[str, Any], *, source: str = "curation config") -> dict:
    """Check a curation config mapping against :data:`CONFIG_KEYS`; return it complete.

    Parameters
    ----------
    data : mapping
        Keys and values as in the YAML file (missing keys take their defaults).
    source : str, keyword-only
        What the errors name first: the file's path, ``"command line"``, ...

    Returns
    -------
    dict
        Every key, defaults filled in, ``filters`` merged over the filters' defaults.

    Raises
    ------
    ConfigError
        ``"<source>: <key>: expected <allowed values>, got <value>"`` for the first bad key.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys, got {_type_name(data)}")

    def fail(key: str, allowed: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: expected {allowed}, {problem}")

    unknown = sorted(set(data) - set(_KEYS), key=str)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), list(_KEYS), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(hints)}; valid keys: {', '.join(_KEYS)} "
            "(see `restorelab curate --help-config`)"
        )
    out: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        value = data.get(key.name, key.default)
        if isinstance(value, (dict, list)):
            value = type(value)(value)
        if value is None and key.nullable:
            out[key.name] = None
            continue
        if key.kind in ("int", "float"):
            problem = _check_number(value, key.kind, key.minimum, key.maximum)
            if problem:
                raise fail(key.name, key.allowed(), problem)
            value = float(value) if key.kind == "float" else value
        elif key.kind == "bool":
            if not isinstance(value, bool):
                raise fail(key.name, key.allowed(), f"got {value!r} ({_type_name(value)})")
        elif key.kind == "str":
            if not isinstance(value, str) or not value.strip():
                raise fail(key.name, key.allowed(), f"got {value!r} ({_type_name(value)})")
            if key.choices and value not in key.choices:
                raise fail(key.name, key.allowed(), f"got {value!r}")
        elif key.kind == "filters":
            value = _validate_filters(value, source)
        elif key.kind == "quotas":
            value = _validate_quotas(value, source)
        out[key.name] = value
    if out["quotas"] and not out["category"]:
        raise ConfigError(
            f"{source}: quotas: need a category (category: folder, face or a metadata "
            f"column); got quotas {out['quotas']} and no category"
        )
    if out["quotas"] and out["target"] is not None:
        counts = {
            c: (q if isinstance(q, int) else math.ceil(round(q * out["target"], 9)))
            for c, q in out["quotas"].items()
        }
        if sum(counts.values()) > out["target"]:
            raise ConfigError(
                f"{source}: quotas: expected counts that add up to at most the target "
                f"{out['target']}, got {counts} (sum {sum(counts.values())})"
            )
    return out


def _validate_filters(value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: filters: expected a mapping of filter name to threshold, got "
            f"{value!r} ({_type_name(value)})"
        )
    names = FILTERS.names()
    unknown = sorted(set(value) - set(names), key=str)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), names, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{source}: filters: unknown filter(s) {', '.join(hints)}; known: {', '.join(names)}"
        )
    merged = {**default_thresholds(), **value}
    for name, threshold in merged.items():
        spec = FILTERS.get(name)
        if threshold is None:
            continue
        if spec.kind == "flag":
            if not isinstance(threshold, bool):
                raise ConfigError(
                    f"{source}: filters.{name}: expected {spec.allowed()}, got {threshold!r} "
                    f"({_type_name(threshold)})"
                )
            continue
        problem = _check_number(threshold, spec.kind, spec.minimum, spec.maximum)
        if problem:
            raise ConfigError(f"{source}: filters.{name}: expected {spec.allowed()}, {problem}")
    return merged


def _validate_quotas(value: Any, source: str) -> dict[str, float | int]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: quotas: expected a mapping of category to count or share, got "
            f"{value!r} ({_type_name(value)})"
        )
    out: dict[str, float | int] = {}
    for category, quota in value.items():
        where = f"{source}: quotas.{category}"
        if isinstance(quota, bool) or not isinstance(quota, (int, float)):
            raise ConfigError(
                f"{where}: expected an integer count or a share from 0.0 to 1.0, got "
                f"{quota!r} ({_type_name(quota)})"
            )
        if isinstance(quota, int):
            if quota < 0:
                raise ConfigError(f"{where}: expected an integer count >= 0, got {quota}")
        elif not (math.isfinite(quota) and 0.0 <= quota <= 1.0):
            hint = (
                f" (for a count of {int(quota)} images write {int(quota)})"
                if (math.isfinite(quota) and quota > 1 and quota.is_integer())
                else ""
            )
            raise ConfigError(
                f"{where}: expected a share from 0.0 to 1.0 of the target or an integer "
                f"count, got {quota!r}{hint}"
            )
        out[str(category)] = quota
    return out


@dataclass
class CurationConfig:
    """What a curation run keeps. YAML keys are the field names; see :data:`CONFIG_KEYS`
    (or ``restorelab curate --help-config``) for each one's type, range and meaning.

    Every value is validated on construction (:func:`validate_config`); ``filters`` holds
    the config values of every filter (defaults merged in), :meth:`active_filters` the
    thresholds compared with.
    """

    filters: dict[str, Any] = field(default_factory=dict)
    target: int | None = 2600
    near_duplicates: bool = True
    hamming_radius: int | None = None
    min_similarity: float | None = None
    require_captions: bool = False
    min_caption_words: int = 5
    quality_pool: float = 2.0
    category: str | None = None
    quotas: dict[str, float] = field(default_factory=dict)
    split: str = "train"
    max_pixels: int = MAX_PIXELS
    parquet_shard_rows: int = 0
    license: str = "other"
    workers: int = 0

    def __post_init__(self) -> None:
        self._apply(validate_config(self._raw(), source="CurationConfig"))

    def _raw(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def _apply(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> CurationConfig:
        """Read and validate a config file; errors name the file, the key and the allowed
        values."""
        return cls.from_mapping(load_yaml(path), source=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str) -> CurationConfig:
        """Validate ``data`` (errors start with ``source``) and build the config."""
        values = validate_config(data, source=source)
        config = cls.__new__(cls)
        config._apply(values)
        return config

    def replace(self, *, source: str, **changes: Any) -> CurationConfig:
        """A copy with ``changes`` (e.g. command-line overrides), validated; errors start with
        ``source``."""
        return self.from_mapping({**self._raw(), **changes}, source=source)

    def active_filters(self) -> dict[str, Any]:
        """Filter name → compared threshold, for the filters that are on."""
        out = {}
        for name, value in self.filters.items():
            threshold = FILTERS.get(name).threshold(value)
            if threshold is not None:
                out[name] = threshold
        return out


def config_help() -> str:
    """Every config key with its default, allowed values and meaning (plain text)."""
    lines = [
        "Curation config (YAML; `restorelab curate SOURCES --out OUT --config FILE`). Every key",
        "is optional; unknown keys and bad values are refused before any work starts.",
        "",
    ]
    for key in CONFIG_KEYS:
        default = "null" if key.default is None else key.default
        if key.kind == "filters":
            lines.append("  filters:")
            lines.append(f"      {key.doc}")
            for name in FILTERS:
                spec = FILTERS.get(name)
                value = spec.config_default
                shown = (
                    "null"
                    if value is None
                    else str(value).lower()
                    if spec.kind == "flag"
                    else value
                )
                lines.append(f"    {name}: {shown}")
                if spec.kind == "flag":
                    rule = f"when on, an image passes when {spec.signal} is {spec.default}"
                else:
                    rule = f"passes when {spec.signal} {spec.op} threshold"
                lines.append(f"        {spec.allowed()}; {rule}. {spec.doc}")
            continue
        if key.kind == "quotas":
            default = "{}"
        elif key.kind == "bool":
            default = str(key.default).lower()
        lines.append(f"  {key.name}: {default}")
        lines.append(f"      {key.allowed()}. {key.doc}")
    return "\n".join(lines)
