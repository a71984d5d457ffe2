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
