"""The built-in ``prune_units`` compressor: really narrower layers, the parent's signature, close scores."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from gatewise.errors import UsageError
from gatewise.lineage import read_compression_record
from gatewise.plugins.pruning import PruneUnits
from gatewise.scoring import OnnxScorer, read_input_spec
from test_plugins_graph_optimize import signature
from test_plugins_support import crafted_parent, unusual_rows


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return crafted_parent(tmp_path_factory.mktemp("prune"), {"hidden": [32, 16], "epochs": 6, "validation_fraction": 0})


@pytest.fixture(scope="module")
def pruned(parent, tmp_path_factory):
    output = tmp_path_factory.mktemp("pruned") / "prune_units.onnx"
    PruneUnits().compress(parent.path, output, parent.calibration, {"keep": 0.5, "epochs": 10})
    return output


def weight_shapes(path):
    return {t.name: tuple(t.dims) for t in onnx.load(str(path)).graph.initializer if t.name.endswith(".weight")}


def test_hidden_layers_are_really_narrower(parent, pruned):
    before, after = weight_shapes(parent.path), weight_shapes(pruned)
    assert before["net.0.weight"][0] == 32 and after["net.0.weight"][0] == 16
    assert before["net.2.weight"] == (16, 32) and after["net.2.weight"] == (8, 16)
    assert after["net.4.weight"] == (1, 8)
    dense = [numpy_helper.to_array(t) for t in onnx.load(str(pruned)).graph.initializer if t.name.endswith(".weight")]
    assert all(np.count_nonzero(w) > 0.9 * w.size for w in dense)  # narrower, not sparse
    assert pruned.stat().st_size < parent.path.stat().st_size


def test_keeps_the_signature_and_the_decisions(parent, pruned):
    assert signature(pruned) == signature(parent.path)
    assert read_input_spec(pruned) == read_input_spec(parent.path)
    rows = unusual_rows(parent)
    expected = OnnxScorer(parent.path).predict_encoded(rows)
    actual = OnnxScorer(pruned).predict_encoded(rows)
    assert actual.shape == expected.shape
    assert np.mean((actual >= 0.5) == (expected >= 0.5)) >= 0.95


def test_the_fine_tune_is_recorded_and_brings_the_student_closer(parent, tmp_path, pruned):
    (record,) = read_compression_record(pruned)
    assert record["hidden_before"] == [32, 16] and record["hidden_after"] == [16, 8]
    curve = record["fine_tune"]["loss_curve"]
    assert len(curve) == 10 and curve[-1] < curve[0]
    untuned = tmp_path / "untuned.onnx"
    PruneUnits().compress(parent.path, untuned, parent.calibration, {"keep": 0.5, "epochs": 0})
    rows = parent.spec.encode(parent.test)
    reference = OnnxScorer(parent.path).predict_encoded(rows)
    assert np.mean(np.abs(OnnxScorer(pruned).predict_encoded(rows) - reference)) < np.mean(
        np.abs(OnnxScorer(untuned).predict_encoded(rows) - reference)
    )


def test_a_parent_that_is_not_the_mlp_is_refused_with_a_reason(parent, tmp_path):
    from test_deploy_support import tiny_onnx

    tiny = tiny_onnx(tmp_path / "tiny.onnx", 1.0)
    assert PruneUnits().applies(tiny, {}).startswith("the parent is not an ONNX export of gatewise's 'mlp' trainer")
    assert PruneUnits().applies(parent.path, {}) is None
    with pytest.raises(ValueError, match="not an ONNX export of gatewise's 'mlp' trainer"):
        PruneUnits().compress(tiny, tmp_path / "x.onnx", parent.calibration, {})


def test_bad_params_are_usage_errors(parent, tmp_path):
    with pytest.raises(UsageError, match="bad value for parameter 'keep'"):
        PruneUnits().compress(parent.path, tmp_path / "x.onnx", parent.calibration, {"keep": 0})
