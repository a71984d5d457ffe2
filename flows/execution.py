"""Where a run executes: which Prefect server it reports to, and which task runner runs its candidates.

Both are checked before a run starts, so a wrong address is one line and exit 2, not a stuck run.
"""

from __future__ import annotations

import os
from typing import Any

from gatewise.config import Settings
from gatewise.errors import UsageError

# Prefect reads these when it is first imported; a user's own values win.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "ERROR",
}


def apply_prefect_defaults() -> None:
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


# This module is imported before anything here loads Prefect (prefect-dask and the settings load it too).
apply_prefect_defaults()

START_SERVER_HINT = "start one with `prefect server start` and `export PREFECT_API_URL=http://127.0.0.1:4200/api`"
DASK_INSTALL_HINT = "pip install 'gatewise[dask]'"
HEALTH_TIMEOUT_S = 5.0
DASK_CONNECT_TIMEOUT_S = 5.0


def configured_api_url() -> str | None:
    """The Prefect server this process is pointed at (PREFECT_API_URL, from the environment or the
    active Prefect profile), or None: Prefect then starts its temporary local server per run."""
    url = os.environ.get("PREFECT_API_URL")
    if url is not None:
        return url.strip() or None
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def server_problem(url: str) -> str | None:
    """Why the Prefect server at ``url`` cannot take runs, or None when its /health answers."""
    import httpx

    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})"
    except ValueError as exc:  # a malformed URL
        return f"not a URL ({exc})"
    if response.status_code != 200:
        return f"/health answered HTTP {response.status_code}"
    return None


def require_server() -> str:
    """The URL of a reachable Prefect server; UsageError saying how to start one otherwise."""
    url = configured_api_url()
    if url is None:
        raise UsageError(f"no Prefect server configured (PREFECT_API_URL is not set): {START_SERVER_HINT}")
    problem = server_problem(url)
    if problem:
        raise UsageError(f"the Prefect server at PREFECT_API_URL={url} is not reachable: {problem}; {START_SERVER_HINT}")
    return url


def check_configured_server() -> str | None:
    """Before `gatewise run`: a configured server must answer; None means the temporary one."""
    url = configured_api_url()
    if url is None:
        return None
    problem = server_problem(url)
    if problem:
        raise UsageError(
            f"the Prefect server at PREFECT_API_URL={url} is not reachable: {problem}; "
            "start it (`prefect server start`) or unset PREFECT_API_URL to run on a temporary one"
        )
    return url


def start_temporary_server() -> None:
    """With no configured server, start Prefect's temporary one now, the one the flow would start
    (Prefect keeps one per process and stops it at exit), with SIGINT blocked in it: a Ctrl-C at the
    terminal reaches every process of the foreground group, and a server stopped by it would leave
    the interrupted flow's last reports to Prefect retrying for minutes. It still stops on SIGTERM."""
    if configured_api_url() is not None:
        return
    import signal

    from prefect.server.api.server import SubprocessASGIServer

    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # a child inherits its creator's mask
    try:
        SubprocessASGIServer().start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def check_task_runner(settings: Settings) -> None:
    """Fail before the run when the configured task runner cannot start: a missing package, or a
    Dask scheduler that does not answer at [run] address."""
    if settings.run.task_runner != "dask":
        return
    _require_prefect_dask()
    if settings.run.address:
        from distributed import Client

        try:
            Client(settings.run.address, timeout=DASK_CONNECT_TIMEOUT_S).close()
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(
                f"[run] address {settings.run.address}: no Dask scheduler answered within "
                f"{DASK_CONNECT_TIMEOUT_S:.0f} s ({type(exc).__name__})"
            ) from None


def task_runner_for(settings: Settings) -> Any:
    """The Prefect task runner that runs the candidates' compressors and gates.

    "threads": Prefect's thread pool in this process. "dask": prefect-dask's DaskTaskRunner, on the
    cluster at [run] address, else on a local cluster of one in-process worker with two threads
    (light enough for a small machine; the work is ONNX Runtime and numpy, which release the GIL).
    """
    if settings.run.task_runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    _require_prefect_dask()
    from prefect_dask import DaskTaskRunner

    if settings.run.address:
        return DaskTaskRunner(address=settings.run.address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": None}
    )


def _require_prefect_dask() -> None:
    try:
        import prefect_dask  # noqa: F401
    except ImportError:
        raise UsageError(f"[run] task_runner = 'dask' needs prefect-dask, which is not installed: {DASK_INSTALL_HINT}") from None
