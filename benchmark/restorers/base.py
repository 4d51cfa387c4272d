"""The restorer registry and the :class:`Restorer` interface every restorer follows.

A restorer maps a degraded RGB ``uint8`` (H, W, 3) image to a restored one of the same shape
(or ``scale`` times larger for super-resolution). Options are keyword arguments validated
against the restorer's declared defaults, and ``config`` / ``config_hash`` identify one
configured restorer in result tables.

Two optional capabilities the runner uses:

* ``wants_degradation = True``: :meth:`Restorer.restore` accepts ``degradation=params`` (the
  cell's true degradation parameters, as in the ``degradation_params`` column) and passes it to
  ``restore_array(image, degradation=params)``; oracle baselines use it (e.g. ``rl:oracle=true``).
* ``wants_context = True``: :meth:`Restorer.restore` accepts ``context=RestoreContext(...)``
  (the image's caption and the cell's seed) and passes it to ``restore_array(image,
  context=...)``; prompt-conditioned restorers (``sdxl``) use it.
* :meth:`Restorer.restore_batch` restores several images in one call; the runner groups up to
  :attr:`Restorer.batch_size` cells per call (default 1: one image at a time).

Files a restorer loads (weights, a LoRA, a script) are part of what it is: :meth:`Restorer.
file_identities` names each one with its size and a content digest, and :attr:`Restorer.
config_hash` covers them, so a run never resumes a restorer whose file changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from restorelab.config import parse_spec, spec_label
from restorelab.degradations.base import to_float, to_uint8
from restorelab.imageio import check_image
from restorelab.registry import Registry


@dataclass(frozen=True)
class RestoreContext:
    """What a restorer may know about a cell besides its pixels (``wants_context = True``).

    Attributes
    ----------
    caption : str
        The clean image's caption (the corpus' ``metadata.jsonl`` ``text``; "" when none).
    seed : int or None
        The cell's seed (the grid seed of the row), for restorers that sample.
    image_id : str
        The corpus image id ("" outside a benchmark).
    """

    caption: str = ""
    seed: int | None = None
    image_id: str = ""


class Restorer:
    """Base class: subclasses set ``name`` and ``defaults`` and implement :meth:`restore_array`.

    Parameters
    ----------
    **options
        Overrides of ``defaults``; an unknown option raises ``ValueError`` listing the valid ones.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: Torch device the restorer runs on ("cpu" for the classical ones).
    device: str = "cpu"
    #: Output size / input size (1: same size; 4: a ×4 super-resolver).
    scale: int = 1
    #: Whether :meth:`restore_array` takes ``degradation=`` (the cell's true parameters).
    wants_degradation: ClassVar[bool] = False
    #: Whether :meth:`restore_array` takes ``context=`` (a :class:`RestoreContext`).
    wants_context: ClassVar[bool] = False
    #: Whether the work runs in child processes (external commands). Such restorers set
    #: ``last_peak_rss_mb`` after each call, and the runner records that instead of its own.
    runs_in_subprocess: ClassVar[bool] = False
    #: Peak resident memory of the last call's child processes, MiB (NaN: not measured).
    last_peak_rss_mb: float = math.nan

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"restorer {self.name!r}: unknown option(s) {unknown}; valid: {valid}")
        self.options: dict[str, Any] = {**self.defaults, **options}

    @property
    def config(self) -> dict[str, Any]:
        """Name and every option value: what identifies this configured restorer."""
        return {"name": self.name, **self.options}

    @property
    def config_hash(self) -> str:
        """Short stable hash of :attr:`config` and :meth:`file_identities` (12 hex digits).

        A restorer that loads no file hashes its config alone, so its hash does not depend
        on which files exist.
        """
        identity: dict[str, Any] = dict(self.config)
        files = self.file_identity_map()
        if files:
            identity["__files__"] = files
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def file_paths(self) -> dict[str, str]:
        """Files or folders this restorer loads, by option name.

        The default: every option whose value is a string naming an existing file or folder.
        Subclasses that load files not named by an option (a model resolved from a cache, a
        script inside a command line) override this and add them.
        """
        out = {}
        for key, value in self.options.items():
            if isinstance(value, (str, os.PathLike)) and str(value).strip():
                try:
                    if Path(value).expanduser().exists():
                        out[key] = str(value)
                except OSError:  # a name too long for the file system: not a path
                    continue
        return out

    def file_identities(self) -> dict[str, str]:
        """``{option: identity}`` for every file in :meth:`file_paths` (see :func:`file_identity`).

        Computed once per object (a changed file is noticed by the next run, not mid-run).
        """
        cached = self.__dict__.get("_file_identity_cache")
        if cached is None:
            cached = {key: file_identity(path) for key, path in sorted(self.file_paths().items())}
            self.__dict__["_file_identity_cache"] = cached
        return dict(cached)

    def file_identity_map(self) -> dict[str, str]:
        """:meth:`file_identities` as ``{name: identity}`` strings, whatever form an override
        returns: a mapping as is, a list of ``{"path": ..., ...}`` records keyed by path (the
        ``sdxl`` restorer's form)."""
        found = self.file_identities()
        if isinstance(found, dict):
            return {str(k): str(v) for k, v in sorted(found.items())}
        out = {}
        for index, item in enumerate(found or []):
            if isinstance(item, dict) and "path" in item:
                rest = " ".join(f"{k}={v}" for k, v in sorted(item.items()) if k != "path")
                out[str(item["path"])] = rest
            else:
                out[f"file[{index}]"] = json.dumps(item, sort_keys=True, default=str)
        return dict(sorted(out.items()))

    @property
    def label(self) -> str:
        """Display name: the name, plus non-default options."""
        return spec_label(self.name, self.options, self.defaults)

    @property
    def batch_size(self) -> int:
        """Most images the runner hands to :meth:`restore_batch` at once (1 by default)."""
        return 1

    def to(self, device: str) -> Restorer:
        """Run on ``device`` (a resolved torch device such as ``"cuda:1"``); returns self.

        Placement, not configuration: :attr:`config` and its hash do not change, so a run
        resumed on another GPU skips the finished cells. The base class ignores it (the
        classical restorers run on the CPU whatever the device); torch restorers move their
        models there, external commands get that GPU as their only visible one.
        """
        return self

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        """Restore an RGB ``uint8`` image; subclasses implement this.

        Subclasses with ``wants_degradation = True`` take a keyword ``degradation`` (a dict of
        the true degradation parameters, or None when unknown).
        """
        raise NotImplementedError

    def expected_shape(self, image: np.ndarray) -> tuple[int, ...]:
        """The output shape for input ``image``: (H·scale, W·scale, 3)."""
        height, width = image.shape[:2]
        return (height * self.scale, width * self.scale, image.shape[2])

    def check_output(self, image: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Raise ``ValueError`` unless ``out`` is a valid output for input ``image``."""
        check_image(out, name=f"{self.name} output")
        if out.shape != self.expected_shape(image):
            raise ValueError(
                f"{self.name} returned shape {out.shape}, expected {self.expected_shape(image)}"
            )
        return out

    def restore(
        self,
        image: np.ndarray,
        *,
        degradation: dict | None = None,
        context: RestoreContext | None = None,
    ) -> np.ndarray:
        """Restore ``image`` (RGB ``uint8`` (H, W, 3)).

        Parameters
        ----------
        image : ndarray of uint8, shape (H, W, 3)
            The degraded image.
        degradation : dict, optional
            The true degradation parameters; passed on only when ``wants_degradation`` is set,
            ignored otherwise.
        context : RestoreContext, optional
            Caption and seed of the cell; passed on only when ``wants_context`` is set.

        Returns
        -------
        ndarray of uint8
            Shape (H·scale, W·scale, 3) (the input's shape for ``scale = 1``).
        """
        check_image(image, name="degraded image")
        extra: dict[str, Any] = {}
        if self.wants_degradation:
            extra["degradation"] = degradation
        if self.wants_context:
            extra["context"] = context
        return self.check_output(image, self.restore_array(image, **extra))

    def restore_batch(
        self,
        images: list[np.ndarray],
        *,
        degradations: list[dict | None] | None = None,
        contexts: list[RestoreContext | None] | None = None,
    ) -> list[np.ndarray]:
        """Restore several images; the default loops over :meth:`restore`.

        Parameters
        ----------
        images : list of ndarray
            Degraded RGB ``uint8`` images (sizes may differ).
        degradations : list of dict, optional
            The true degradation parameters of each image (see :meth:`restore`).
        contexts : list of RestoreContext, optional
            Caption and seed of each image (see :meth:`restore`).

        Returns
        -------
        list of ndarray
            One restored image per input, in order.
        """
        degradations = degradations or [None] * len(images)
        contexts = contexts or [None] * len(images)
        return [
            self.restore(im, degradation=d, context=c)
            for im, d, c in zip(images, degradations, contexts, strict=True)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


#: Bytes read from the start, middle and end of each file for its digest.
SAMPLE_BYTES = 1 << 20
#: Most files of one folder named in a folder's identity.
MAX_FOLDER_FILES = 10_000


def _file_digest(path: Path, size: int) -> str:
    """SHA-256 of the whole file up to 3 MiB; beyond, of its first, middle and last MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= 3 * SAMPLE_BYTES:
            digest.update(handle.read())
        else:
            for offset in (0, size // 2, size - SAMPLE_BYTES):
                handle.seek(offset)
                digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def file_identity(path: str | os.PathLike) -> str:
    """What a file or folder *is*, independent of its place and timestamps.

    A file: ``"file size=<bytes> sha256=<digest>"``, the digest over the whole file up to
    3 MiB, else over its first, middle and last MiB (retrained weights change all three; a
    copy or a ``touch`` changes none). A folder: ``"dir files=<n> sha256=<digest>"`` over
    every file's relative path, size and digest (symbolic links followed, hidden files
    included, at most :data:`MAX_FOLDER_FILES`). A path that does not exist: ``"missing"``.
    """
    path = Path(path).expanduser()
    try:
        if path.is_file():
            size = path.stat().st_size
            return f"file size={size} sha256={_file_digest(path, size)}"
        if path.is_dir():
            digest = hashlib.sha256()
            count = 0
            for root, dirs, files in os.walk(path, followlinks=True):
                dirs.sort()
                for name in sorted(files):
                    file = Path(root) / name
                    size = file.stat().st_size
                    rel = file.relative_to(path).as_posix()
                    digest.update(f"{rel}\0{size}\0{_file_digest(file, size)}\n".encode())
                    count += 1
                    if count >= MAX_FOLDER_FILES:
                        break
                if count >= MAX_FOLDER_FILES:
                    break
            return f"dir files={count} sha256={digest.hexdigest()[:16]}"
    except OSError as exc:
        return f"unreadable {type(exc).__name__}"
    return "missing"


RESTORERS: Registry[type[Restorer]] = Registry("restorer")


def register_restorer(cls: type[Restorer]) -> type[Restorer]:
    """Class decorator: register a :class:`Restorer` subclass under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a class attribute 'name'")
    return RESTORERS.add(cls.name, cls)


def float_restorer(
    name: str, *, wants_degradation: bool = False, **defaults: Any
) -> Callable[[Callable[..., np.ndarray]], type[Restorer]]:
    """Register ``fn(image_float01, **options) -> float01`` as a restorer with ``defaults``.

    The wrapper converts ``uint8`` → float64 in [0, 1] and back (clipped, rounded). With
    ``wants_degradation=True`` the function also receives ``degradation=`` (the cell's true
    degradation parameters, or None).
    """

    def decorator(fn: Callable[..., np.ndarray]) -> type[Restorer]:
        def restore_array(self: Restorer, image: np.ndarray, **extra: Any) -> np.ndarray:
            return to_uint8(fn(to_float(image), **self.options, **extra))

        cls = type(
            f"{name.title().replace('_', '')}Restorer",
            (Restorer,),
            {
                "name": name,
                "defaults": dict(defaults),
                "restore_array": restore_array,
                "wants_degradation": bool(wants_degradation),
                "__doc__": fn.__doc__,
                "__module__": fn.__module__,
                # the decorator binds the class to the function's name: pickle finds it there
                "__qualname__": fn.__qualname__,
            },
        )
        return register_restorer(cls)

    return decorator


def create_restorer(spec: str, **options: Any) -> Restorer:
    """Build a restorer from ``"name"`` or ``"name:key=value,..."`` plus keyword ``options``.

    ``"cmd:COMMAND"`` (optionally ``"cmd[key=value,...]:COMMAND"``) builds an external-command
    restorer: everything after the first ``:`` is the command template, not options (see
    :class:`~restorelab.benchmark.restorers.command.CommandRestorer`).
    """
    if spec.startswith(("cmd:", "cmd[")):
        head, sep, command = spec.partition("]:") if spec.startswith("cmd[") else ("", "", "")
        if spec.startswith("cmd["):
            if not sep:
                raise ValueError(f"spec {spec!r}: expected cmd[key=value,...]:COMMAND")
            _, spec_options = parse_spec("cmd:" + head[len("cmd[") :])
        else:
            command, spec_options = spec[len("cmd:") :], {}
        return RESTORERS.get("cmd")(**{**spec_options, "command": command.strip(), **options})
    name, spec_options = parse_spec(spec)
    return RESTORERS.get(name)(**{**spec_options, **options})


def list_restorers() -> list[str]:
    """Names of all registered restorers."""
    return RESTORERS.names()
