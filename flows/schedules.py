"""Scheduled runs as Prefect deployments on a real Prefect server: create one (served by this
process, or sent to a work pool's workers), list them, remove one. No scheduler of our own."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewise.errors import UsageError

# The flows `gatewise schedule` deploys: flow name -> (module, function, file in the flows folder).
SCHEDULABLE = {
    "retrain": ("gatewise.flows.scheduled", "retrain", "scheduled.py"),
    "monitor": ("gatewise.flows.monitor", "monitor", "monitor.py"),
}


@dataclass(frozen=True)
class ScheduleRequest:
    """One deployment to create: which flow, its name, when it runs, with what, and where."""

    flow: str  # a key of SCHEDULABLE
    name: str
    cron: str | None = None
    interval_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    work_pool: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"


@dataclass(frozen=True)
class ScheduleInfo:
    """A deployment of a gatewise flow, as the server holds it."""

    name: str  # flow/deployment
    schedule: str
    runs_on: str  # "served" or "work pool NAME"
    status: str
    paused: bool
    parameters: dict[str, Any]
    id: str


def check_timing(cron: str | None, interval_s: float | None) -> None:
    """Exactly one of cron and interval, and a valid one."""
    if (cron is None) == (interval_s is None):
        raise UsageError("give exactly one of --cron EXPR and --interval SECONDS")
    if interval_s is not None and interval_s <= 0:
        raise UsageError(f"--interval must be a positive number of seconds, not {interval_s:g}")
    if cron is not None:
        from prefect.client.schemas.schedules import CronSchedule
        from pydantic import ValidationError

        try:
            CronSchedule(cron=cron)
        except ValidationError:
            raise UsageError(f"--cron '{cron}' is not a valid cron expression (five fields: minute hour day month weekday)") from None


def load_flow(flow_name: str) -> Any:
    module_name, attribute, _ = SCHEDULABLE[flow_name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise UsageError(f"the {flow_name} flow ({module_name}) is not part of this installation") from None
    return getattr(module, attribute)


def _timing(request: ScheduleRequest) -> dict[str, Any]:
    if request.cron is not None:
        return {"cron": request.cron}
    return {"interval": request.interval_s}


def _concurrency() -> Any:
    """One run of a deployment at a time: a run due while the last one still works is cancelled,
    not queued (a retrain slower than its interval must not pile up runs)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def serve(request: ScheduleRequest) -> None:
    """Register the deployment and run its scheduled runs from this process until interrupted."""
    from prefect import serve as prefect_serve
    from prefect.deployments.runner import EntrypointType

    flow = load_flow(request.flow)
    deployment = flow.to_deployment(
        name=request.name, parameters=request.parameters, concurrency_limit=_concurrency(),
        entrypoint_type=EntrypointType.MODULE_PATH, **_timing(request),
    )
    prefect_serve(deployment, print_starting_message=False)


def deploy_to_pool(request: ScheduleRequest) -> str:
    """Register the deployment for the work pool's workers, from this source tree; returns its id."""
    assert request.work_pool is not None
    _require_work_pool(request.work_pool)
    source, entrypoint = source_entrypoint(request.flow)
    load_flow(request.flow)  # a missing flow module is one line here, not a worker's traceback
    from prefect import flow as prefect_flow

    remote = prefect_flow.from_source(source=str(source), entrypoint=entrypoint)
    deployment = remote.to_deployment(
        name=request.name, work_pool_name=request.work_pool, parameters=request.parameters,
        concurrency_limit=_concurrency(), **_timing(request),
    )
    return str(deployment.apply())


def source_entrypoint(flow_name: str) -> tuple[Path, str]:
    """The source folder and file entrypoint of a flow: the folder that holds the flows package
    (the project root of a checkout, the installed `gatewise` folder otherwise)."""
    flows_dir = Path(importlib.import_module("gatewise.flows").__file__).resolve().parent
    _, attribute, filename = SCHEDULABLE[flow_name]
    return flows_dir.parent, f"{flows_dir.name}/{filename}:{attribute}"


def _require_work_pool(name: str) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            raise UsageError(
                f"work pool '{name}' does not exist on the Prefect server: create it with "
                f"`prefect work-pool create {name} --type process` and start a worker with `prefect worker start --pool {name}`"
            ) from None


def list_schedules() -> list[ScheduleInfo]:
    """Deployments of gatewise's flows on the server, by name."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=list(SCHEDULABLE))))}
        if not flows:
            return []
        deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=list(SCHEDULABLE))))
    found = []
    for d in deployments:
        found.append(ScheduleInfo(
            name=f"{flows.get(d.flow_id, '?')}/{d.name}",
            schedule=", ".join(_describe(s.schedule) for s in d.schedules) or "-",
            runs_on=f"work pool {d.work_pool_name}" if d.work_pool_name else "served",
            status=str(getattr(d.status, "value", d.status) or "-").lower(),
            paused=bool(d.paused),
            parameters=dict(d.parameters or {}),
            id=str(d.id),
        ))
    return sorted(found, key=lambda s: s.name)


def _describe(schedule: Any) -> str:
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron}"
    interval = getattr(schedule, "interval", None)
    if interval is not None:
        return f"every {interval.total_seconds():g}s"
    return type(schedule).__name__


def remove_schedule(name: str) -> ScheduleInfo:
    """Delete one deployment of a gatewise flow, named FLOW/NAME or, when unambiguous, NAME."""
    schedules = list_schedules()
    matches = [s for s in schedules if s.name == name] or [s for s in schedules if s.name.split("/", 1)[1] == name]
    if not matches:
        known = ", ".join(s.name for s in schedules) or "none"
        raise UsageError(f"no schedule named '{name}' on the Prefect server (known: {known})")
    if len(matches) > 1:
        raise UsageError(f"'{name}' names {len(matches)} schedules ({', '.join(s.name for s in matches)}): give FLOW/NAME")
    from prefect import get_client

    with get_client(sync_client=True) as client:
        client.delete_deployment(matches[0].id)
    return matches[0]
