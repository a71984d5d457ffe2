"""A real Prefect server for the scheduling and task-runner tests: started once per test process
(the fixture may be imported by several modules; they share one server), stopped by its pid.

Also: the `gatewise` command as a subprocess pointed at that server, and bounded waits.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "gatewise.toml"
SERVER_START_TIMEOUT_S = 120
_SERVER: dict[str, object] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_bin() -> str:
    return str(Path(sys.executable).parent / "prefect")


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 1.0):
    """Poll until ``predicate()`` is truthy; fail the test naming ``what`` when time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}", pytrace=False)
        time.sleep(every_s)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(prefect_home: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME; (process, API URL)."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(extra_env or {})}
    env.pop("PREFECT_API_URL", None)
    prefect_home.mkdir(parents=True, exist_ok=True)
    log = open(prefect_home / "server.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            tail = (prefect_home / "server.log").read_text()[-1500:]
            pytest.fail(f"prefect server did not become healthy in {SERVER_START_TIMEOUT_S} s:\n{tail}", pytrace=False)
        time.sleep(0.5)
    return process, url


def drain_prefect_workers(timeout_s: float = 15) -> None:
    """Send what Prefect's log and event workers in this process still hold, while the servers
    they talk to are up (bounded). Left until after a server stops, each item is retried against
    its closed port at interpreter exit, about a minute apiece."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


def stop(process: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGINT, then SIGKILL, to the process group the test started (its children included), after
    this process's Prefect workers have sent what they hold."""
    if process.poll() is not None:
        return
    drain_prefect_workers()
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> str:
    """The API URL of a real Prefect server (SQLite under a temporary PREFECT_HOME)."""
    if "url" not in _SERVER:
        process, url = start_server(tmp_path_factory.mktemp("prefect-home"))
        _SERVER.update(process=process, url=url)
        atexit.register(stop, process)
    return str(_SERVER["url"])


def gatewise_env(home: Path, api_url: str | None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GATEWISE_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}
    env.pop("GATEWISE_REGISTRY_URL", None)
    if api_url is None:
        env["PREFECT_API_URL"] = ""  # empty: no server, whatever the user's Prefect profile says
    else:
        env["PREFECT_API_URL"] = api_url
    return env


def gatewise(home: Path, api_url: str | None, *args: str, timeout: float = 600, cwd: Path | None = None,
             **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=gatewise_env(home, api_url, **extra),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def flow_runs(api_url: str, deployment_name: str) -> list:
    """The flow runs of the deployment named ``deployment_name`` that have left the schedule
    (pending, running, finished), newest first."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with SyncPrefectClient(api_url) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=50,
        )


def client(api_url: str):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api_url)
