"""The built-in ``graph_optimize`` compressor: same function, fewer nodes, the parent's signature."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from gatewise.errors import UsageError
from gatewise.lineage import COMPRESSION_KEY, read_compression_record
from gatewise.plugins.graph_optimize import GraphOptimize, fold_standardization
from gatewise.scoring import OnnxScorer, read_input_spec
from gatewise.testing import check_compressor
from test_plugins_support import crafted_parent, unusual_rows


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return crafted_parent(tmp_path_factory.mktemp("graph_optimize"))


@pytest.fixture(scope="module")
def optimized(parent, tmp_path_factory):
    output = tmp_path_factory.mktemp("optimized") / "graph_optimize.onnx"
    GraphOptimize().compress(parent.path, output, parent.calibration, {})
    return output


def signature(path):
    model = onnx.load(str(path))
    def shape(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    return ([(i.name, i.type.tensor_type.elem_type, shape(i)) for i in model.graph.input],
            [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output])


def test_keeps_the_parents_signature_and_input_contract(parent, optimized):
    assert signature(optimized) == signature(parent.path)
    assert read_input_spec(optimized) == read_input_spec(parent.path)


def test_scores_equal_the_parents_within_1e_5_even_for_unknown_categories(parent, optimized):
    rows = unusual_rows(parent)
    expected = OnnxScorer(parent.path).predict_encoded(rows)
    actual = OnnxScorer(optimized).predict_encoded(rows)
    assert np.max(np.abs(actual - expected)) <= 1e-5
    assert OnnxScorer(optimized).predict_encoded(rows[:1]).shape == (1,)


def test_standardization_is_gone_from_the_graph_and_the_record_says_how(parent, optimized):
    before = [n.op_type for n in onnx.load(str(parent.path)).graph.node]
    after = [n.op_type for n in onnx.load(str(optimized)).graph.node]
    assert "Div" in before and "Div" not in after and "Slice" not in after
    assert len(after) < len(before)
    (record,) = read_compression_record(optimized)
    assert record["compressor"] == "graph_optimize" and record["ort_level"] == "extended"
    # A year (mean 2000, spread 1.7) cannot be centred inside the folded bias in float32 within
    # 1e-5, so the Sub stays and only the division is folded.
    assert record["folded"] in ("mean_and_std", "std")
    assert record["max_abs_error_calibration"] <= 1e-5


def test_a_graph_of_another_shape_is_left_to_onnx_runtime_alone(parent, optimized, tmp_path):
    model = onnx.load(str(optimized))
    assert fold_standardization(model) is False  # nothing left to fold
    output = tmp_path / "again.onnx"
    GraphOptimize().compress(optimized, output, parent.calibration, {})
    steps = read_compression_record(output)
    assert [s["compressor"] for s in steps] == ["graph_optimize", "graph_optimize"]
    assert steps[-1]["folded"] == "none"


def test_meets_the_plugin_contract(tmp_path):
    report = check_compressor(GraphOptimize(), tmp_path)
    assert report.decision_agreement == 1.0
    assert report.max_score_difference <= 1e-5
    assert report.output_bytes < report.parent_bytes


@pytest.mark.parametrize(("params", "message"), [
    ({"level": "all"}, "bad value for parameter 'level'"),
    ({"passes": 3}, "unknown parameter 'passes'"),
    ({"max_abs_error": 0}, "bad value for parameter 'max_abs_error'"),
])
def test_bad_params_are_usage_errors_naming_the_key(parent, tmp_path, params, message):
    with pytest.raises(UsageError, match=message):
        GraphOptimize().compress(parent.path, tmp_path / "x.onnx", parent.calibration, params)
    assert not (tmp_path / "x.onnx").exists()


def test_the_record_travels_in_the_signed_bytes(optimized):
    props = {p.key: p.value for p in onnx.load(str(optimized)).metadata_props}
    assert json.loads(props[COMPRESSION_KEY])[0]["onnxruntime"]


def test_applies_to_a_parent_with_standardization_to_fold(parent):
    assert GraphOptimize().applies(parent.path, {}) is None


def test_an_already_optimized_graph_is_skipped_with_the_reason(parent, optimized):
    reason = GraphOptimize().applies(optimized, {})
    assert reason.startswith("nothing to gain: no input standardization to fold")


def test_a_crafted_graph_applies_only_where_onnx_runtime_removes_a_node(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    def model(path, ops):
        rng = np.random.default_rng(0)
        nodes, value = [], "features"
        if "Gemm" in ops:
            nodes.append(helper.make_node("Gemm", [value, "w", "b"], ["linear"], transB=1))
            value = "linear"
        nodes.append(helper.make_node(ops[-1], [value], ["out"]))
        graph = helper.make_graph(
            nodes, "crafted", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b")] if "Gemm" in ops else [])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        return path

    assert GraphOptimize().applies(model(tmp_path / "gemm_relu.onnx", ["Gemm", "Relu"]), {}) is None  # Gemm+Relu fuse
    reason = GraphOptimize().applies(model(tmp_path / "sigmoid.onnx", ["Sigmoid"]), {})
    assert reason == ("nothing to gain: no input standardization to fold, and ONNX Runtime's extended "
                      "optimization removes none of the model's 1 nodes")


def test_a_parent_with_only_numeric_columns_is_folded_too(tmp_path):
    from gatewise.encoding import InputSpec
    from gatewise.export import export_onnx
    from gatewise.plugins.mlp_trainer import MLPTrainer
    from test_plugins_support import NUMERIC, crafted_frame

    frame, label = crafted_frame(600)
    spec = InputSpec.fit(frame, NUMERIC, ())
    trained = MLPTrainer().train(frame, label, spec, {"epochs": 2, "hidden": [8], "validation_fraction": 0})
    rows = spec.encode(frame)
    parent, output = tmp_path / "parent.onnx", tmp_path / "optimized.onnx"
    export_onnx(trained, rows[:64], parent)
    assert [n.op_type for n in onnx.load(str(parent)).graph.node][:3] == ["Sub", "Div", "Gemm"]  # no Slice, no Concat
    GraphOptimize().compress(parent, output, rows, {})
    assert "Div" not in [n.op_type for n in onnx.load(str(output)).graph.node]
    assert read_compression_record(output)[-1]["folded"] in ("mean_and_std", "std")
    assert np.max(np.abs(OnnxScorer(output).predict_encoded(rows) - OnnxScorer(parent).predict_encoded(rows))) <= 1e-5
