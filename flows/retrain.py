"""The `retrain` Prefect flow: it reads like the data-flow diagram in DESIGN.md; steps.py works."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from gatewise import progress
from gatewise.benchmark import hardware
from gatewise.flows import deploy, interruption, steps
from gatewise.flows.steps import CandidateOutcome, RunOutcome, RunRequest
from gatewise.types import Dataset

from gatewise.flows.execution import apply_prefect_defaults

apply_prefect_defaults()  # before Prefect is first imported

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

# Frames, torch modules and registry handles pass between tasks in memory: no cache keys.
load_dataset = task(steps.load_dataset, name="load data", cache_policy=NO_CACHE)
validate_data = task(steps.validate_data, name="data gate", cache_policy=NO_CACHE)
split_data = task(steps.split_data, name="split", cache_policy=NO_CACHE)
load_current = task(steps.load_current, name="load current data", cache_policy=NO_CACHE)
train_parent = task(steps.train_parent, name="train", cache_policy=NO_CACHE)
export_parent = task(steps.export_parent, name="export to ONNX", cache_policy=NO_CACHE)
compress = task(steps.compress, name="compress", cache_policy=NO_CACHE)
rescore_champion = task(steps.rescore_champion, name="re-score champion", cache_policy=NO_CACHE)
gate_candidate = task(steps.gate_candidate, name="gates", cache_policy=NO_CACHE)
deploy_version = task(deploy.deploy_version, name="deploy", cache_policy=NO_CACHE)


class InMemory:
    """A loaded dataset handed to the flow as a parameter. Prefect JSON-encodes every parameter
    for the API; a bare Dataset is walked cell by cell first (7.6 s and about 200 MB at 500k rows)
    before Prefect gives up and stores a placeholder. This holder has no ``__dict__``, so the
    encoder gives up at once."""

    __slots__ = ("dataset",)

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset


@flow(name="retrain", log_prints=False, validate_parameters=False)
def retrain(request: RunRequest, dataset: Dataset | InMemory | None = None, run_id: str | None = None) -> RunOutcome:
    """Load, validate, split, train, export, compress, gate every candidate, register, promote, deploy."""
    settings = request.settings
    run_id = run_id or uuid.uuid4().hex[:12]
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(timings.get(stage, 0.0) + now - clock, 3)
        clock = now

    progress.current().end(progress.PREFECT_START)  # the CLI began it when it handed the run to Prefect
    interruption.reclaim()  # Prefect's engine took SIGTERM for the flow run; one signal, one clean stop
    registry = steps.open_registry(settings, request.home)
    ending = steps.RunEnding(registry, run_id)  # signs how the run ended, once its run entry is signed
    try:
        if isinstance(dataset, InMemory):
            dataset = dataset.dataset
        if dataset is None:  # the CLI hands over the dataset its pre-flight check loaded
            dataset = load_dataset(request)
        model = settings.data.model_name or dataset.name
        data_gate = validate_data(dataset)
        lap("data")
        if not data_gate.passed:
            ending.begin(model, settings, {"dataset": dataset.fingerprint}, request.trigger)
            registry.record_data_rejection(run_id, model, data_gate)
            ending.end("data_rejected")
            return RunOutcome(run_id, model, "data_rejected", data_gate=data_gate, settings_digest=settings.digest(), timings=timings)

        split = split_data(dataset, settings)
        current = load_current(request, dataset, split)
        fingerprints = steps.data_fingerprints(dataset, split, current)
        ending.begin(model, settings, fingerprints, request.trigger)
        lap("data")

        trained = train_parent(settings, dataset, split)
        lap("train")

        workdir = _workdir(request)
        try:
            parent = export_parent(trained, split, workdir)
            calibration = trained.spec.encode(split.train.sample(n=min(2048, len(split.train)), random_state=0))
            futures = [compress.submit(settings, name, parent, calibration, workdir) for name in settings.compress.compressors]
            children = [f.result() for f in futures]
            # A compressor that does not apply makes no version and meets no gate; the outcome names it.
            ending.skipped = tuple(c for c in children if c.status == "skipped")
            children = [c for c in children if c.status != "skipped"]
            lap("export_compress")

            champion_info = registry.champion(model)
            champion = rescore_champion(
                champion_info, registry.artifact_path(champion_info.version) if champion_info else None, split
            )
            # The parent is gated first: its test scores are the baseline of every compressed child.
            # Submitted, like the children, so every candidate's gates run on the task runner (Dask too).
            results, parent_scores = gate_candidate.submit(settings, dataset, split, current, parent, None, champion).result()
            outcomes = [CandidateOutcome(parent, results=results)]
            gated = {
                c.name: gate_candidate.submit(settings, dataset, split, current, c, parent_scores, champion, parent)
                for c in children if c.status == "ok"
            }
            for child in children:
                if child.name in gated:
                    results, _ = gated[child.name].result()
                    outcomes.append(CandidateOutcome(child, results=results))
                else:
                    outcomes.append(CandidateOutcome(child))
            lap("gates")
            # Timed together, after the gates, so no candidate is measured beside another's work.
            outcomes = steps.benchmark_candidates(settings, split, outcomes)
            selection = steps.select_candidates(settings, outcomes)
            lap("benchmark")

            evidence = {
                "policy_digest": settings.gates_digest(),
                "data": fingerprints,
                "champion_version": champion.version if champion else None,
            }
            progress.current().begin("registry")
            registered = []
            for outcome in outcomes:  # the parent comes first, so children can name it
                version = registry.register_candidate(run_id, model, outcome.candidate)
                if outcome.results:
                    registry.record_gate_results(version, list(outcome.results), steps.selection_evidence(evidence, outcome, selection))
                registered.append(replace(outcome, version=version))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

        progress.current().end("registry")
        winner = next((o for o in registered if o.candidate.name == selection.winner), None)
        policy, looser = steps.policy_check(registry, run_id)
        if looser:  # registered and gated, but held to thresholds looser than the signed policy
            winner = None
        if winner is not None:
            with progress.current().stage("promotion"):
                registry.promote(winner.version, reason=steps.promotion_reason(selection, winner))
            ending.promoted = winner.version
        lap("register")
        deployments = ()
        if winner is not None:  # each deployer's outcome is signed; none can undo the promotion
            with progress.current().stage("deployment"):
                deployments = deploy_version(registry, winner.version, settings.deploy.deployers, settings.deploy.params)
            lap("deploy")
        ending.end("promoted" if winner else "blocked", winner.version if winner else None)
        return RunOutcome(
            run_id, model, "promoted" if winner else "blocked", tuple(registered), data_gate,
            champion.version if champion else None, winner.version if winner else None, fingerprints,
            settings.digest(), timings, deployments, selection, hardware(), policy, tuple(looser), ending.skipped,
        )
    except BaseException as exc:  # Ctrl-C, SIGTERM (Prefect's TerminationSignal) or an error: end it signed
        ending.stopped(exc)
        raise
    finally:
        registry.close()


def _workdir(request: RunRequest) -> Path:
    base = Path(request.home) / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


@contextmanager
def _quiet_prefect() -> Iterator[None]:
    """No heartbeat thread (about 1.1 s per flow run, LIBRARY-NOTES) for a run that ends by itself."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def run_retrain(request: RunRequest, dataset: Dataset | None = None, run_id: str | None = None) -> RunOutcome:
    """Run the flow in this process, on the Prefect server at PREFECT_API_URL when one is configured
    (checked first), else on Prefect's temporary local server (no server to start); the candidates'
    compressors and gates run on the [run] task runner. Inside a deployment's flow it is a subflow."""
    from gatewise.flows.execution import check_configured_server, task_runner_for

    check_configured_server()
    runner = task_runner_for(request.settings)
    start = time.perf_counter()
    with _quiet_prefect():
        outcome = retrain.with_options(task_runner=runner)(request, InMemory(dataset) if dataset is not None else None, run_id)
    timings = dict(outcome.timings)
    timings["total"] = round(time.perf_counter() - start, 3)
    timings["prefect_overhead"] = round(timings["total"] - sum(v for k, v in outcome.timings.items()), 3)
    return RunOutcome(**{**outcome.__dict__, "timings": timings})
