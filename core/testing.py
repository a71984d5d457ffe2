"""gatewise.testing: the pytest plugin that plugin authors test their compressors with.

As pytest ships ``pytester``, gatewise ships this kit, registered through the ``pytest11`` entry
point (every pytest run in an environment with gatewise loads it; ``-p no:gatewise`` turns it
off). An author writes::

    from gatewise.testing import CompressorContract

    class TestMyCompressor(CompressorContract):
        compressor = MyCompressor()

and gets one test per part of the contract (docs/plugin-testing.md). The reference parent they
run against is trained once per session (fixture ``gatewise_reference_parent``); the compressor
runs once per class, in its own process with a timeout, exactly as a gatewise run calls it.
Every check fails with an AssertionError that names the compressor and the broken part.
``check_compressor`` runs the same checks in one call, for tests that want the figures back.

Importing this module stays cheap (no torch, onnx, onnxruntime or prefect): pytest imports it
on every run in the environment, gatewise's own suite included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gatewise.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_TIMEOUT_S = 120.0  # per compressor run; a class sets ``timeout_s`` to change it
UNKNOWN_PARAMETER = "__not_a_parameter__"
_LATENCIES = pytest.StashKey[list]()


@dataclass(frozen=True, eq=False)
class ReferenceParent:
    """A small real model to compress: its ONNX file, calibration rows (encoded), and test rows
    with their labels and the parent's scores."""

    path: Path
    calibration: np.ndarray
    test: pd.DataFrame
    labels: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class CompressorReport:
    """What ``check_compressor`` measured: sizes, decisions and score fidelity against the
    parent (the accuracy gate's figures), and batch-1 latency next to the parent's."""

    name: str
    parent_bytes: int
    output_bytes: int
    decision_agreement: float
    max_score_difference: float
    fidelity: dict[str, Any] = field(default_factory=dict)
    latency_ms: float = float("nan")
    parent_latency_ms: float = float("nan")


# Trained once per process: a pytester run inside a session reuses it instead of training again.
_TRAINED: dict[str, Any] = {}


def reference_parent(workdir: Path) -> ReferenceParent:
    """The built-in MLP trained on the bundled data, exported to ``workdir/parent.onnx``."""
    from gatewise.data import build_dataset, label_vector, split_dataset
    from gatewise.encoding import InputSpec
    from gatewise.export import export_onnx
    from gatewise.plugin_manager import load_plugins
    from gatewise.scoring import OnnxScorer

    path = Path(workdir) / "parent.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _TRAINED:
        plugins = load_plugins()
        dataset = build_dataset(plugins.get("data_source", "arrests").component.load(None), None, None, None)
        split = split_dataset(dataset, seed=42, test_fraction=0.3)
        spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
        trainer = plugins.get("trainer", "mlp").component
        trained = trainer.train(split.train, label_vector(split.train, dataset.schema), spec, {"epochs": 5})
        export_onnx(trained, spec.encode(split.test), path)
        _TRAINED.update(
            onnx=path.read_bytes(),
            calibration=spec.encode(split.train.sample(n=min(2048, len(split.train)), random_state=0)),
            test=split.test,
            labels=label_vector(split.test, dataset.schema),
            scores=OnnxScorer(path).predict_proba(split.test),
        )
    elif not path.exists():
        path.write_bytes(_TRAINED["onnx"])
    return ReferenceParent(path, _TRAINED["calibration"], _TRAINED["test"], _TRAINED["labels"], _TRAINED["scores"])


# -- the checks: each raises an AssertionError naming the compressor and the part it broke ------


def compressor_name(compressor: Any) -> str:
    __tracebackhide__ = True
    name = getattr(compressor, "name", None)
    assert isinstance(name, str) and name, f"name: {type(compressor).__name__} needs a non-empty str attribute 'name'"
    return name


def check_params_declared(compressor: Any, params: dict[str, Any] | None = None) -> None:
    """``check_params`` exists, accepts the defaults ({}) and ``params``, and refuses an unknown
    key with a UsageError; it returns None (gatewise ignores what it returns)."""
    __tracebackhide__ = True
    name = compressor_name(compressor)
    check = getattr(compressor, "check_params", None)
    assert callable(check), f"parameters: compressor '{name}' has no check_params(params) method"
    for given, what in (({}, "the defaults ({})"), (dict(params or {}), f"the test's params {params!r}")):
        try:
            returned = check(given)
        except Exception as exc:  # noqa: BLE001 - any refusal of valid params breaks the contract
            raise AssertionError(f"parameters: compressor '{name}' check_params refused {what}: {type(exc).__name__}: {exc}") from None
        assert returned is None, f"parameters: compressor '{name}' check_params returned {returned!r}; it must return None"
    try:
        check({UNKNOWN_PARAMETER: 1})
    except UsageError:
        return
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"parameters: compressor '{name}' check_params raised {type(exc).__name__} for an unknown key; "
                             "it must raise gatewise.UsageError naming it") from None
    raise AssertionError(f"parameters: compressor '{name}' check_params accepted an unknown key; it must raise UsageError naming it")


@dataclass(frozen=True)
class CompressorRun:
    """One run of a compressor in its own process: the output path, or why it failed."""

    name: str
    output: Path
    failure: str | None
    seconds: float

    def output_path(self, part: str) -> Path:
        """The output, for checking ``part``; an AssertionError with the run's failure if there is none."""
        __tracebackhide__ = True
        if self.failure is not None:
            raise AssertionError(f"{part}: {self.failure}")
        return self.output


def run_compressor(compressor: Any, parent: ReferenceParent, workdir: Path, params: dict[str, Any] | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> CompressorRun:
    """Run ``compressor`` on ``parent`` as a gatewise run does (gatewise.flows.isolation.run_isolated):
    in a spawned process, killed after ``timeout_s``; its exception comes back as the failure."""
    from gatewise.flows.isolation import IsolatedFailure, Step, run_isolated
    from gatewise.types import PluginInfo

    name = compressor_name(compressor)
    own = Path(workdir) / name
    own.mkdir(parents=True, exist_ok=True)
    source, output = own / "parent.onnx", own / f"{name}.onnx"
    source.write_bytes(parent.path.read_bytes())
    info = PluginInfo(name=name, version="", distribution="gatewise.testing", code_sha256="")
    step = Step(name=name, component=compressor, info=info, params=dict(params or {}))
    started, failure = time.perf_counter(), None
    try:
        run_isolated([step], source, output, own, parent.calibration.copy(), timeout_s)
    except IsolatedFailure as exc:  # its exception (with the child's traceback), a timeout, a death
        failure = f"compressor '{name}' failed in its own process: {exc}" + (f"\n{exc.detail.rstrip()}" if exc.detail else "")
    return CompressorRun(name, output, failure, time.perf_counter() - started)


def check_valid_onnx(run: CompressorRun) -> None:
    """The output exists and onnx.checker accepts it."""
    __tracebackhide__ = True
    from gatewise.errors import GatewiseError
    from gatewise.flows.isolation import check_valid

    if run.failure is not None and not run.output.exists():
        raise AssertionError(f"valid ONNX: {run.failure}")
    assert run.output.exists(), f"valid ONNX: compressor '{run.name}' wrote no file at the output path"
    try:
        check_valid(run.output)
    except GatewiseError as exc:
        raise AssertionError(f"valid ONNX: compressor '{run.name}' wrote an {exc}") from None
    run.output_path("valid ONNX")


def check_same_signature(run: CompressorRun, parent: ReferenceParent) -> None:
    """The parent's input and output names, element types and ranks; ONNX Runtime loads it with the
    parent's input contract and gives one score per row for batches of 1 and N."""
    __tracebackhide__ = True
    from gatewise.flows.isolation import check_signature
    from gatewise.scoring import OnnxScorer

    output = run.output_path("signature")
    try:
        check_signature(parent.path, output)
        scorer = OnnxScorer(output)
        single = scorer.predict_proba(parent.test.head(1))
        many = scorer.predict_proba(parent.test.head(64))
    except Exception as exc:  # noqa: BLE001 - the message is the contract violation
        raise AssertionError(f"signature: compressor '{run.name}': {type(exc).__name__}: {exc}".splitlines()[0]) from None
    assert single.shape == (1,), f"signature: compressor '{run.name}': a batch of one row gives shape {single.shape}"
    assert many.shape == (64,), f"signature: compressor '{run.name}': a batch of 64 rows gives shape {many.shape}"


def check_score_fidelity(run: CompressorRun, parent: ReferenceParent, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """The accuracy gate's own score-fidelity check (gates.accuracy_regression.score_fidelity) on
    the reference test rows, with the gate's default limits or ``limits`` (AccuracyPolicy fields)."""
    __tracebackhide__ = True
    import numpy as np

    from gatewise.gates.accuracy_regression import score_fidelity
    from gatewise.policy import AccuracyPolicy
    from gatewise.scoring import OnnxScorer

    scores = OnnxScorer(run.output_path("score fidelity")).predict_proba(parent.test)
    assert scores.shape == parent.scores.shape, f"score fidelity: compressor '{run.name}': {scores.shape} scores for {len(parent.test)} rows"
    assert np.all((scores >= 0) & (scores <= 1)), f"score fidelity: compressor '{run.name}': scores outside [0, 1]"
    policy = AccuracyPolicy(**(limits or {}))
    fidelity, failed = score_fidelity(parent.labels, scores, parent.scores, policy)
    measured = {
        "max_score_difference": ("max |p - p_parent|", fidelity["max_abs_score_difference"]),
        "max_quantile_score_difference": (f"q{policy.score_difference_quantile * 100:g} |p - p_parent|", fidelity["quantile_abs_score_difference"]),
        "max_log_loss_increase": ("log-loss increase", fidelity["log_loss_increase"]),
        "max_brier_increase": ("Brier increase", fidelity["brier_increase"]),
    }
    broken = [f"{measured[key][0]} {measured[key][1]:.3f} > {key} {getattr(policy, key):g}" for key in failed]
    assert not broken, (f"score fidelity: compressor '{run.name}' moved the parent's probabilities beyond the accuracy "
                        f"gate's limits: {'; '.join(broken)}")
    fidelity["decision_agreement"] = float(np.mean((scores >= 0.5) == (parent.scores >= 0.5)))
    return fidelity


def measure_latency(run: CompressorRun, parent: ReferenceParent) -> tuple[float, float]:
    """Batch-1 p50 latency in ms of the output and of the parent, timed side by side as a gatewise
    run times its candidates (gatewise.benchmark.benchmark_models). Reported, never asserted."""
    __tracebackhide__ = True
    from gatewise.benchmark import benchmark_models

    output = run.output_path("latency")
    figures = benchmark_models({"parent": parent.path, run.name: output}, parent.calibration[:256], rounds=5)
    return figures[run.name].p50_ms_batch1, figures["parent"].p50_ms_batch1


def check_compressor(compressor: Any, workdir: Path, params: dict[str, Any] | None = None, min_agreement: float = 0.9,
                     timeout_s: float = DEFAULT_TIMEOUT_S, limits: dict[str, Any] | None = None) -> CompressorReport:
    """Every check of the contract in one call, on ``reference_parent(workdir / "reference")``,
    plus at least ``min_agreement`` of the decisions at 0.5 equal to the parent's."""
    __tracebackhide__ = True
    check_params_declared(compressor, params)
    parent = reference_parent(Path(workdir) / "reference")
    run = run_compressor(compressor, parent, Path(workdir) / "runs", params, timeout_s)
    check_valid_onnx(run)
    check_same_signature(run, parent)
    fidelity = check_score_fidelity(run, parent, limits)
    agreement = fidelity["decision_agreement"]
    assert agreement >= min_agreement, f"decisions: compressor '{run.name}': only {agreement:.1%} agree with the parent (< {min_agreement:.0%})"
    latency, parent_latency = measure_latency(run, parent)
    return CompressorReport(
        name=run.name, parent_bytes=parent.path.stat().st_size, output_bytes=run.output.stat().st_size,
        decision_agreement=agreement, max_score_difference=fidelity["max_abs_score_difference"],
        fidelity=fidelity, latency_ms=latency, parent_latency_ms=parent_latency,
    )


# -- the pytest plugin: fixtures, the contract class, the latency summary --------------------------


@pytest.fixture(scope="session")
def gatewise_reference_parent(tmp_path_factory: pytest.TempPathFactory) -> ReferenceParent:
    """A real parent model (the built-in MLP on the bundled arrests data), trained once per session."""
    return reference_parent(tmp_path_factory.mktemp("gatewise-reference"))


@pytest.fixture(scope="session")
def gatewise_calibration(gatewise_reference_parent: ReferenceParent) -> np.ndarray:
    """Calibration rows as a run hands them to a compressor: encoded, float32, [N, features]."""
    return gatewise_reference_parent.calibration


class CompressorContract:
    """Subclass it as ``Test...`` and set ``compressor``: one test per part of the contract.

    Class attributes: ``compressor`` (the instance under test), ``params`` (what it is run with),
    ``timeout_s`` (its process is killed after this many seconds and the run test fails),
    ``fidelity_limits`` (AccuracyPolicy score-fidelity fields to relax, e.g.
    ``{"max_score_difference": 0.4}``; the gate's defaults otherwise).
    """

    compressor: Any = None
    params: dict[str, Any] = {}
    timeout_s: float = DEFAULT_TIMEOUT_S
    fidelity_limits: dict[str, Any] = {}

    @classmethod
    def _component(cls) -> Any:
        assert cls.compressor is not None, f"set 'compressor = MyCompressor()' on {cls.__name__}"
        return cls.compressor

    @pytest.fixture(scope="class")
    @classmethod
    def gatewise_compressor_run(cls, gatewise_reference_parent: ReferenceParent,
                                tmp_path_factory: pytest.TempPathFactory) -> CompressorRun:
        """The compressor run once for the class, in its own process, with ``timeout_s``."""
        workdir = tmp_path_factory.mktemp(f"gatewise-{cls.__name__}")
        try:
            return run_compressor(cls._component(), gatewise_reference_parent, workdir, cls.params, cls.timeout_s)
        except AssertionError as exc:  # no usable name or no compressor: every test says so
            return CompressorRun(cls.__name__, workdir / "none.onnx", str(exc), 0.0)

    def test_has_a_name(self) -> None:
        compressor_name(self._component())

    def test_declares_its_parameters(self) -> None:
        check_params_declared(self._component(), self.params)

    def test_runs_within_its_timeout_without_raising(self, gatewise_compressor_run: CompressorRun) -> None:
        gatewise_compressor_run.output_path(f"run (timeout {self.timeout_s:g} s)")

    def test_writes_valid_onnx(self, gatewise_compressor_run: CompressorRun) -> None:
        check_valid_onnx(gatewise_compressor_run)

    def test_keeps_the_parent_signature(self, gatewise_compressor_run: CompressorRun,
                                        gatewise_reference_parent: ReferenceParent) -> None:
        check_same_signature(gatewise_compressor_run, gatewise_reference_parent)

    def test_keeps_score_fidelity(self, gatewise_compressor_run: CompressorRun,
                                  gatewise_reference_parent: ReferenceParent) -> None:
        check_score_fidelity(gatewise_compressor_run, gatewise_reference_parent, self.fidelity_limits)

    def test_reports_latency(self, gatewise_compressor_run: CompressorRun, gatewise_reference_parent: ReferenceParent,
                             record_property: Any, request: pytest.FixtureRequest) -> None:
        latency, parent_latency = measure_latency(gatewise_compressor_run, gatewise_reference_parent)
        record_property("p50_ms_batch1", latency)
        record_property("parent_p50_ms_batch1", parent_latency)
        line = (f"{gatewise_compressor_run.name}: batch-1 p50 {latency:.4g} ms, parent {parent_latency:.4g} ms "
                f"(x{latency / parent_latency:.2f}); ran in {gatewise_compressor_run.seconds:.1f} s")
        request.config.stash.setdefault(_LATENCIES, []).append(line)
        print(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Latency of every compressor the contract ran, next to the parent's (reported, not asserted)."""
    lines = terminalreporter.config.stash.get(_LATENCIES, [])
    if lines:
        terminalreporter.section("gatewise compressor latency (reported, not asserted)")
        for line in lines:
            terminalreporter.write_line(line)
