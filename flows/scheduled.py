"""The deployable `retrain` flow that `gatewise schedule` registers: plain JSON parameters in, one
governed run out, with what started it (the deployment, or a monitoring entry) in its signed run entry.

Entrypoint: ``gatewise.flows.scheduled:retrain`` (``flows/scheduled.py:retrain`` from the source tree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gatewise.flows.retrain import run_retrain  # first: it sets Prefect's defaults before Prefect loads
from gatewise.flows.steps import RunRequest, preflight

from prefect import flow, get_run_logger

DEPLOYMENT_FLOW = "retrain"


@flow(name=DEPLOYMENT_FLOW, log_prints=False)
def retrain(
    home: str,
    config: str | None = None,
    data: str | None = None,
    label: str | None = None,
    positive: str | None = None,
    sensitive: list[str] | None = None,
    current: str | None = None,
    trigger: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One governed retraining run, as `gatewise run` would do it with the same options.

    ``home`` is the gatewise home (an absolute path: a worker's working directory is not the
    operator's); ``config`` a gatewise.toml read at run time (none: the defaults). ``trigger`` is
    for whoever starts the run on purpose (the monitor flow passes
    {"kind": "monitor", "entry": {"seq", "digest"}}); when absent, the run names its deployment.
    """
    request = RunRequest(
        settings=_settings(config),
        home=Path(home),
        data_path=Path(data) if data else None,
        label=label,
        positive=positive,
        sensitive=tuple(sensitive) if sensitive is not None else None,
        current_path=Path(current) if current else None,
        trigger=trigger if trigger is not None else deployment_trigger(),
    )
    dataset = preflight(request)
    outcome = run_retrain(request, dataset)
    summary = {
        "run_id": outcome.run_id,
        "model": outcome.model,
        "status": outcome.status,
        "promoted": outcome.promoted,
        "trigger": request.trigger,
        "timings_s": outcome.timings,
    }
    get_run_logger().info("gatewise run %s: %s%s", outcome.run_id, outcome.status,
                          f" ({outcome.promoted})" if outcome.promoted else "")
    return summary


def deployment_trigger() -> dict[str, Any] | None:
    """What started this flow run, read from Prefect's runtime: its deployment and flow run id;
    None outside a deployment (a run by hand)."""
    from prefect.runtime import deployment, flow_run

    name = deployment.name
    if not name:
        return None
    return {"kind": "schedule", "deployment": name, "flow_run_id": str(flow_run.id)}


def _settings(config: str | None) -> Any:
    from gatewise.config import Settings, load_settings

    # No config means the defaults, not whatever gatewise.toml lies in the worker's directory.
    return load_settings(Path(config)) if config else Settings()
