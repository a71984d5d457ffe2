"""The built-in ``distill`` compressor, and chains such as ``distill+int8_static`` run by the flow's step."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from gatewise.config import Settings, parse_settings
from gatewise.errors import UsageError
from gatewise.lineage import TRAINING_KEY, read_compression_record, read_metadata
from gatewise.plugins.distillation import Distill
from gatewise.scoring import OnnxScorer, read_input_spec
from gatewise.types import Candidate, sha256_file
from test_plugins_graph_optimize import signature
from test_plugins_support import crafted_parent, unusual_rows


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return crafted_parent(tmp_path_factory.mktemp("distill"), {"hidden": [64, 32], "epochs": 6, "validation_fraction": 0})


@pytest.fixture(scope="module")
def student(parent, tmp_path_factory):
    output = tmp_path_factory.mktemp("student") / "distill.onnx"
    Distill().compress(parent.path, output, parent.calibration, {"hidden": [8], "epochs": 40})
    return output


def test_the_student_is_smaller_and_keeps_the_parents_signature(parent, student):
    shapes = {t.name: tuple(t.dims) for t in onnx.load(str(student)).graph.initializer if t.name.endswith(".weight")}
    assert shapes["net.0.weight"][0] == 8 and shapes["net.2.weight"] == (1, 8) and "net.4.weight" not in shapes
    assert student.stat().st_size < parent.path.stat().st_size / 2
    assert signature(student) == signature(parent.path)
    assert read_input_spec(student) == read_input_spec(parent.path)


def test_the_student_agrees_with_its_teacher(parent, student):
    rows = unusual_rows(parent)
    teacher = OnnxScorer(parent.path).predict_encoded(rows)
    scores = OnnxScorer(student).predict_encoded(rows)
    assert np.mean((scores >= 0.5) == (teacher >= 0.5)) >= 0.95


def test_the_record_names_teacher_and_student_and_keeps_the_training_recipe(parent, student):
    (record,) = read_compression_record(student)
    assert record["compressor"] == "distill" and record["hidden_teacher"] == [64, 32] and record["hidden_student"] == [8]
    assert record["training"]["loss"] == "MSE on logits" and len(record["training"]["loss_curve"]) == 40


def test_bad_params_are_usage_errors(parent, tmp_path):
    with pytest.raises(UsageError, match="unknown parameter 'temperature'"):
        Distill().compress(parent.path, tmp_path / "x.onnx", parent.calibration, {"temperature": 2})


# -- chains -----------------------------------------------------------------------------------


def _parent_candidate(parent):
    from gatewise.flows.steps import EXPORT_PLUGIN

    return Candidate(name="parent", plugin=EXPORT_PLUGIN, status="ok", onnx_path=parent.path, sha256=sha256_file(parent.path))


def test_a_chain_runs_each_step_on_the_one_before_and_records_every_step(parent, tmp_path):
    from gatewise.flows.steps import compress

    settings = parse_settings({"compress": {"compressors": ["distill+int8_static"],
                                            "params": {"distill": {"hidden": [8], "epochs": 20}}}})
    child = compress(settings, "distill+int8_static", _parent_candidate(parent), parent.calibration, tmp_path)
    assert child.status == "ok", child.error
    assert child.plugin.name == "distill+int8_static" and child.plugin.distribution == "gatewise"
    assert len(child.plugin.code_sha256) == 64 and child.parent == "parent"
    steps = read_compression_record(child.onnx_path)
    assert [s["compressor"] for s in steps] == ["distill", "int8_static"]
    assert steps[0]["params"] == {"hidden": [8], "epochs": 20} and steps[0]["detail"]["hidden_student"] == [8]
    assert steps[1]["params"] == {} and steps[1]["plugin"]["distribution"] == "gatewise"
    assert read_metadata(child.onnx_path, TRAINING_KEY) == read_metadata(parent.path, TRAINING_KEY)
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(child.onnx_path)).graph.node)
    assert signature(child.onnx_path) == signature(parent.path)


def test_a_failing_step_makes_the_chain_an_errored_candidate(parent, tmp_path):
    from gatewise.flows.steps import compress

    # distill applies, then int8_static fails: it has no calibration row to calibrate on.
    child = compress(Settings(), "distill+int8_static", _parent_candidate(parent), parent.calibration[:0], tmp_path)
    assert child.status == "errored" and "calibration" in child.error


def test_a_step_that_cannot_read_the_model_before_it_skips_the_chain_with_the_reason(parent, tmp_path):
    from gatewise.flows.steps import compress

    # int8_static's output is no longer the MLP's own graph, so pruning cannot rebuild it.
    child = compress(Settings(), "int8_static+prune_units", _parent_candidate(parent), parent.calibration, tmp_path)
    assert child.status == "skipped" and child.onnx_path is None
    assert child.error.startswith("prune_units: the parent is not an ONNX export of gatewise's 'mlp' trainer")
    assert Distill().applies(parent.path, {}) is None


def test_preflight_checks_each_step_of_a_chain(tmp_path):
    from gatewise.flows.steps import RunRequest, preflight

    def request(compress):
        return RunRequest(settings=parse_settings({"compress": compress}), home=tmp_path)

    with pytest.raises(UsageError, match="unknown compressor 'distil'"):
        preflight(request({"compressors": ["distil+int8_static"]}))
    with pytest.raises(UsageError, match="compressor 'distill': unknown parameter 'width'"):
        preflight(request({"compressors": ["distill+int8_static"], "params": {"distill": {"width": 3}}}))
    with pytest.raises(UsageError, match="empty step"):
        preflight(request({"compressors": ["distill+"]}))
