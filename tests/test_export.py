"""torch -> ONNX export: one file, the input contract inside, parity with torch, a dynamic batch."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
import torch

from gatewise.data import build_dataset, label_vector, split_dataset
from gatewise.encoding import INPUT_NAME, OUTPUT_NAME, InputSpec
from gatewise.errors import GatewiseError
from gatewise.export import export_onnx
from gatewise.hookspecs import TrainedModel
from gatewise.plugins.data_sources import ArrestsSource
from gatewise.plugins.mlp_trainer import MLPTrainer
from gatewise.scoring import OnnxScorer, read_input_spec


@pytest.fixture(scope="module")
def trained():
    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    model = MLPTrainer().train(split.train, label_vector(split.train, dataset.schema), spec, {"epochs": 3})
    return model, spec.encode(split.test), split.test


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model, sample, _ = trained
    path = tmp_path_factory.mktemp("export") / "parent.onnx"
    difference = export_onnx(model, sample[:512], path)
    return path, difference


def test_export_matches_torch_and_carries_the_input_contract(trained, exported):
    model, _, test = trained
    path, difference = exported
    assert 0 <= difference <= 1e-4
    assert not path.with_name(path.name + ".data").exists()  # weights inside the one signed file
    assert read_input_spec(path) == model.spec
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [INPUT_NAME]
    assert [o.name for o in graph.output] == [OUTPUT_NAME]
    # Scoring raw rows through the file's own contract gives torch's answer on rows not in the sample.
    with torch.inference_mode():
        expected = model.module(torch.from_numpy(model.spec.encode(test.tail(300)))).numpy()
    np.testing.assert_allclose(OnnxScorer(path).predict_proba(test.tail(300)), expected, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 257])
def test_batch_dimension_is_dynamic(trained, exported, rows):
    _, sample, _ = trained
    scores = OnnxScorer(exported[0]).predict_encoded(sample[:rows])
    assert scores.shape == (rows,)


def test_a_table_longer_than_a_chunk_scores_as_one_call_would(trained, exported, monkeypatch):
    """Whole tables are scored in chunks (bounded ONNX Runtime memory); the scores are the same."""
    import gatewise.scoring as scoring

    _, sample, test = trained
    scorer = OnnxScorer(exported[0])
    whole = scorer.predict_encoded(sample)  # one session.run over every row
    monkeypatch.setattr(scoring, "SCORE_CHUNK_ROWS", 100)
    chunked = scorer.predict_proba(test)
    assert len(test) > 100 and np.array_equal(chunked, whole)


def test_same_weights_export_to_identical_bytes(trained, exported, tmp_path):
    model, sample, _ = trained
    again = tmp_path / "again.onnx"
    export_onnx(model, sample[:64], again)
    assert again.read_bytes() == exported[0].read_bytes()
    assert b"/plugins/" not in again.read_bytes()  # no source paths of the exporting machine


def test_sample_of_the_wrong_shape_is_refused(trained, tmp_path):
    model, sample, _ = trained
    with pytest.raises(GatewiseError, match="sample of shape"):
        export_onnx(model, sample[:1], tmp_path / "one_row.onnx")
    with pytest.raises(GatewiseError, match="sample of shape"):
        export_onnx(model, sample[:, :3], tmp_path / "narrow.onnx")


class _DriftingModule(torch.nn.Module):
    """Adds how often it was called: the exported graph freezes one count, eager torch moves on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = itertools.count(1)  # an iterator: torch.export cannot roll its state back

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.sum(dim=1) * 0 + float(next(self.calls))


def test_parity_failure_is_an_error(trained, tmp_path):
    model, sample, _ = trained
    drifting = TrainedModel(module=_DriftingModule(), spec=model.spec)
    with pytest.raises(GatewiseError, match="differs from torch"):
        export_onnx(drifting, sample[:8], tmp_path / "drifting.onnx")


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_models_with_one_kind_of_feature_export(tmp_path, kind):
    import pandas as pd

    rng = np.random.default_rng(0)
    if kind == "numeric":
        frame = pd.DataFrame({"a": rng.normal(size=200), "b": np.r_[[np.nan] * 5, rng.normal(size=195)]})
    else:
        frame = pd.DataFrame({"g": rng.choice(["x", "y", "z"], 200), "h": rng.choice(["p", "q", None], 200)})
    label = (rng.random(200) < 0.3).astype("int64")
    numeric = tuple(frame.columns) if kind == "numeric" else ()
    spec = InputSpec.fit(frame, numeric, tuple(frame.columns) if kind == "categorical" else ())
    model = MLPTrainer().train(frame, label, spec, {"epochs": 1, "hidden": [8]})
    assert export_onnx(model, spec.encode(frame), tmp_path / f"{kind}.onnx") <= 1e-4
