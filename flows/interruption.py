"""A run stops cleanly on the first Ctrl-C (SIGINT) or SIGTERM, and at once on the second.

The first signal kills the compressor processes (gatewise.flows.isolation.stop_all) and raises
KeyboardInterrupt in the main thread, where Prefect runs the flow: the flow's own handlers sign the
run's outcome "interrupted", the task runner and Prefect's temporary server stop as on any crash,
and the CLI prints one line and exits 130. The second kills what is left and exits 130 at once;
an unfinished registry write is rolled back by the database, never half-kept.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gatewise.errors import ExitCode

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state: dict[str, Any] = {"installed": False, "received": None}


def _handle(signum: int, frame: Any) -> None:
    from gatewise.flows.isolation import stop_all

    if _state["received"] is not None:  # the second signal: stop now
        stop_all()
        _kill_children()
        os._exit(ExitCode.INTERRUPTED)
    _state["received"] = signal.Signals(signum).name
    stop_all()
    raise KeyboardInterrupt(_state["received"])


@contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM stop it as described above. Only the main thread
    can take signals: elsewhere the block runs with the handlers as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _handle) for number in SIGNALS}
    _state.update(installed=True, received=None)
    try:
        yield
    finally:
        _state["installed"] = False
        if _state["received"] is None:  # interrupted: a second signal, even while the process ends, stops it at once
            for number, handler in previous.items():
                signal.signal(number, handler)


def reclaim() -> None:
    """Take SIGTERM back inside the flow. Prefect's engine installs its own SIGTERM handler for a
    flow run (it raises TerminationSignal, kills nothing, and sends the signal again afterwards),
    and restores ours when the run ends. Only when ``interruptible`` is active, in the main thread."""
    if _state["installed"] and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handle)


def received() -> str | None:
    """The name of the signal that interrupted the run ("SIGTERM"), or None."""
    return _state["received"]


def is_interruption(exc: BaseException) -> bool:
    """Ctrl-C, our handler's KeyboardInterrupt, or Prefect's TerminationSignal (a run under a worker)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    exceptions = sys.modules.get("prefect.exceptions")  # not loaded: no flow ran, so no TerminationSignal
    return exceptions is not None and isinstance(exc, exceptions.TerminationSignal)


def _kill_children() -> None:
    """SIGKILL every process this one started that is still there (Prefect's temporary server
    among them): with os._exit no exit handler stops it. Linux lists a thread's children in /proc."""
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
