"""The example third-party plugin (examples/gatewise-prune), found through its entry point.

`make test` installs it; without it these tests skip and say so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("gatewise_prune", reason="examples/gatewise-prune is not installed (make test installs it)")

from gatewise.config import Settings  # noqa: E402
from gatewise.data import build_dataset, label_vector, split_dataset  # noqa: E402
from gatewise.encoding import InputSpec  # noqa: E402
from gatewise.errors import UsageError  # noqa: E402
from gatewise.export import export_onnx  # noqa: E402
from gatewise.flows import steps  # noqa: E402
from gatewise.gates.accuracy_regression import accuracy_regression  # noqa: E402
from gatewise.gates.inputs import GateInputs  # noqa: E402
from gatewise.plugin_manager import load_plugins  # noqa: E402
from gatewise.plugins.data_sources import ArrestsSource  # noqa: E402
from gatewise.plugins.mlp_trainer import MLPTrainer  # noqa: E402
from gatewise.scoring import OnnxScorer  # noqa: E402
from gatewise.types import Candidate, PluginInfo, sha256_file  # noqa: E402

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    trained = MLPTrainer().train(split.train, label_vector(split.train, dataset.schema), spec, {})
    workdir = tmp_path_factory.mktemp("prune")
    path = workdir / "parent.onnx"
    export_onnx(trained, spec.encode(split.test), path)
    info = PluginInfo("torch_onnx_export", "", "gatewise", "")
    candidate = Candidate("parent", info, "ok", onnx_path=path, sha256=sha256_file(path))
    return dataset, split, candidate, workdir


def test_the_entry_point_plugin_is_found_with_its_distribution():
    registered = load_plugins().get("compressor", "prune_magnitude")
    assert registered.info.distribution == "gatewise-prune-example"
    assert registered.info.version == "0.1.0" and len(registered.info.code_sha256) == 64


def test_pruned_candidate_runs_and_is_gated_against_its_parent(parent, tmp_path):
    dataset, split, parent_candidate, _ = parent
    settings = Settings.model_validate(
        {"compress": {"compressors": ["prune_magnitude"], "params": {"prune_magnitude": {"sparsity": 0.95}}}}
    )
    calibration = OnnxScorer(parent_candidate.onnx_path).spec.encode(split.train.head(64))
    child = steps.compress(settings, "prune_magnitude", parent_candidate, calibration, tmp_path)
    assert child.status == "ok" and child.plugin.distribution == "gatewise-prune-example"
    parent_scores = OnnxScorer(parent_candidate.onnx_path).predict_proba(split.test)
    child_scorer = OnnxScorer(child.onnx_path)
    inputs = GateInputs(
        candidate=child.name, schema=dataset.schema, train=split.train, test=split.test, current=split.test,
        predict_proba=child_scorer.predict_proba, scores=child_scorer.predict_proba(split.test),
        policy=Settings().gates, parent_scores=parent_scores,
    )
    # Pruning 95% of the weights costs accuracy: the gate sees it against the parent.
    result = accuracy_regression(inputs)
    assert not result.passed and "parent" in result.summary
    gentle = accuracy_regression(replace(inputs, scores=parent_scores))
    assert gentle.passed


def test_bad_parameter_is_named_before_the_run(tmp_path):
    settings = {"compress": {"compressors": ["prune_magnitude"], "params": {"prune_magnitude": {"sparsity": 2}}}}
    request = steps.RunRequest(settings=Settings.model_validate(settings), home=tmp_path)
    with pytest.raises(UsageError, match="prune_magnitude': sparsity must be a number"):
        steps.preflight(request)


def test_check_params_returns_nothing_and_names_a_bad_value():
    from gatewise_prune import MagnitudePruning

    assert MagnitudePruning().check_params({"sparsity": 0.2}) is None
    with pytest.raises(UsageError, match="unknown parameter 'ratio'"):
        MagnitudePruning().check_params({"ratio": 0.2})


def test_the_installed_package_ships_its_contract_tests(pytester):
    # `make test` runs them (pytest --pyargs gatewise_prune); here: they are found in the installed package.
    result = pytester.runpytest("-p", "no:cacheprovider", "--pyargs", "gatewise_prune", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*tests/test_contract.py::TestMagnitudePruning::test_keeps_score_fidelity",
                                 "7 tests collected*"])
