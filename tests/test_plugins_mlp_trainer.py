"""The built-in 'mlp' trainer on the arrests data: determinism, quality, parameter checks."""

from __future__ import annotations

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
