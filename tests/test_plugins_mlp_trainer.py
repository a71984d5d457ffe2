"""The built-in 'mlp' trainer on the arrests data: determinism, quality, parameter checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from gatewise.data import build_dataset, label_vector, split_dataset
from gatewise.encoding import InputSpec
from gatewise.errors import UsageError
from gatewise.plugins.data_sources import ArrestsSource
from gatewise.plugins.mlp_trainer import MLPTrainer


@pytest.fixture(scope="module")
def arrests():
    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    return split, spec, label_vector(split.train, dataset.schema), label_vector(split.test, dataset.schema)


def scores(module, features):
    with torch.inference_mode():
        return module(torch.from_numpy(features)).numpy()


def test_same_data_and_seed_give_bitwise_same_weights(arrests):
    split, spec, y_train, _ = arrests
    params = {"epochs": 3, "seed": 7}
    first = MLPTrainer().train(split.train, y_train, spec, params).module.state_dict()
    second = MLPTrainer().train(split.train, y_train, spec, params).module.state_dict()
    other = MLPTrainer().train(split.train, y_train, spec, {**params, "seed": 8}).module.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not torch.equal(first["net.0.weight"], other["net.0.weight"])


def test_training_leaves_global_torch_state_alone(arrests):
    split, spec, y_train, _ = arrests
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MLPTrainer().train(split.train, y_train, spec, {"epochs": 1})
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_class_weighted_model_beats_chance_on_balanced_accuracy(arrests):
    split, spec, y_train, y_test = arrests
    trained = MLPTrainer().train(split.train, y_train, spec, {})
    predicted = scores(trained.module, spec.encode(split.test))
    assert predicted.shape == (len(split.test),)
    assert ((predicted >= 0) & (predicted <= 1)).all()
    # Always answering "released" scores 0.83 accuracy but 0.5 balanced accuracy.
    assert balanced_accuracy_score(y_test, predicted >= 0.5) > 0.62
    assert roc_auc_score(y_test, predicted) > 0.68
    assert trained.spec == spec


def test_unknown_category_code_adds_nothing(arrests):
    split, spec, y_train, _ = arrests
    module = MLPTrainer().train(split.train, y_train, spec, {"epochs": 1}).module
    features = spec.encode(split.test.head(4))
    features[:, len(spec.numeric) :] = 0  # every category unseen in training
    unknown = scores(module, features)
    features[:, len(spec.numeric) :] = 99  # codes past every vocabulary
    out_of_range = scores(module, features)
    np.testing.assert_array_equal(unknown, out_of_range)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hiden": [8]}, "unknown parameter 'hiden'"),
        ({"epochs": 0}, "bad value for parameter 'epochs'"),
        ({"hidden": [8, -1]}, "bad value for parameter 'hidden.1'"),
        ({"lr": "fast"}, "bad value for parameter 'lr'"),
    ],
)
def test_bad_params_are_usage_errors_naming_the_key(arrests, params, message):
    split, spec, y_train, _ = arrests
    with pytest.raises(UsageError, match=message):
        MLPTrainer().train(split.train, y_train, spec, params)


def test_one_class_training_split_is_refused(arrests):
    split, spec, y_train, _ = arrests
    with pytest.raises(UsageError, match="one class"):
        MLPTrainer().train(split.train, np.ones_like(y_train), spec, {})


# -- the training recipe, on small crafted data ------------------------------------------------


@pytest.fixture(scope="module")
def crafted():
    from test_plugins_support import CATEGORICAL, NUMERIC, crafted_frame

    frame, label = crafted_frame(900, seed=3)
    spec = InputSpec.fit(frame, NUMERIC, CATEGORICAL)
    return frame, label, spec


def _validation_loss(module, features, label, pos_weight):
    loss = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight], dtype=torch.float32))
    with torch.no_grad():
        return float(loss(module.logits(torch.from_numpy(features)), torch.from_numpy(label.astype(np.float32))))


def test_early_stopping_restores_the_best_epochs_weights(crafted):
    from gatewise.plugins.mlp_module import _stratified_split

    frame, label, spec = crafted
    # A high learning rate with no decay to speak of overfits soon: the validation loss turns up.
    params = {"epochs": 40, "patience": 4, "lr": 0.05, "warmup_fraction": 0, "refit": False, "hidden": [64, 64], "seed": 5}
    trained = MLPTrainer().train(frame, label, spec, params)
    record = trained.record
    curve = record["validation_loss"]
    assert record["stopped_early"] and record["epochs_run"] < 40
    assert record["best_epoch"] == 1 + int(np.argmin(curve)) and record["epochs_run"] == record["best_epoch"] + 4
    assert curve[-1] > min(curve)  # the last epoch was worse than the best one...
    # ...and the returned weights are the best epoch's: recompute its loss on the same validation rows.
    _, valid = _stratified_split(torch.from_numpy(label.astype(np.float32)), 0.15, torch.Generator().manual_seed(5))
    features = spec.encode(frame)[valid.numpy()]
    loss = _validation_loss(trained.module, features, label[valid.numpy()], record["pos_weight"])
    assert loss == pytest.approx(record["best_validation_loss"], abs=1e-5)


def test_the_validation_rows_are_carved_per_class_from_train(crafted):
    frame, label, spec = crafted
    record = MLPTrainer().train(frame, label, spec, {"epochs": 2, "validation_fraction": 0.2}).record
    positives, negatives = int(label.sum()), int(len(label) - label.sum())
    assert record["rows"]["validation"] == round(positives * 0.2) + round(negatives * 0.2)
    assert record["rows"]["train"] + record["rows"]["validation"] == len(label)
    assert record["refit"]["rows"]["train"] == len(label)  # the refit learns from every training row


def test_every_choice_of_the_recipe_is_recorded(crafted):
    frame, label, spec = crafted
    record = MLPTrainer().train(frame, label, spec, {"epochs": 3, "clip_norm": None, "class_weight": "none"}).record
    recipe = record["recipe"]
    assert record["trainer"] == "mlp"
    assert recipe["optimizer"] == "AdamW" and "cosine" in recipe["schedule"] and recipe["bf16_autocast"] is False
    assert recipe["clip_norm"] is None and recipe["class_weight"] == "none" and record["pos_weight"] == 1.0
    assert {"seed", "lr", "weight_decay", "warmup_fraction", "patience", "validation_fraction", "hidden"} <= set(recipe)
    assert record["samples_per_s"] > 0
    json.dumps(record, allow_nan=False)  # strict JSON: it is signed


def test_the_parent_file_carries_the_training_record(crafted, tmp_path):
    from gatewise.flows.steps import export_parent
    from gatewise.lineage import TRAINING_KEY, read_metadata
    from gatewise.types import Split

    frame, label, spec = crafted
    trained = MLPTrainer().train(frame, label, spec, {"epochs": 2})
    split = Split(frame, frame.head(50), 0, "0" * 64, "1" * 64)
    parent = export_parent(trained, split, tmp_path)
    assert read_metadata(parent.onnx_path, TRAINING_KEY) == json.loads(json.dumps(trained.record))
    # The parent's producer is recorded like any plugin: gatewise's whole-distribution digest and API.
    from gatewise import PLUGIN_API_VERSION

    assert len(parent.plugin.distribution_sha256) == 64 and parent.plugin.plugin_api == PLUGIN_API_VERSION
