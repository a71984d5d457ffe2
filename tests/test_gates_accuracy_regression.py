"""Accuracy regression gate: a balanced-accuracy floor, and no drop vs the champion or the parent."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from test_gates_support import ARRESTS_SCHEMA, arrests_inputs, arrests_model, arrests_split

from gatewise.gates.accuracy_regression import accuracy_regression


@pytest.fixture(scope="module")
def majority_scores() -> np.ndarray:
    """A real fitted majority-class model: 83% accurate on arrests, and useless."""
    from sklearn.dummy import DummyClassifier

    from gatewise.data import label_vector

    split = arrests_split()
    features = list(ARRESTS_SCHEMA.features)
    model = DummyClassifier(strategy="most_frequent").fit(split.train[features], label_vector(split.train, ARRESTS_SCHEMA))
    return model.predict_proba(split.test[features])[:, 1]


@pytest.fixture(scope="module")
def over_compressed_scores() -> np.ndarray:
    """The stand-in model with its weights rounded to a 0.5 grid: a compressor gone too far."""
    compressed = copy.deepcopy(arrests_model())
    classifier = compressed.model[-1]
    classifier.coef_ = np.round(classifier.coef_ / 0.5) * 0.5
    return compressed.predict_proba(arrests_split().test)


def test_a_class_weighted_model_passes_and_reports_balanced_accuracy_and_auc():
    result = accuracy_regression(arrests_inputs())
    assert result.passed, result.summary
    assert result.gate == "accuracy_regression"
    assert 0.6 < result.value < 0.8
    assert result.threshold == 0.6
    assert 0.65 < result.details["roc_auc"] < 0.85
    assert result.details["champion_rescored"] is False and result.details["champion_version"] is None
    assert result.details["failed_checks"] == []
    assert result.summary.startswith(f"balanced accuracy {result.value:.3f} >= 0.600")
    json.dumps(result.details, allow_nan=False)


def test_a_majority_class_model_fails_the_floor_despite_high_plain_accuracy(majority_scores):
    result = accuracy_regression(arrests_inputs(scores=majority_scores))
    assert not result.passed
    assert result.value == pytest.approx(0.5)
    assert result.details["accuracy"] > 0.8  # what plain accuracy would have shown
    assert result.details["failed_checks"] == ["min_balanced_accuracy"]
    assert "< 0.600" in result.summary


def test_a_candidate_worse_than_the_rescored_champion_fails_with_a_paired_interval(over_compressed_scores):
    champion = arrests_inputs().scores
    result = accuracy_regression(arrests_inputs(scores=over_compressed_scores, champion_scores=champion, champion_version="3"))
    assert not result.passed
    details = result.details
    assert details["champion_rescored"] is True and details["champion_version"] == "3"
    assert details["failed_checks"] == ["max_drop_vs_champion"]
    assert details["drop_vs_champion"] > 0.02
    low, high = details["drop_vs_champion_ci95"]
    assert low <= details["drop_vs_champion"] <= high
    assert "drop vs champion" in result.summary and "> 0.020" in result.summary


def test_a_candidate_equal_to_the_champion_passes():
    inputs = arrests_inputs()
    result = accuracy_regression(arrests_inputs(champion_scores=inputs.scores.copy(), champion_version="1"))
    assert result.passed, result.summary
    assert result.details["drop_vs_champion"] == 0.0
    assert result.details["drop_vs_champion_ci95"] == [0.0, 0.0]
    assert "drop vs champion 0.000 <= 0.020" in result.summary


def test_a_compressed_candidate_that_lost_accuracy_vs_its_parent_fails(over_compressed_scores):
    parent = arrests_inputs().scores
    result = accuracy_regression(arrests_inputs(candidate="crude", scores=over_compressed_scores, parent_scores=parent))
    assert not result.passed
    assert "max_drop_vs_parent" in result.details["failed_checks"]
    assert result.details["compressed"] is True
    assert result.details["drop_vs_parent"] > 0.01
    assert result.details["drop_vs_parent_ci95"][1] > 0.0


def test_scores_that_do_not_line_up_with_the_test_rows_are_refused():
    inputs = arrests_inputs()
    with pytest.raises(ValueError, match="champion has 10 scores"):
        accuracy_regression(arrests_inputs(champion_scores=inputs.scores[:10]))
