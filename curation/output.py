"""Atomic replacement of a curated dataset folder.

A run builds its whole dataset (images, ``metadata.jsonl``, ``rejected.csv``, the card, the
summary, Parquet shards) in a staging folder beside ``OUT`` (``.OUT.curating-<pid>`` in
``OUT``'s parent, same file system) and swaps it in only when it is complete:

1. everything in ``OUT`` that is not a dataset output — its ``.cache``, files the user put
   there — is moved into the staging folder (one rename each);
2. the staging folder and ``OUT`` are exchanged in one atomic ``renameat2(RENAME_EXCHANGE)``
   (Linux; elsewhere two renames, with a window of a few microseconds without ``OUT``);
3. the old dataset, now at the staging path, is deleted.

So ``OUT`` holds the previous dataset, whole and loadable, until the new one replaces it:
Ctrl-C, ``kill -9`` or an error at any point leave it as it was. A killed run leaves its
staging folder behind; the next run on ``OUT`` (holding ``.OUT.curate.lock``) moves any
non-output entries found there back into ``OUT`` (a cache moved in step 1) and deletes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

#: What a curation run writes in OUT; everything else in OUT is carried over untouched.
OUTPUT_NAMES = frozenset(
    {"images", "metadata.jsonl", "rejected.csv", "README.md", "curation.json", "parquet"}
)
_RENAME_EXCHANGE = 2


class CurationError(ValueError):
    """A curation run that cannot produce a dataset (nothing kept, another run writing the
    same folder); the previous dataset is left as it was."""


_AT_FDCWD = -100


def staging_dir(out: Path) -> Path:
    """This process's staging folder for ``out``."""
    return out.parent / f".{out.name}.curating-{os.getpid()}"


def _leftovers(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.curating-*"))


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``.OUT.curate.lock`` (beside ``out``) for the run; raise if another run holds it.

    Recovers what killed runs left (see the module docstring) once the lock is held.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / f".{out.name}.curate.lock"
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: no lock
            pass
        except OSError as exc:
            raise CurationError(
                f"another `restorelab curate` is writing {out} (lock {lock_path} is held)"
            ) from exc
        recover(out)
        yield
    finally:
        handle.close()


def recover(out: Path) -> list[Path]:
    """Clean up the staging folders of killed runs on ``out``; returns those removed.

    Entries that are not dataset outputs (a cache moved there just before a swap) go back
    into ``out`` when ``out`` lacks them.
    """
    removed = []
    for leftover in _leftovers(out):
        if leftover == staging_dir(out):
            continue
        if out.is_dir():
            for entry in leftover.iterdir():
                if entry.name not in OUTPUT_NAMES and not (out / entry.name).exists():
                    os.replace(entry, out / entry.name)
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False when the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
            return False
        raise OSError(errno, os.strerror(errno), str(b))
    return True


def swap_in(staging: Path, out: Path) -> None:
    """Make the complete dataset in ``staging`` the content of ``out`` (see the module
    docstring); entries of ``out`` that are not outputs are carried over."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} exists and is not a folder")
    if not out.exists():
        os.replace(staging, out)
        return
    for entry in sorted(out.iterdir()):
        if entry.name not in OUTPUT_NAMES and not (staging / entry.name).exists():
            os.replace(entry, staging / entry.name)
    if not _exchange(staging, out):
        old = out.parent / f".{out.name}.curating-old-{os.getpid()}"
        os.replace(out, old)
        os.replace(staging, out)
        staging = old
    shutil.rmtree(staging, ignore_errors=True)
