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
from pathlib import Path
from typing import TextIO

LOG_DIR = "logs"
DEBUG_ENV = "GATEWISE_DEBUG"


def log_path(home: Path, run_id: str) -> Path:
    return Path(home) / LOG_DIR / f"{run_id}.log"


def debugging() -> bool:
    """GATEWISE_DEBUG=1: nothing is captured, everything (Prefect's logs, tracebacks) shows as it comes."""
    return bool(os.environ.get(DEBUG_ENV))


def terminal() -> TextIO:
    """A stream to where stderr points now, which stays there while ``capture`` moves stderr away."""
    sys.stderr.flush()
    return os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")


@contextmanager
def capture(path: Path) -> Iterator[Path]:
    """Point file descriptor 2 at ``path`` (appending). An exception escaping the block leaves its
    traceback in the file first; gatewise's own INFO logs are written there during the block.

    When the block ends, ``sys.stderr`` is the terminal again for the CLI's own lines, but fd 2 stays
    on the file until the process exits: Prefect keeps logging while it shuts its temporary server
    down at exit ("Stopping temporary server ..."), and that belongs in the log, not on the terminal.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = sys.__stderr__.fileno()
    sys.stderr.flush()
    saved = os.dup(fd)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, fd)
    os.close(log_fd)
    sys.stderr = sys.__stderr__
    # Registered before Prefect starts its server, so it runs after Prefect's own exit handlers.
    atexit.register(_restore, fd, saved)
    ours = logging.getLogger("gatewise")
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
    level = ours.level
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False  # once, here: Prefect's root console handler would write it again
    try:
        yield path
    except BaseException:
        print("gatewise: the run stopped on this exception:", file=sys.__stderr__)
        traceback.print_exc(file=sys.__stderr__)
        raise
    finally:
        ours.removeHandler(handler)
        ours.setLevel(level)
        ours.propagate = True
        sys.__stderr__.flush()
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")


def _restore(fd: int, saved: int) -> None:
    try:
        sys.__stderr__.flush()
        os.dup2(saved, fd)
        os.close(saved)
    except (OSError, ValueError):
        pass
