"""The built-in INT8 compressors on a real exported arrests model, run in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from gatewise.data import build_dataset, label_vector, split_dataset
from gatewise.encoding import InputSpec
from gatewise.errors import UsageError
from gatewise.export import export_onnx
from gatewise.plugins.data_sources import ArrestsSource
from gatewise.plugins.mlp_trainer import MLPTrainer
from gatewise.plugins.quantization import Int8Dynamic, Int8Static
from gatewise.scoring import OnnxScorer, read_input_spec

COMPRESSORS = [Int8Dynamic(), Int8Static()]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    trained = MLPTrainer().train(split.train, label_vector(split.train, dataset.schema), spec, {})
    calibration = spec.encode(split.train)
    path = tmp_path_factory.mktemp("quantization") / "parent.onnx"
    export_onnx(trained, calibration[:256], path)
    return path, calibration, split.test


@pytest.fixture(scope="module", params=COMPRESSORS, ids=lambda c: c.name)
def compressed(request, parent, tmp_path_factory):
    path, calibration, _ = parent
    output = tmp_path_factory.mktemp(request.param.name) / "child.onnx"
    request.param.compress(path, output, calibration, {})
    return output


def test_int8_file_is_smaller_and_keeps_the_input_contract(parent, compressed):
    path, _, _ = parent
    assert compressed.stat().st_size < path.stat().st_size
    assert read_input_spec(compressed) == read_input_spec(path)


def test_int8_decisions_agree_with_the_parent(parent, compressed):
    path, _, test = parent
    expected = OnnxScorer(path).predict_proba(test) >= 0.5
    actual = OnnxScorer(compressed).predict_proba(test) >= 0.5
    assert np.mean(actual == expected) >= 0.97


def test_int8_file_scores_single_rows(parent, compressed):
    _, _, test = parent
    assert OnnxScorer(compressed).predict_proba(test.head(1)).shape == (1,)


def test_compression_logs_nothing_above_debug(parent, tmp_path, caplog):
    path, calibration, _ = parent
    with caplog.at_level("INFO"):
        for compressor in COMPRESSORS:
            compressor.compress(path, tmp_path / f"{compressor.name}.onnx", calibration, {"per_channel": True})
    assert caplog.records == []


@pytest.mark.parametrize("compressor", COMPRESSORS, ids=lambda c: c.name)
def test_unknown_param_is_a_usage_error_naming_it(parent, tmp_path, compressor):
    path, calibration, _ = parent
    with pytest.raises(UsageError, match="unknown parameter 'bits'"):
        compressor.compress(path, tmp_path / "x.onnx", calibration, {"bits": 4})
    assert not (tmp_path / "x.onnx").exists()


def test_static_quantization_needs_calibration_rows(parent, tmp_path):
    path, calibration, _ = parent
    with pytest.raises(UsageError, match="calibration"):
        Int8Static().compress(path, tmp_path / "x.onnx", calibration[:0], {})


# --- applicability, on small crafted graphs -------------------------------------------------------

def crafted_model(path, nodes, initializers, width=16):
    """An ONNX file reading ``features`` [batch, width] and writing ``out``, with an input contract."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from gatewise.scoring import stamp_input_spec

    graph = helper.make_graph(
        nodes, "crafted",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.int64 if k.startswith("shape") else np.float32), k)
         for k, v in initializers.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    stamp_input_spec(path, InputSpec(tuple(f"x{i}" for i in range(width)), (0.0,) * width, ()))
    return path


def conv_model(path, with_gemm):
    """features -> [batch, 1, 4, 4] -> Conv(4 filters, 3x3) -> flatten (-> Gemm to 1 output when ``with_gemm``)."""
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Reshape", ["features", "shape_image"], ["image"]),
             helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["maps"]),
             helper.make_node("Reshape", ["maps", "shape_flat"], ["flat" if with_gemm else "out"])]
    initializers = {"shape_image": [-1, 1, 4, 4], "conv_w": rng.normal(size=(4, 1, 3, 3)), "conv_b": np.zeros(4),
                    "shape_flat": [-1, 16]}
    if with_gemm:
        nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["out"], transB=1))
        initializers |= {"fc_w": rng.normal(size=(1, 16)), "fc_b": np.zeros(1)}
    return crafted_model(path, nodes, initializers)


def op_types(path):
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_a_model_with_convolutions_is_dynamically_quantized_only_in_its_gemm(tmp_path):
    import onnxruntime as ort

    parent = conv_model(tmp_path / "conv_gemm.onnx", with_gemm=True)
    assert Int8Dynamic().applies(parent, {}) is None
    child = tmp_path / "child.onnx"
    Int8Dynamic().compress(parent, child, np.zeros((4, 16), np.float32), {})
    ops = op_types(child)
    assert "Conv" in ops and "ConvInteger" not in ops and "MatMulInteger" in ops
    rows = np.random.default_rng(1).normal(size=(8, 16)).astype(np.float32)
    outputs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"features": rows})[0]
               for p in (parent, child)]
    assert np.max(np.abs(outputs[1] - outputs[0])) <= 0.05 * np.max(np.abs(outputs[0]))  # INT8 rounding only


def test_convolutions_alone_are_skipped_by_int8_dynamic_but_not_by_int8_static(tmp_path):
    parent = conv_model(tmp_path / "conv.onnx", with_gemm=False)
    reason = Int8Dynamic().applies(parent, {})
    assert "no Gemm or MatMul node" in reason and "never dynamically quantized" in reason
    assert Int8Static().applies(parent, {}) is None


def test_a_model_without_matrix_products_is_skipped_with_the_reason(tmp_path):
    from onnx import helper

    parent = crafted_model(tmp_path / "sigmoid.onnx", [helper.make_node("Sigmoid", ["features"], ["out"])], {})
    assert Int8Dynamic().applies(parent, {}) == "the model has no Gemm or MatMul node to quantize"
    assert Int8Static().applies(parent, {}) == "the model has no Conv or Gemm or MatMul node to quantize"


def test_an_already_quantized_model_is_not_quantized_again(parent, compressed):
    path, _, _ = parent
    assert Int8Dynamic().applies(path, {}) is None and Int8Static().applies(path, {}) is None
    for compressor in COMPRESSORS:
        assert compressor.applies(compressed, {}).startswith("the model is already quantized (")
