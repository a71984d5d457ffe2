"""The pipeline's plain steps: pre-flight checks, compressor isolation, selection."""

from __future__ import annotations

import pytest

from gatewise.config import Settings
from gatewise.errors import UsageError
from gatewise.flows import steps
from gatewise.flows.steps import CandidateOutcome, RunRequest
from gatewise.types import Candidate, GateResult, PluginInfo


def request(tmp_path, **settings) -> RunRequest:
    return RunRequest(settings=Settings.model_validate(settings), home=tmp_path)


def test_preflight_loads_the_bundled_data(tmp_path):
    dataset = steps.preflight(request(tmp_path))
    assert dataset.name == "arrests" and dataset.schema.sensitive == ("colour", "sex")
    assert not (tmp_path / "registry.db").exists()


def test_preflight_names_a_bad_compressor_parameter(tmp_path):
    with pytest.raises(UsageError, match=r"compressor 'int8_static': unknown parameter 'rows'"):
        steps.preflight(request(tmp_path, compress={"params": {"int8_static": {"rows": 5}}}))


def test_preflight_names_an_unknown_compressor(tmp_path):
    with pytest.raises(UsageError, match=r"unknown compressor 'prune' \(known: .*int8_dynamic"):
        steps.preflight(request(tmp_path, compress={"compressors": ["prune"]}))


def test_preflight_rejects_current_data_without_the_features(tmp_path):
    current = tmp_path / "current.csv"
    current.write_text("year,age\n2001,30\n")
    req = RunRequest(settings=Settings(), home=tmp_path, current_path=current)
    with pytest.raises(UsageError, match="current data lacks feature column"):
        steps.preflight(req)


class Exploding:
    name = "explodes"

    def compress(self, parent, output, calibration, params):
        raise RuntimeError("boom")


def test_a_crashing_compressor_becomes_an_errored_candidate(tmp_path, monkeypatch):
    from gatewise.plugin_manager import Registered, load_plugins

    plugins = load_plugins()
    info = PluginInfo("explodes", "1.0", "thirdparty", "0" * 64)
    monkeypatch.setitem(plugins._components["compressor"], "explodes", Registered(Exploding(), info))
    (tmp_path / "p.onnx").write_bytes(b"a parent model")
    parent = Candidate(name="parent", plugin=info, status="ok", onnx_path=tmp_path / "p.onnx", sha256="0" * 64)
    import numpy as np

    outcome = steps.compress(Settings(), "explodes", parent, np.zeros((4, 3), dtype="float32"), tmp_path)
    assert outcome.status == "errored" and "RuntimeError: boom" in outcome.error
    assert outcome.plugin.distribution == "thirdparty" and outcome.parent == "parent"


def _outcome(name, latency, size, passed=True):
    from gatewise.benchmark import Benchmark

    info = PluginInfo(name, "1", "gatewise", "")
    result = GateResult("leakage", passed, 0.5, 0.9, "")
    figures = Benchmark(latency, latency, latency * 50, latency * 50, 256, 256 / (latency * 50 / 1000), size, None, 100, 10)
    return CandidateOutcome(Candidate(name, info, "ok", size_bytes=size), f"m:{name}", (result,), latency, figures)


def test_selection_prefers_latency_then_size_and_skips_failures():
    fast_big, slow_small = _outcome("a", 0.100, 2000), _outcome("b", 0.200, 1000)
    assert steps.select_winner((fast_big, slow_small)).candidate.name == "a"
    tie_small = _outcome("c", 0.103, 500)
    assert steps.select_winner((fast_big, tie_small)).candidate.name == "c"
    assert steps.select_winner((_outcome("d", 0.01, 1, passed=False),)) is None


def test_preflight_stops_at_an_unreachable_registry(tmp_path):
    from gatewise.errors import RegistryError

    req = request(tmp_path, registry={"url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with pytest.raises(RegistryError, match="cannot reach the registry"):
        steps.preflight(req)


def test_preflight_stops_at_a_corrupt_registry_file(tmp_path):
    from gatewise.errors import RegistryError

    (tmp_path / "registry.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RegistryError, match="corrupt or not a SQLite database"):
        steps.preflight(request(tmp_path))
    assert (tmp_path / "registry.db").read_bytes() == b"this is not a database" * 100


def test_the_loaded_dataset_reaches_prefect_as_a_placeholder_without_being_walked():
    """Prefect JSON-encodes flow parameters; the dataset goes in a holder the encoder refuses at once."""
    from gatewise.data import build_dataset
    from gatewise.flows.retrain import InMemory, retrain
    from gatewise.plugins.data_sources import ArrestsSource

    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    assert retrain.serialize_parameters({"dataset": InMemory(dataset)}) == {"dataset": "<InMemory>"}
