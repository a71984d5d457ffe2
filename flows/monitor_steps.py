"""The work of one monitoring pass, as plain functions; flows/monitor.py wires them with Prefect.

A pass compares production inputs with the live version's training reference (re-created from
its signed run entry and checked against the recorded fingerprints), with the drift gate's own
code, adds the drift of the live model's predicted probabilities, signs a monitoring entry, and
starts a retrain when a threshold is crossed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.config import Settings, load_settings, parse_settings
from gatewise.data import fingerprint, read_table
from gatewise.errors import RegistryError, UsageError
from gatewise.types import Dataset

if TYPE_CHECKING:
    import pandas as pd

    from gatewise.policy import DriftPolicy
    from gatewise.registry import Registry, VersionInfo

log = logging.getLogger(__name__)

RETRAIN_FLOW = "retrain"  # the Prefect flow name a retrain deployment is made from
SERVING_INPUTS = Path("serving") / "inputs"  # under the gatewise home, one folder per model
BATCHES = Path("monitoring") / "batches"  # served batches kept for the retrain they start


@dataclass(frozen=True)
class MonitorRequest:
    """What a monitoring pass is asked to look at, resolved from the CLI flags over gatewise.toml."""

    settings: Settings
    home: Path
    model: str | None = None
    current_path: Path | None = None
    from_serving: bool = False


@dataclass(frozen=True, eq=False)
class Reference:
    """The live version's training rows, re-created from its signed run entry and checked."""

    version: str
    run_id: str
    dataset: Dataset
    train: pd.DataFrame
    test: pd.DataFrame  # where the drift gate measures how much the model relies on each column
    fingerprints: dict[str, str]  # as the run entry recorded them


@dataclass(frozen=True, eq=False)
class CurrentBatch:
    """The production rows a pass judges, and where they came from."""

    frame: pd.DataFrame
    source: str  # "file" or "serving"
    files: tuple[Path, ...]
    fingerprint: str


@dataclass(frozen=True)
class Assessment:
    """The verdict of one pass and the report its signed entry carries."""

    drifted: bool
    reasons: tuple[str, ...]
    report: dict[str, Any]


@dataclass(frozen=True)
class RetrainStart:
    """A retrain started by a monitoring entry: through a deployment or in this process."""

    how: str  # "deployment" | "in_process"
    trigger: dict[str, Any]
    deployment: str | None = None
    flow_run_id: str | None = None
    run_id: str | None = None
    status: str | None = None  # the in-process run's outcome: promoted | blocked | data_rejected
    promoted: str | None = None


@dataclass(frozen=True)
class MonitorOutcome:
    model: str
    version: str
    drifted: bool
    reasons: tuple[str, ...]
    entry: dict[str, Any]  # {"seq", "digest"} of the signed monitoring entry
    report: dict[str, Any]
    retrain: RetrainStart | None = None

    def to_document(self) -> dict[str, Any]:
        """JSON-ready: what `gatewise monitor --json` prints and the flow returns."""
        return {
            "model": self.model,
            "version": self.version,
            "drifted": self.drifted,
            "reasons": list(self.reasons),
            "entry": self.entry,
            "report": self.report,
            "retrain": None if self.retrain is None else dict(self.retrain.__dict__),
        }


def request_from(home: str, config: str | None, current: str | None, from_serving: bool, model: str | None) -> MonitorRequest:
    """The flow's JSON parameters as a request; the same checks as the CLI's flags. No ``config``
    means the defaults, not whatever gatewise.toml lies in a worker's folder (as flows/scheduled.py)."""
    if current and from_serving:
        raise UsageError("pass either --current FILE or --from-serving, not both")
    settings = load_settings(Path(config)) if config else Settings()
    return MonitorRequest(settings, Path(home), model, Path(current) if current else None, bool(from_serving))


# -- what is live, and what it learned from ---------------------------------------------------


def open_registry(request: MonitorRequest) -> Registry:
    """The existing registry; monitoring never creates one (a missing one is one line, exit 2)."""
    from gatewise.config import resolve_registry_url
    from gatewise.registry import Registry

    url = resolve_registry_url(settings=request.settings)  # the order every command follows (docs/cli.md)
    Registry.open(request.home, url, create=False).close()
    return Registry.open(request.home, url)


def resolve_model(registry: Registry, request: MonitorRequest) -> str:
    """--model, else [data] model_name, else the registry's only model."""
    models = registry.models()
    name = request.model or request.settings.data.model_name
    if name is None:
        if len(models) != 1:
            raise UsageError(f"the registry holds {len(models)} models ({', '.join(models) or 'none'}): pass --model NAME")
        name = models[0]
    if name not in models:
        raise UsageError(f"unknown model '{name}' (known: {', '.join(models) or 'none'})")
    return name


def live_version(registry: Registry, model: str) -> VersionInfo:
    info = registry.champion(model)
    if info is None:
        raise UsageError(f"model {model} has no production version to monitor: promote one with `gatewise run` first")
    if info.status != "ok" or not info.sha256:
        raise RegistryError(f"production version {info.version} has no artifact; run `gatewise registry verify`")
    return info


def training_reference(registry: Registry, info: VersionInfo, home: Path) -> Reference:
    """Re-create the training rows of the live version's run from its signed settings and data
    source, and check them against the fingerprints that run signed."""
    from gatewise.flows.steps import RunRequest, load_dataset, split_data
    from gatewise.registry.operations import run_entry

    entry = run_entry(registry, info.run_id)
    recorded = entry.get("data") or {}
    # Only what decides the rows: the data and split sections. Gate or plugin settings recorded by
    # an older gatewise need not parse today for its training data to be re-created.
    recorded_settings = entry.get("settings") or {}
    settings = parse_settings({k: recorded_settings[k] for k in ("data", "split") if k in recorded_settings},
                              origin=f"the settings of run {info.run_id}")
    dataset = load_dataset(RunRequest(settings=settings, home=home))
    source = f"data file {settings.data.path}" if settings.data.path else f"data source '{settings.data.source}'"
    if dataset.fingerprint != recorded.get("dataset"):
        raise UsageError(
            f"cannot re-create the training reference of {info.version}: its run {info.run_id} signed dataset fingerprint "
            f"{str(recorded.get('dataset'))[:16]}, the {source} now gives {dataset.fingerprint[:16]}"
            + ("" if settings.data.path else " (a run records its settings, not its --data flag: train from [data] path to monitor)")
        )
    split = split_data(dataset, settings)  # the run's own split step, so a new split kind cannot diverge
    if split.train_fingerprint != recorded.get("train"):
        raise UsageError(
            f"cannot re-create the training reference of {info.version}: the split of run {info.run_id} gives train "
            f"fingerprint {split.train_fingerprint[:16]}, the run signed {str(recorded.get('train'))[:16]}"
        )
    return Reference(info.version, info.run_id, dataset, split.train, split.test, dict(recorded))


# -- the current batch ---------------------------------------------------------------------------


def serving_folder(home: Path, model: str) -> Path:
    return Path(home) / SERVING_INPUTS / model


def read_current(request: MonitorRequest, model: str, dataset: Dataset | None) -> CurrentBatch:
    """--current FILE, or every Parquet file `gatewise serve` sampled for ``model``; the live
    version's feature columns must be there, numeric where it learned numbers (``dataset`` None:
    read only, so a missing file is found before the reference is re-created)."""
    import pandas as pd

    if request.from_serving:
        folder = serving_folder(request.home, model)
        listed = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
        # The server deletes its oldest files as it writes new ones: one gone since the listing is skipped.
        read = [(path, read_table(path)) for path in listed if path.exists()]
        if not read:
            raise UsageError(
                f"no served inputs for model {model} in {folder}: run `gatewise serve` with [serve] log_inputs = true first"
            )
        files = tuple(path for path, _ in read)
        frame = pd.concat([_checked(table, path, dataset) for path, table in read], ignore_index=True)
        source = "serving"
    elif request.current_path is not None:
        files = (Path(request.current_path),)
        frame = _checked(read_table(files[0]), files[0], dataset)
        source = "file"
    else:
        raise UsageError("nothing to monitor: pass --current FILE or --from-serving")
    return CurrentBatch(frame, source, files, fingerprint(frame))


def _checked(frame: pd.DataFrame, path: Path, dataset: Dataset | None) -> pd.DataFrame:
    import pandas as pd

    if dataset is None:
        return frame.reset_index(drop=True)
    schema = dataset.schema
    missing = [c for c in schema.features if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: current data lacks feature column(s): {', '.join(missing)}")
    for column in schema.numeric:
        if not (pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column])):
            raise UsageError(f"{path}: column '{column}' must be numeric (the live version learned numbers), got {frame[column].dtype}")
    return frame.reset_index(drop=True)  # whole, so its fingerprint is the one a retrain on it records


# -- scoring and judging ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LiveModel:
    """The live version in ONNX Runtime, built from the very bytes whose sha256 matched its signed entry."""

    served: Any  # gatewise.serving_model.ServedModel

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        """P(positive) per row of a raw table, as the server answers it."""
        return self.served.score(self.served.spec.encode(frame))


def verified_scorer(registry: Registry, info: VersionInfo) -> LiveModel:
    """The live version loaded the way `gatewise serve` loads it: its artifact read once, hashed,
    compared with the signed sha256, and the session built from those same bytes."""
    from gatewise.serving_model import RefusedLoad, load_verified

    try:
        served = load_verified(info.model, info.version, info.sha256, registry.artifact_path(info.version))
    except RefusedLoad as exc:
        raise RegistryError(f"refusing to score the live version: {exc}; run `gatewise registry verify`") from None
    return LiveModel(served)


def monitor_policy(settings: Settings) -> DriftPolicy:
    """The drift gate's policy ([gates.drift]) with the [monitor] thresholds that are set: by
    default a batch the drift gate would block in a run is a batch the monitor retrains on."""
    own = {key: value for key, value in settings.monitor.model_dump().items() if value is not None}
    return settings.gates.drift.model_copy(update=own)


# What each of the drift gate's failed checks means to an operator, with the measured value's key.
_CHECKS = {
    "max_drifted_share": ("drifted-column share", "drifted_share"),
    "max_weighted_drift": ("importance-weighted drift", "weighted_drift"),
    "max_prediction_drift": ("prediction drift", "prediction_drift"),
}


def assess(reference: Reference, batch: CurrentBatch, scorer: LiveModel, policy: DriftPolicy) -> Assessment:
    """The drift gate's own function on the live model (reference = its training rows, current =
    the batch) under ``policy``: the batch drifted exactly when the gate would fail it."""
    from gatewise.gates.drift import drift
    from gatewise.gates.inputs import GateInputs
    from gatewise.policy import GatePolicy

    result = drift(GateInputs(
        candidate=reference.version, schema=reference.dataset.schema, train=reference.train, test=reference.test,
        current=batch.frame, predict_proba=scorer.predict_proba, scores=scorer.predict_proba(reference.test),
        policy=GatePolicy().model_copy(update={"drift": policy}),
    ))
    if result.value is None:  # the gate failed closed on the data itself (a missing column)
        raise UsageError(f"current data: {result.summary}")
    details = result.details
    reasons = []
    for check in details["failed_checks"]:
        label, measured = _CHECKS[check]
        value = details[measured]["value"] if measured == "prediction_drift" else details[measured]
        reasons.append(f"{label} {value:.3f} > {getattr(policy, check):.3f}")
    report = {
        "live_version": reference.version,
        "reference": {"run_id": reference.run_id, "split": "train", "rows": len(reference.train)},
        "current": {"source": batch.source, "files": [p.name for p in batch.files], "rows": len(batch.frame)},
        "columns": details["columns"],
        "drifted_columns": details["drifted_columns"],
        "drifted_share": details["drifted_share"],
        "weighted_drift": details["weighted_drift"],
        "importance": details["importance"],
        "prediction_drift": details["prediction_drift"],
        "thresholds": {check: getattr(policy, check) for check in _CHECKS},
        "failed_checks": details["failed_checks"],
        "data": {
            "dataset": reference.fingerprints.get("dataset"),
            "reference": details["reference_fingerprint"],
            "current": batch.fingerprint,
        },
        "summary": result.summary,
    }
    return Assessment(not result.passed, tuple(reasons), report)


def record(registry: Registry, model: str, version: str, assessment: Assessment) -> dict[str, Any]:
    """Sign the monitoring entry; returns its {"seq", "digest"}."""
    from gatewise.registry.operations import record_monitoring

    seq, digest = record_monitoring(registry, model, version=version, drifted=assessment.drifted, report=assessment.report)
    return {"seq": seq, "digest": digest}


# -- closing the loop ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainDeployment:
    name: str  # "retrain/<deployment name>", as run_deployment takes it
    parameters: tuple[str, ...]  # the parameters the deployed flow declares


def retrain_deployment() -> RetrainDeployment | None:
    """A deployment of the retrain flow on the Prefect server at PREFECT_API_URL that takes a
    ``trigger`` parameter; None when no server is configured or none is deployed. A configured
    server that does not answer is an error (called before anything is recorded)."""
    from gatewise.flows.execution import check_configured_server

    url = check_configured_server()  # one line naming the server and the fix when it does not answer
    if url is None:
        return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[RETRAIN_FLOW])))
    except Exception as exc:  # noqa: BLE001 - a server that answers /health but not the API reads the same
        raise UsageError(f"the Prefect server at PREFECT_API_URL={url} did not list its deployments ({type(exc).__name__})") from None
    usable = []
    for deployment in sorted(deployments, key=lambda d: d.name):
        declared = tuple(((deployment.parameter_openapi_schema or {}).get("properties") or {}).keys())
        if "trigger" in declared:
            usable.append(RetrainDeployment(f"{RETRAIN_FLOW}/{deployment.name}", declared))
    if not usable and deployments:
        log.warning("retrain deployment(s) %s take no 'trigger' parameter; retraining in process", ", ".join(d.name for d in deployments))
    return usable[0] if usable else None


def batch_file(home: Path, model: str, batch: CurrentBatch) -> Path:
    """The batch as one file a retrain can read: the --current file itself, or the served rows
    saved under the home, named by their fingerprint."""
    if batch.source == "file":
        return batch.files[0]
    path = Path(home) / BATCHES / model / f"{batch.fingerprint[:16]}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        batch.frame.to_parquet(path, index=False)
    return path


def start_retrain(request: MonitorRequest, entry: dict[str, Any], current: Path, deployment: RetrainDeployment | None) -> RetrainStart:
    """Start the retrain a monitoring entry calls for, naming that entry as its trigger: through
    ``deployment`` (returns once Prefect has scheduled it) or in this process (returns its outcome)."""
    trigger = {"kind": "monitor", "entry": {"seq": int(entry["seq"]), "digest": str(entry["digest"])}}
    if deployment is not None:
        from prefect.deployments import run_deployment

        parameters: dict[str, Any] = {"trigger": trigger}
        if "home" in deployment.parameters:  # the registry that holds the trigger entry
            parameters["home"] = str(Path(request.home).resolve())
        if "current" in deployment.parameters:  # the batch that drifted becomes the retrain's current data
            parameters["current"] = str(Path(current).resolve())
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from gatewise.flows.execution import configured_api_url

        with temporary_settings(updates={PREFECT_API_URL: configured_api_url()}):
            flow_run = run_deployment(deployment.name, parameters=parameters, timeout=0)
        return RetrainStart("deployment", trigger, deployment=deployment.name, flow_run_id=str(flow_run.id), status="scheduled")

    from gatewise.flows.retrain import run_retrain
    from gatewise.flows.steps import RunRequest, preflight

    run_request = RunRequest(settings=request.settings, home=request.home, current_path=Path(current), trigger=trigger)
    dataset = preflight(run_request)
    outcome = run_retrain(run_request, dataset)
    return RetrainStart("in_process", trigger, run_id=outcome.run_id, status=outcome.status, promoted=outcome.promoted)

