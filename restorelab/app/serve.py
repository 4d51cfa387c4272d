"""How ``restorelab dashboard`` starts Streamlit so that one signal stops it.

On POSIX the ``restorelab`` process *becomes* the Streamlit server (``os.execve``): same pid,
so one SIGINT / SIGTERM (Ctrl+C, ``kill PID``, a process manager) ends the server and closes
its port, and nothing is left running. Elsewhere Streamlit runs as a child whose SIGINT /
SIGTERM are forwarded from the parent, which waits for it and stops it on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def app_path() -> Path:
    """The dashboard's Streamlit script (``dashboard/app.py`` in a checkout or the wheel):
    :func:`restorelab.app.cli.dashboard_app_file`."""
    from restorelab.app.cli import dashboard_app_file

    return dashboard_app_file()


def _dirs(run_dirs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    return [os.path.abspath(d) for d in run_dirs]


def streamlit_command(
    run_dirs: str | os.PathLike | Sequence[str | os.PathLike], port: int, address: str
) -> list[str]:
    """The ``python -m streamlit run`` command line for one run folder or several."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path()),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--",
        *_dirs(run_dirs),
    ]


def serve(
    run_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    port: int,
    address: str,
    *,
    replace: bool = True,
) -> int:
    """Run the dashboard on one run folder or several until it is stopped; returns its exit
    status. The folders also go to the app as ``RESTORELAB_RUN_DIRS`` (``os.pathsep``-joined)
    and the first as ``RESTORELAB_RUN_DIR``.

    ``replace=True`` (POSIX) replaces this process with Streamlit and does not return.
    """
    dirs = _dirs(run_dirs)
    command = streamlit_command(dirs, port, address)
    env = {
        **os.environ,
        "RESTORELAB_RUN_DIR": dirs[0],
        "RESTORELAB_RUN_DIRS": os.pathsep.join(dirs),
    }
    if replace and os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, command, env)
    return _run_forwarding(command, env)


def _run_forwarding(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` as a child, forwarding SIGINT and SIGTERM to it; stop it on exit."""
    proc = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
