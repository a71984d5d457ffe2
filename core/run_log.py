"""A run's log file, ``<home>/logs/<run id>.log``: while the flow executes, everything written to the
process's stderr lands there (Prefect's logs, tracebacks, library warnings, even those written by C
code or by Prefect's server subprocess), and the CLI keeps the terminal for its own lines.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from gatewise import __version__

LOG_DIR = "logs"
DEBUG_ENV = "GATEWISE_DEBUG"
STDERR_FD = 2  # the process's, whatever object sys.stderr is


def log_path(home: Path, run_id: str) -> Path:
    return Path(home) / LOG_DIR / f"{run_id}.log"


def debugging() -> bool:
    """GATEWISE_DEBUG=1: nothing is captured, everything (Prefect's logs, tracebacks) shows as it comes."""
    return bool(os.environ.get(DEBUG_ENV))


@contextmanager
def terminal() -> Iterator[TextIO]:
    """A stream to where stderr points now, which stays there while ``capture`` moves fd 2 away."""
    sys.stderr.flush()
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr is no file (a test's capture): keep it as it is
        yield sys.stderr
        return
    with os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace") as stream:
        yield stream


@contextmanager
def capture(path: Path) -> Iterator[Path]:
    """Point file descriptor 2 at ``path`` (appending) for the block: Prefect's logs, its server
    subprocess, C libraries and stray tracebacks all write there. gatewise's own INFO logs go there
    during the block, and an exception escaping it leaves its traceback there first.

    Prefect keeps logging at exit, when it stops the temporary server it started during the run
    ("Stopping temporary server ..."): its exit handlers were registered during the block, so one
    registered at the block's end runs before them and points fd 2 at the file again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as header:
        header.write(f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} gatewise {__version__}: {' '.join(sys.argv[1:])}\n")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(STDERR_FD)
    _append_to(path, STDERR_FD)
    ours = logging.getLogger("gatewise")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(name)s - %(message)s", "%H:%M:%S"))
    level = ours.level
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False  # once, here: Prefect's root console handler would write it again
    try:
        yield path
    except BaseException:
        with open(path, "a", encoding="utf-8") as log:  # (Prefect's logging set-up may have closed handler's file)
            log.write("gatewise: the run stopped on this exception:\n")
            traceback.print_exc(file=log)
        raise
    finally:
        ours.removeHandler(handler)
        handler.close()
        ours.setLevel(level)
        ours.propagate = True
        sys.stderr.flush()
        os.dup2(saved, STDERR_FD)
        os.close(saved)
        atexit.register(_back_at_exit, path)


def _back_at_exit(path: Path) -> None:
    try:
        _append_to(path, STDERR_FD)
    except OSError:  # the home went away meanwhile (a test's temporary folder): stderr stays as it is
        pass


def _append_to(path: Path, fd: int) -> None:
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, fd)
    os.close(log_fd)
