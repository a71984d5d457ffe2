"""Shared fixtures: the bundled data once per session, and an isolated gatewise home per test."""

from __future__ import annotations

import os

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
    _drain_prefect_workers(timeout_s=15)
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


def _drain_prefect_workers(timeout_s: float) -> None:
    """Send what Prefect's log and event workers still hold while the servers they talk to are up
    (bounded): drained after the servers stop, each item is retried against a closed port."""
    import sys

    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)
