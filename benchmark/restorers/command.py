"""Any external program as a restorer: ``cmd:python my_restorer.py {in} {out}``.

Options go in brackets before the colon, ``cmd[key=value,...]:COMMAND``:

* ``name=median`` — a short label for reports, the dashboard and ``report --vs median ...``
  (default: the whole command);
* ``scale=4`` — the output is 4× the input's size (super-resolvers; default 1);
* ``timeout=600`` — seconds per call; ``batch_size=16`` — images per call in folder mode.

Example: ``cmd[name=realesrgan,scale=4]:python inference.py -i {in} -o {out}``.

The command template is split like a shell line (:func:`shlex.split`, no shell runs) and the
placeholders are replaced in every word:

* file mode — ``{in}`` / ``{out}``: one PNG in, one PNG out per image;
* folder mode — ``{in_dir}`` / ``{out_dir}``: the runner hands a batch of up to ``batch_size``
  images; they are written as ``00000.png``, ``00001.png``, ... in ``{in_dir}`` and the command
  must write the same file names to ``{out_dir}``.

A non-zero exit, a timeout, a missing output file or an output of the wrong size raises
:class:`CommandError` naming the command, the exit code and the last lines of its stderr; the
runner records that message in the row's ``error`` column and goes on.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from restorelab.benchmark.restorers.base import Restorer, register_restorer
from restorelab.devices import cuda_visible_devices
from restorelab.imageio import read_image
from restorelab.memory import run_measured

#: Lines of stderr quoted in an error message.
STDERR_LINES = 8


class CommandError(RuntimeError):
    """An external restorer command failed (exit code, missing or malformed output)."""


def _tail(text: str, lines: int = STDERR_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _check_name(name: str) -> str:
    """``name`` when it is a usable short label, else ValueError naming the rule."""
    if not name:
        return ""
    from restorelab.benchmark.restorers.base import RESTORERS

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or len(name) > 40:
        raise ValueError(
            f"cmd restorer: name {name!r} must be 1-40 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    if name in RESTORERS:
        raise ValueError(
            f"cmd restorer: name {name!r} is a registered restorer; choose another name"
        )
    return name


@register_restorer
class CommandRestorer(Restorer):
    """Run an external command per image (``{in}``, ``{out}``) or per batch (``{in_dir}``, ...).

    Parameters
    ----------
    command : str
        The command template, e.g. ``"python sr.py --input {in} --output {out}"``. It is part of
        :attr:`config`, so the config hash changes with the command.
    timeout : float
        Seconds one call may run (per image in file mode, per batch in folder mode).
    batch_size : int
        Images per call in folder mode (ignored in file mode).
    scale : int
        Output size / input size (1 for same-size restorers, e.g. 4 for a ×4 super-resolver).
    name : str
        Short label (letters, digits, ``._-``), used instead of the command in reports; it
        must not be a registered restorer's name. Default: the label is ``cmd:<command>``.
    """

    name = "cmd"
    runs_in_subprocess = True
    #: ``CUDA_VISIBLE_DEVICES`` for the command, set by :meth:`to` (None: inherit).
    _visible_gpu: str | None = None
    defaults: ClassVar[dict[str, Any]] = {
        "command": "",
        "timeout": 600.0,
        "batch_size": 16,
        "scale": 1,
        "name": "",
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        command = str(self.options["command"]).strip()
        if not command:
            raise ValueError("cmd restorer: give a command, e.g. 'cmd:python r.py {in} {out}'")
        words = shlex.split(command)
        self.folder_mode = any("{in_dir}" in w for w in words)
        needed = ("{in_dir}", "{out_dir}") if self.folder_mode else ("{in}", "{out}")
        missing = [p for p in needed if not any(p in w for w in words)]
        if missing:
            raise ValueError(
                f"cmd restorer: command {command!r} lacks the placeholder(s) {missing} "
                "(use {in} and {out}, or {in_dir} and {out_dir})"
            )
        if int(self.options["batch_size"]) < 1 or int(self.options["scale"]) < 1:
            raise ValueError("cmd restorer: batch_size and scale must be >= 1")
        self.command = command
        self.scale = int(self.options["scale"])
        self.short_name = _check_name(str(self.options["name"] or ""))

    @property
    def label(self) -> str:
        """The ``name`` option when given, else ``cmd:<command>`` plus any other non-default
        option."""
        if self.short_name:
            return self.short_name
        changed = {
            k: v for k, v in self.options.items() if k != "command" and self.defaults.get(k) != v
        }
        extra = "[" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + "]"
        return f"cmd{extra if changed else ''}:{self.command}"

    def file_paths(self) -> dict[str, str]:
        """Words of the command that name existing files (the script it runs, its weights),
        as ``command[<i>]``: a changed script is another restorer (see
        :meth:`Restorer.file_identities`)."""
        out = {}
        for index, word in enumerate(shlex.split(self.command)):
            if "{" in word or not word.strip():
                continue
            try:
                if Path(word).expanduser().is_file():
                    out[f"command[{index}]"] = word
            except OSError:
                continue
        return out

    @property
    def batch_size(self) -> int:
        """``batch_size`` in folder mode, else 1."""
        return int(self.options["batch_size"]) if self.folder_mode else 1

    def to(self, device: str) -> CommandRestorer:
        """On ``"cuda:I"`` the command runs with that GPU as its only visible one
        (``CUDA_VISIBLE_DEVICES``), so each rank of a multi-GPU run drives its own GPU; on
        ``"cuda"`` or ``"cpu"`` its environment is left alone. Rows record ``device``."""
        self._visible_gpu = cuda_visible_devices(device)
        self.device = device
        return self

    def _run(self, mapping: dict[str, str]) -> None:
        words = shlex.split(self.command)
        for key, value in mapping.items():
            words = [w.replace("{" + key + "}", value) for w in words]
        timeout = float(self.options["timeout"])
        self.last_peak_rss_mb = math.nan
        try:
            env = None
            if self._visible_gpu is not None:
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": self._visible_gpu}
            proc = run_measured(words, timeout=timeout, env=env)
            self.last_peak_rss_mb = proc.peak_rss_mb
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr if isinstance(exc.stderr, str) else ""
            raise CommandError(
                f"command {self.command!r} timed out after {timeout:g} s; stderr tail:\n"
                f"{_tail(stderr or '')}"
            ) from None
        except OSError as exc:
            raise CommandError(f"command {self.command!r} could not start: {exc}") from None
        if proc.returncode != 0:
            raise CommandError(
                f"command {self.command!r} exited with code {proc.returncode}; stderr tail:\n"
                f"{_tail(proc.stderr)}"
            )

    def _read_output(self, path: Path, image: np.ndarray) -> np.ndarray:
        if not path.is_file():
            raise CommandError(f"command {self.command!r} exited 0 but wrote no {path.name}")
        out = read_image(path)
        expected = self.expected_shape(image)
        if out.shape != expected:
            hint = ""
            ratio = out.shape[0] / image.shape[0]
            if (
                out.shape[0] == round(ratio) * image.shape[0]
                and out.shape[1] == round(ratio) * image.shape[1]
                and round(ratio) >= 1
            ):
                hint = (
                    f"; it looks like a x{round(ratio)} upscaler: declare it with "
                    f"cmd[scale={round(ratio)}]:COMMAND"
                )
            raise CommandError(
                f"command {self.command!r} wrote {path.name} of shape {out.shape}, "
                f"expected {expected}{hint}"
            )
        return out

    def restore_array(self, image: np.ndarray) -> np.ndarray:
        """Restore one image (folder mode: a batch of one)."""
        if self.folder_mode:
            return self._restore_folder([image])[0]
        with tempfile.TemporaryDirectory(prefix="restorelab-cmd-") as tmp:
            src, dst = Path(tmp) / "in.png", Path(tmp) / "out.png"
            Image.fromarray(image).save(src)
            self._run({"in": str(src), "out": str(dst)})
            return self._read_output(dst, image)

    def _restore_folder(self, images: list[np.ndarray]) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="restorelab-cmd-") as tmp:
            in_dir, out_dir = Path(tmp) / "in", Path(tmp) / "out"
            in_dir.mkdir()
            out_dir.mkdir()
            for index, image in enumerate(images):
                Image.fromarray(image).save(in_dir / f"{index:05d}.png")
            self._run({"in_dir": str(in_dir), "out_dir": str(out_dir)})
            return [
                self._read_output(out_dir / f"{index:05d}.png", image)
                for index, image in enumerate(images)
            ]

    def restore_batch(
        self, images: list[np.ndarray], *, degradations: list[dict | None] | None = None
    ) -> list[np.ndarray]:
        """Folder mode: one command call for all ``images``; file mode: one call per image."""
        if not self.folder_mode:
            return super().restore_batch(images, degradations=degradations)
        outs = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            outs.extend(self._restore_folder(chunk))
        return outs
