"""Shared fixtures: the bundled data once per session, and an isolated gatewise home per test."""

from __future__ import annotations

import os

import pytest

# Prefect and the gatewise CLI read these at import; tests must not touch the user's state.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


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
