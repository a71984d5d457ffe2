"""The work of one retraining run, as plain functions; flows/retrain.py wires them with Prefect."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.config import Settings, resolve_registry_url
from gatewise.data import build_dataset, fingerprint, label_vector, read_table
from gatewise.errors import GatewiseError, UsageError
from gatewise.plugin_manager import load_plugins
from gatewise.progress import staged
from gatewise.types import Candidate, Dataset, GateResult, PluginInfo, Split, sha256_file

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gatewise.hookspecs import TrainedModel
    from gatewise.registry import Registry, VersionInfo

log = logging.getLogger(__name__)

PARENT = "parent"
EXPORT_PLUGIN = PluginInfo(name="torch_onnx_export", version="", distribution="gatewise", code_sha256="")


@dataclass(frozen=True)
class RunRequest:
    """Everything a run needs, resolved from the CLI flags over gatewise.toml."""

    settings: Settings
    home: Path
    data_path: Path | None = None
    label: str | None = None
    positive: str | None = None
    sensitive: tuple[str, ...] | None = None
    current_path: Path | None = None
    trigger: dict[str, Any] | None = None  # what started the run (a deployment, a schedule, a monitoring entry); None: by hand


@dataclass(frozen=True)
class Champion:
    """The production version re-scored on today's test rows."""

    version: str
    sha256: str
    scores: Any  # np.ndarray


@dataclass(frozen=True)
class CandidateOutcome:
    candidate: Candidate
    version: str | None = None
    results: tuple[GateResult, ...] = ()
    latency_ms: float | None = None  # batch-1 p50 of the benchmark, in ms
    benchmark: Any = None  # gatewise.benchmark.Benchmark, measured after the gates

    @property
    def passed(self) -> bool:
        return self.candidate.status == "ok" and bool(self.results) and all(r.passed for r in self.results)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    model: str
    status: str  # "promoted" | "blocked" | "data_rejected"
    candidates: tuple[CandidateOutcome, ...] = ()
    data_gate: GateResult | None = None
    champion: str | None = None
    promoted: str | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)
    settings_digest: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    deployments: tuple[Any, ...] = ()  # gatewise.flows.deploy.DeploymentOutcome, one per [deploy] deployer
    selection: Any = None  # gatewise.selection.Selection: the objective, the winner, a verdict per candidate
    hardware: dict[str, Any] = field(default_factory=dict)  # what the benchmark ran on
    policy: dict[str, Any] | None = None  # the active signed gating policy's entry {"seq", "digest", "approver"}; None: defaults
    looser: tuple[Any, ...] = ()  # gatewise.registry.policy_entries.Loosening: why the winner was not promoted
    skipped: tuple[Candidate, ...] = ()  # compressor entries that did not apply (status "skipped", the reason in error)


@dataclass
class RunEnding:
    """Signs a run's entry (``begin``) and how it ended (a run-outcome entry), at most once and only
    after its run entry: a run stopped before that records nothing. Recording never hides what
    stopped the run."""

    registry: Registry
    run_id: str
    started: bool = False
    skipped: tuple[Candidate, ...] = ()
    promoted: str | None = None  # set once the promotion is signed: an interrupted deployment keeps it
    ended: bool = False

    def begin(self, model: str, settings: Settings, data: dict[str, str], trigger: dict[str, Any] | None) -> None:
        """Sign the run entry (settings, data fingerprints, plugins, trigger); from here on, how the
        run ends is signed too."""
        self.registry.record_run(self.run_id, model, settings.model_dump(mode="json"), settings.digest(), data,
                                 plugin_records(settings), trigger)
        self.started = True

    def end(self, outcome: str, promoted: str | None = None) -> None:
        self.registry.record_outcome(self.run_id, outcome, promoted=promoted or self.promoted, skipped=self.skipped)
        self.ended = True

    def stopped(self, exc: BaseException) -> None:
        """The run stopped on ``exc``: an interruption (Ctrl-C, SIGTERM) or an error ("failed")."""
        from gatewise.flows import interruption

        interrupted = interruption.is_interruption(exc)
        if interrupted:
            from gatewise.flows.isolation import stop_all

            stop_all()  # the compressors still running end with the run
        if not self.started or self.ended:
            return
        what = (interruption.received() or type(exc).__name__) if interrupted else f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        try:
            self.registry.record_outcome(self.run_id, "interrupted" if interrupted else "failed", promoted=self.promoted,
                                         skipped=self.skipped, error=what)
            self.ended = True
        except Exception as error:  # noqa: BLE001 - the run's own exception is what the user must see
            log.warning("could not sign the outcome of run %s: %s: %s", self.run_id, type(error).__name__, error)


# -- data ------------------------------------------------------------------------------------


def load_dataset(request: RunRequest) -> Dataset:
    plugins = load_plugins()
    data = request.settings.data
    path = request.data_path or data.path
    source = plugins.get("data_source", "file" if path else data.source).component
    table = source.load(Path(path) if path else None)
    label = request.label or data.label
    positive = request.positive if request.positive is not None else data.positive
    sensitive = request.sensitive if request.sensitive is not None else data.sensitive
    return build_dataset(table, label, positive, sensitive, data.id_column, data.time_column)


def preflight(request: RunRequest) -> Dataset:
    """Check what a user can get wrong before Prefect starts: the data, the plugins, the files.

    Bad input fails here in well under a second, with one line, and nothing is recorded.
    """
    plugins = load_plugins(request.settings.plugins.disable)
    settings = request.settings
    _check_params(plugins.get("trainer", settings.train.trainer).component, settings.train.params)
    steps_used = {step for name in settings.compress.compressors for step in chain_steps(name)}
    for name in sorted(steps_used):
        _check_params(plugins.get("compressor", name).component, settings.compress.params.get(name, {}))
    for name in settings.compress.params:
        if name not in steps_used:
            raise UsageError(f"[compress.params.{name}] configures a compressor that is not in [compress] compressors")
    for name in settings.compress.timeouts:
        if name not in steps_used and name not in settings.compress.compressors:
            raise UsageError(f"[compress.timeouts] {name}: not a compressor or chain in [compress] compressors")
    from gatewise.flows.deploy import check_deployers

    check_deployers(settings.deploy.deployers, settings.deploy.params, plugins)
    dataset = load_dataset(request)
    if settings.split.kind == "time" and dataset.schema.time_column is None:
        raise UsageError("--split time needs a time column: pass --time COLUMN or set [data] time_column")
    current = request.current_path or settings.data.current
    if current is not None:
        read_current(Path(current), dataset)
    from gatewise.registry.database import probe

    probe(request.home, resolve_registry_url(settings=settings))  # an unreachable or corrupt registry stops us here
    from gatewise.flows.preflight import check_registry_side

    check_registry_side(request.home, resolve_registry_url(settings=settings))  # its key; a writable store
    from gatewise.flows.execution import check_configured_server, check_task_runner

    check_task_runner(settings)  # a missing prefect-dask or a silent Dask scheduler, before the run
    check_configured_server()  # a PREFECT_API_URL that does not answer, before anything is created
    return dataset


def _check_params(component: object, params: dict) -> None:
    check = getattr(component, "check_params", None)
    if check is not None:
        check(dict(params))


@staged("data gate")
def validate_data(dataset: Dataset) -> GateResult:
    """The data gate (Great Expectations), before anything is trained."""
    from gatewise.gates import validate_dataset

    return validate_dataset(dataset.frame, dataset.schema)


@staged("split")
def split_data(dataset: Dataset, settings: Settings) -> Split:
    from gatewise.data import split_dataset

    return split_dataset(dataset, settings.split.seed, settings.split.test_fraction, settings.split.kind)


def load_current(request: RunRequest, dataset: Dataset, split: Split) -> pd.DataFrame:
    """The drift gate's current data: --current (features checked), else the test split."""
    path = request.current_path or request.settings.data.current
    return split.test if path is None else read_current(Path(path), dataset)


def read_current(path: Path, dataset: Dataset) -> pd.DataFrame:
    frame = read_table(path)
    missing = [c for c in dataset.schema.features if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: current data lacks feature column(s): {', '.join(missing)}")
    return frame


# -- training, export, compression -----------------------------------------------------------


@staged("train")
def train_parent(settings: Settings, dataset: Dataset, split: Split) -> TrainedModel:
    from gatewise.encoding import InputSpec

    registered = load_plugins().get("trainer", settings.train.trainer)
    schema = dataset.schema
    spec = InputSpec.fit(split.train, schema.numeric, schema.categorical)
    return registered.component.train(split.train, label_vector(split.train, schema), spec, dict(settings.train.params))


@staged("export")
def export_parent(trained: TrainedModel, split: Split, workdir: Path) -> Candidate:
    from gatewise import __version__
    from gatewise.export import export_onnx

    path = workdir / f"{PARENT}.onnx"
    export_onnx(trained, trained.spec.encode(split.test), path)
    if trained.record:  # the trainer's recipe and what it did, signed with the parent's bytes
        from gatewise.lineage import TRAINING_KEY, write_metadata

        write_metadata(path, TRAINING_KEY, trained.record)
    from gatewise import PLUGIN_API_VERSION
    from gatewise.provenance import distribution_sha256

    plugin = replace(EXPORT_PLUGIN, version=__version__, code_sha256=export_code_sha256(),
                     distribution_sha256=distribution_sha256("gatewise"), plugin_api=PLUGIN_API_VERSION)
    return Candidate(name=PARENT, plugin=plugin, status="ok", onnx_path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size)


def chain_steps(name: str) -> list[str]:
    """The compressors of a ``[compress] compressors`` entry: ``distill+int8_static`` runs distil, then quantize."""
    steps = [step.strip() for step in name.split("+")]
    if any(not step for step in steps):
        raise UsageError(f"[compress] compressors: '{name}' has an empty step; chain compressors as 'a+b'")
    return steps


@staged("compress {name}")
def compress(settings: Settings, name: str, parent: Candidate, calibration: np.ndarray, workdir: Path) -> Candidate:
    """Run one compressor, or a chain ``a+b`` (each step on the one before), in isolation: any
    failure becomes an 'errored' candidate, a step that does not apply a 'skipped' one (its reason
    in ``error``). Each step is recorded in the output's metadata."""
    from gatewise.scoring import OnnxScorer

    from gatewise.flows.isolation import IsolatedFailure, NotApplicable, Step, check_signature, run_isolated

    plugins = load_plugins()
    registered = [(step, plugins.get("compressor", step)) for step in chain_steps(name)]  # unknown: raised
    steps = [Step(step, r.component, r.info, dict(settings.compress.params.get(step, {}))) for step, r in registered]
    info = PluginInfo.chain(name, [step.info for step in steps])
    # Each compressor gets a folder and a copy of the parent of its own: quantizers write
    # temporary files beside their input, and compressors run in parallel.
    own = workdir / name
    own.mkdir()
    source = own / f"{PARENT}.onnx"
    shutil.copyfile(parent.onnx_path, source)
    path = own / f"{name}.onnx"
    try:
        overhead = run_isolated(steps, source, path, own, calibration, compress_timeout(settings, name))
        log.info("compressor %s: process start and hand-over took %.2f s", name, overhead)
        check_signature(parent.onnx_path, path)
        scores = OnnxScorer(path).predict_encoded(calibration[:64])
        if scores.shape != (min(64, len(calibration)),):
            raise GatewiseError(f"model output has shape {scores.shape}, expected one score per row")
    except NotApplicable as exc:
        log.info("compressor %s skipped: %s", name, exc)
        return Candidate(name=name, plugin=info, status="skipped", parent=parent.name, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - producers are isolated by design
        log.warning("compressor %s failed: %s", name, exc)
        message = str(exc) if isinstance(exc, IsolatedFailure) else f"{type(exc).__name__}: {exc}"
        message = message.splitlines()[0][:500] if message else type(exc).__name__
        detail = getattr(exc, "detail", "")
        return Candidate(name=name, plugin=info, status="errored", parent=parent.name,
                         error=f"{message}\n{detail}".rstrip() if detail else message)
    return Candidate(
        name=name, plugin=info, status="ok", onnx_path=path, sha256=sha256_file(path),
        parent=parent.name, size_bytes=path.stat().st_size,
    )


def compress_timeout(settings: Settings, name: str) -> float:
    """Seconds the entry ``name`` may run: its own [compress] timeouts entry, else the sum of its
    steps' (each step's entry or [compress] timeout_s)."""
    timeouts = settings.compress.timeouts
    if name in timeouts:
        return timeouts[name]
    return sum(timeouts.get(step, settings.compress.timeout_s) for step in chain_steps(name))


def record_step(source: Path, target: Path, plugin: PluginInfo, params: dict[str, Any]) -> None:
    """Append one entry for this step to the target's compression record (gatewise.lineage):
    the plugin's name, version, distribution and code hash, the params, and what the compressor
    itself wrote about the step, if anything."""
    from gatewise.lineage import COMPRESSION_KEY, read_compression_record, write_metadata

    before, after = read_compression_record(source), read_compression_record(target)
    said = after[len(before)] if len(after) == len(before) + 1 and after[: len(before)] == before else None
    record = {k: v for k, v in plugin.record().items() if k != "name"}
    step = {"compressor": plugin.name, "plugin": record, "params": params, "detail": said}
    write_metadata(target, COMPRESSION_KEY, before + [step])


# -- champion, gates, selection --------------------------------------------------------------


def rescore_champion(champion: VersionInfo | None, artifact: Path | None, split: Split) -> Champion | None:
    """Score the production version on today's test rows, after checking its bytes are the signed ones."""
    if champion is None or artifact is None:
        return None
    from gatewise.scoring import OnnxScorer

    if not artifact.exists() or sha256_file(artifact) != champion.sha256:
        raise GatewiseError(f"champion {champion.version}: artifact bytes do not match the registry; run `gatewise registry verify`")
    try:
        scores = OnnxScorer(artifact).predict_proba(split.test)
    except UsageError as exc:
        raise UsageError(f"champion {champion.version} cannot score today's data: {exc}") from None
    return Champion(version=champion.version, sha256=champion.sha256, scores=scores)


@staged("gates {candidate.name}")
def gate_candidate(
    settings: Settings, dataset: Dataset, split: Split, current: pd.DataFrame,
    candidate: Candidate, parent_scores: np.ndarray | None, champion: Champion | None,
    parent: Candidate | None = None,
) -> tuple[tuple[GateResult, ...], Any]:
    """Run the five mandatory gates on the candidate's ONNX file; return results and test scores.

    Speed is measured afterwards for all candidates together (``benchmark_candidates``): timed
    here, a candidate's latency would depend on which other gates ran beside it.
    """
    from gatewise.gates import run_mandatory_gates
    from gatewise.gates.inputs import GateInputs
    from gatewise.scoring import OnnxScorer

    scorer = OnnxScorer(candidate.onnx_path)
    scores = scorer.predict_proba(split.test)
    inputs = GateInputs(
        candidate=candidate.name, schema=dataset.schema, train=split.train, test=split.test, current=current,
        predict_proba=scorer.predict_proba, scores=scores, policy=settings.gates,
        parent_scores=parent_scores if candidate.parent else None,
        # The parent's own session: robustness and membership inference score it on the same rows.
        parent_predict_proba=OnnxScorer(parent.onnx_path).predict_proba if candidate.parent and parent else None,
        champion_scores=champion.scores if champion else None,
        champion_version=champion.version if champion else None,
    )
    results = tuple(run_mandatory_gates(inputs))
    return results, scores


@staged("benchmark")
def benchmark_candidates(settings: Settings, split: Split, outcomes: list[CandidateOutcome]) -> list[CandidateOutcome]:
    """Time every candidate with a file, one documented way, in one interleaved measurement."""
    from gatewise.benchmark import benchmark_models
    from gatewise.scoring import read_input_spec

    measured = {o.candidate.name: o.candidate.onnx_path for o in outcomes if o.candidate.status == "ok"}
    if not measured:
        return list(outcomes)
    rows = read_input_spec(next(iter(measured.values()))).encode(split.test.head(256))
    figures = benchmark_models(measured, rows, rounds=60, large_batch=settings.select.large_batch)
    return [
        replace(o, benchmark=figures[o.candidate.name], latency_ms=figures[o.candidate.name].p50_ms_batch1)
        if o.candidate.name in figures else o
        for o in outcomes
    ]


def select_candidates(settings: Settings, outcomes: tuple[CandidateOutcome, ...] | list[CandidateOutcome]) -> Any:
    """The ``[select]`` objective over the gate-passing candidates (gatewise.selection.select)."""
    from gatewise.selection import Entry, select

    chosen = settings.select
    entries = [Entry(o.candidate.name, o.candidate.parent, o.passed, o.benchmark) for o in outcomes]
    return select(entries, chosen.objective, dict(chosen.weights), chosen.tie_tolerance)


def select_winner(outcomes: tuple[CandidateOutcome, ...], settings: Settings | None = None) -> CandidateOutcome | None:
    """The outcome the ``[select]`` objective picks among those that passed every gate, or None."""
    winner = select_candidates(settings or Settings(), outcomes).winner
    return next((o for o in outcomes if o.candidate.name == winner), None)


def selection_evidence(evidence: dict[str, Any], outcome: CandidateOutcome, selection: Any) -> dict[str, Any]:
    """A candidate's gate evidence plus its lineage, benchmark row, the hardware and its selection verdict.

    Signed with each gate result, so the run's accuracy/latency/size table is in the record.
    """
    from gatewise.benchmark import hardware
    from gatewise.lineage import TRAINING_KEY, read_compression_record, read_metadata

    verdict = selection.verdict(outcome.candidate.name) if selection is not None else None
    path = outcome.candidate.onnx_path
    made = Path(path) if path is not None and Path(path).exists() else None
    return {
        **evidence,
        # How the bytes were made (also inside them): the trainer's recipe for a parent, each step for a child.
        "lineage": {"training": read_metadata(made, TRAINING_KEY), "compression": read_compression_record(made)} if made else None,
        "benchmark": outcome.benchmark.to_dict() if outcome.benchmark is not None else None,
        "hardware": hardware() if outcome.benchmark is not None else None,
        "selection": {
            "objective": selection.objective, "tie_tolerance": selection.tie_tolerance,
            "winner": selection.winner, "verdict": verdict.to_dict() if verdict else None,
        } if selection is not None else None,
    }


def promotion_reason(selection: Any, winner: CandidateOutcome) -> str:
    """The signed promotion's reason: the gates, and the measured figure that chose this candidate."""
    verdict = selection.verdict(winner.candidate.name)
    b = winner.benchmark
    figures = f"p50 {b.p50_ms_batch1:.4f} ms at batch 1, {b.throughput_rows_s:.0f} rows/s at batch {b.large_batch}, {b.size_bytes} bytes" if b else ""
    versus = f"; {verdict.speedup_batch1:.2f}x its parent's batch-1 speed" if verdict and verdict.speedup_batch1 else ""
    return f"all mandatory gates passed; selected by [select] objective '{selection.objective}': {figures}{versus}"


def data_fingerprints(dataset: Dataset, split: Split, current: pd.DataFrame) -> dict[str, str]:
    return {
        "dataset": dataset.fingerprint,
        "train": split.train_fingerprint,
        "test": split.test_fingerprint,
        "current": split.test_fingerprint if current is split.test else fingerprint(current),
    }


def plugin_records(settings: Settings) -> list[dict[str, str]]:
    """Which trainer and compressors a run uses: name, version, distribution, code hash."""
    plugins = load_plugins()
    steps = dict.fromkeys(step for name in settings.compress.compressors for step in chain_steps(name))
    chosen = [("trainer", settings.train.trainer)] + [("compressor", n) for n in steps]
    records = []
    for kind, name in chosen:
        records.append({"kind": kind, **plugins.get(kind, name).info.record()})
    return records


def open_registry(settings: Settings, home: Path) -> Registry:
    from gatewise.registry import Registry

    return Registry.open(home, resolve_registry_url(settings=settings))


def policy_check(registry: Registry, run_id: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """The active signed gating policy (seq, digest, approver; None: the built-in defaults) and each
    threshold of this run's signed [gates] that is looser than it (then nothing may be promoted)."""
    from gatewise.registry.policy_entries import run_loosenings
    from gatewise.registry.signed import SignedLedger

    with registry.reading() as conn:
        policy, looser = run_loosenings(SignedLedger(conn), run_id)
    return ({**policy.ref(), "approver": policy.approver} if policy else None), looser


def export_code_sha256() -> str:
    """The code hash of the parent's producer, the built-in ONNX export (gatewise.export), as every
    compressor plugin records the hash of its module's source."""
    import hashlib
    import inspect

    from gatewise import export

    return hashlib.sha256(inspect.getsource(export).encode()).hexdigest()
