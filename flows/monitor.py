"""The `monitor` Prefect flow: production inputs vs the live version's training reference, a signed
monitoring entry, and a retrain when drift crosses the [monitor] thresholds. monitor_steps.py works.

Deployable as ``gatewise.flows.monitor:monitor``: every parameter is plain JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gatewise.flows import monitor_steps as steps
from gatewise.flows.execution import apply_prefect_defaults
from gatewise.flows.monitor_steps import MonitorOutcome, MonitorRequest

apply_prefect_defaults()  # before Prefect is first imported, as flows/retrain.py

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

# Frames, registry handles and ONNX sessions pass between tasks in memory: no cache keys.
live_version = task(steps.live_version, name="live version", cache_policy=NO_CACHE)
training_reference = task(steps.training_reference, name="training reference", cache_policy=NO_CACHE)
read_current = task(steps.read_current, name="current inputs", cache_policy=NO_CACHE)
verified_scorer = task(steps.verified_scorer, name="verified artifact", cache_policy=NO_CACHE)
assess = task(steps.assess, name="drift", cache_policy=NO_CACHE)
retrain_deployment = task(steps.retrain_deployment, name="find retrain deployment", cache_policy=NO_CACHE)
record = task(steps.record, name="sign monitoring entry", cache_policy=NO_CACHE)
start_retrain = task(steps.start_retrain, name="start retrain", cache_policy=NO_CACHE)


@flow(name="monitor", log_prints=False)
def monitor(
    home: str,
    config: str | None = None,
    current: str | None = None,
    from_serving: bool = False,
    model: str | None = None,
) -> dict[str, Any]:
    """Judge one batch of production inputs; sign the verdict; retrain when it drifted.

    ``home`` is the gatewise home (absolute for a deployment: a worker's folder is not the
    operator's); ``config`` a gatewise.toml read at run time (none: the defaults); ``current`` a
    file of raw feature columns, or ``from_serving`` for what `gatewise serve` sampled; ``model``
    the model to watch (default: [data] model_name, else the registry's only model).
    """
    return run_pass(steps.request_from(home, config, current, from_serving, model)).to_document()


def run_pass(request: MonitorRequest) -> MonitorOutcome:
    """The pass itself, as the diagram in DESIGN.md reads; called inside the flow."""
    registry = steps.open_registry(request)
    try:
        model = steps.resolve_model(registry, request)
        info = live_version(registry, model)
        reference = training_reference(registry, info, request.home)
        batch = read_current(request, model, reference.dataset)
        scorer = verified_scorer(registry, info)
        assessment = assess(reference, batch, scorer, steps.monitor_policy(request.settings))
        # Where a retrain would go is settled before the entry is signed: a configured Prefect
        # server that does not answer stops the pass with nothing recorded.
        deployment = retrain_deployment() if assessment.drifted else None
        entry = record(registry, model, info.version, assessment)
        started = None
        if assessment.drifted:
            started = start_retrain(request, entry, steps.batch_file(request.home, model, batch), deployment)
        return MonitorOutcome(model, info.version, assessment.drifted, assessment.reasons, entry, assessment.report, started)
    finally:
        registry.close()


@contextmanager
def _quiet_prefect() -> Iterator[None]:
    """No heartbeat thread (about 1.1 s per flow run, LIBRARY-NOTES) for a pass that ends by itself."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def run_monitor(home: str, config: str | None = None, current: str | None = None, from_serving: bool = False,
                model: str | None = None) -> dict[str, Any]:
    """Run the `monitor` flow in this process (Prefect's temporary server unless PREFECT_API_URL
    names one), as `gatewise monitor` does; returns the flow's document."""
    with _quiet_prefect():
        return monitor(home=home, config=config, current=current, from_serving=from_serving, model=model)
