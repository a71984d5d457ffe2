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
