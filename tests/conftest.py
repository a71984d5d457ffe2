"""Shared fixtures: the bundled data once per session, and an isolated gatewise home per test."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

# Prefect and the gatewise CLI read these at import; tests must not touch the user's state.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# No test reads flow-run logs from a Prefect API. Sent, they outlive the servers that session finish
# stops, and Prefect's log worker then retried each one at interpreter exit: the pytest process
# took over a minute per handful of logs to exit after its summary (tens of minutes in CI).
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A gatewise home in tmp_path, set as $GATEWISE_HOME, with no registry URL from outside."""
    home = tmp_path / "home"
    monkeypatch.setenv("GATEWISE_HOME", str(home))
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    return home


def pytest_sessionfinish(session, exitstatus):
    """Stop whatever servers the tests left running: the session's `prefect server start` and the
    temporary Prefect servers of flows run in this process are children of it. SIGTERM, then
    SIGKILL, bounded; nothing outlives the test session."""
    from test_schedule_support import drain_prefect_workers

    _exit_status.update(code=int(exitstatus), config=session.config)
    drain_prefect_workers()
    try:
        import psutil
    except ImportError:  # psutil comes with the dev extra (distributed); without it, nothing to reap
        return
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


# The longest the test process may take to exit after its summary. Prefect drains its log and
# event workers at interpreter exit, retrying each undelivered item against its server for about a
# minute; an item whose server a test already stopped would hold CI for that long, times the count.
EXIT_BOUND_S = 60
_exit_status: dict = {"code": 0, "config": None}


def pytest_unconfigure(config):
    """Bound the exit: a daemon thread ends the process with pytest's own status if the at-exit
    drains are still running ``EXIT_BOUND_S`` seconds after the session ended. Only for the session
    this conftest finished (a pytester run inside the suite has a config of its own)."""
    if config is not _exit_status["config"]:
        return

    def cut() -> None:
        time.sleep(EXIT_BOUND_S)
        print(f"conftest: the process was still exiting {EXIT_BOUND_S} s after the session "
              "(Prefect's at-exit drains); ended with pytest's status", file=sys.__stderr__, flush=True)
        os._exit(_exit_status["code"])

    threading.Thread(target=cut, name="exit-bound", daemon=True).start()
