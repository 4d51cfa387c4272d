"""How ``restorelab dashboard`` starts Streamlit so that one signal stops it, warmed up.

On POSIX the ``restorelab`` process *becomes* the Streamlit server (``os.execve``): same pid,
so one SIGINT / SIGTERM (Ctrl+C, ``kill PID``, a process manager) ends the server and closes
its port, and nothing is left running. Elsewhere Streamlit runs as a child whose SIGINT /
SIGTERM are forwarded from the parent, which waits for it and stops it on exit.

The server is ``python -m restorelab.app.serve run APP ...`` (:func:`server_main`): Streamlit's
own command line, plus a background thread that computes the first page's tables into the
dashboard's caches as soon as the server is up, while the browser loads its scripts
(:func:`restorelab.dashboard.ui.warm_up`), so the first visitor does not wait for them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path


def app_path() -> Path:
    """The dashboard's Streamlit script (``dashboard/app.py`` in a checkout or the wheel):
    :func:`restorelab.app.cli.dashboard_app_file`."""
    from restorelab.app.cli import dashboard_app_file

    return dashboard_app_file()


#: Set to 0 to start the server without computing the first page in advance.
ENV_WARM_UP = "RESTORELAB_DASHBOARD_WARM_UP"


def _dirs(run_dirs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    return [os.path.abspath(d) for d in run_dirs]


def streamlit_command(
    run_dirs: str | os.PathLike | Sequence[str | os.PathLike], port: int, address: str
) -> list[str]:
    """The server's command line (``python -m streamlit run`` plus the warm-up of
    :func:`server_main`) for one run folder or several."""
    return [
        sys.executable,
        "-m",
        "restorelab.app.serve",
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
        "--client.toolbarMode",
        "viewer",  # no "Deploy" button (an online service): this is a local, offline tool
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


def _warm_up(run_dirs: list[str], wait_s: float = 60.0) -> None:
    """Compute the dashboard's first page's tables as soon as the server is up (a thread).

    It waits until Streamlit's runtime has started (so that its imports do not slow the
    server's own start, and the cached functions fill the caches the page reads), then
    imports the data layer (pandas, pyarrow, the statistics) and calls
    :func:`restorelab.dashboard.ui.warm_up`, while the browser loads the app's scripts. Any
    failure is left to the page itself to report.
    """
    import logging

    # the cached functions note that this thread runs no script; that is the point here
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: record.threadName != threading.current_thread().name
    )
    try:
        from streamlit import runtime
        from streamlit.runtime.runtime import RuntimeState

        deadline = time.monotonic() + wait_s
        while not (runtime.exists() and runtime.get_instance().state != RuntimeState.INITIAL):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        from restorelab.dashboard import ui

        ui.warm_up(run_dirs)
    except Exception:  # never take the server down: the page itself shows the error
        logging.getLogger(__name__).debug("dashboard warm-up failed", exc_info=True)


def server_main(argv: Sequence[str] | None = None) -> None:
    """``python -m restorelab.app.serve ARGS``: Streamlit's command line on ``ARGS`` (``run
    APP --server.port N ...``), with the first page of the folders in ``RESTORELAB_RUN_DIRS``
    warmed up in a background thread (:func:`_warm_up`; ``RESTORELAB_DASHBOARD_WARM_UP=0``
    turns it off)."""
    args = list(sys.argv[1:] if argv is None else argv)
    dirs = [d for d in os.environ.get("RESTORELAB_RUN_DIRS", "").split(os.pathsep) if d]
    if dirs and args[:1] == ["run"] and os.environ.get(ENV_WARM_UP, "1") != "0":
        threading.Thread(
            target=_warm_up, args=(dirs,), name="restorelab-warm-up", daemon=True
        ).start()
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *args]
    main(prog_name="streamlit")


if __name__ == "__main__":
    server_main()
