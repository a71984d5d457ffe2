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
    assert result.details["cold_start"] is True and "cold start" in result.summary
    assert result.details["failed_checks"] == [] and result.details["reason"] is None
    assert result.summary.startswith(f"balanced_accuracy {result.value:.3f} >= 0.600")
    json.dumps(result.details, allow_nan=False)


def test_a_majority_class_model_fails_the_floor_despite_high_plain_accuracy(majority_scores):
    result = accuracy_regression(arrests_inputs(scores=majority_scores))
    assert not result.passed
    assert result.value == pytest.approx(0.5)
    assert result.details["accuracy"] > 0.8  # what plain accuracy would have shown
    assert result.details["failed_checks"] == ["min_metric"]
    assert "< 0.600" in result.summary
    assert result.details["reason"].startswith("accuracy_regression failed (min_metric): balanced_accuracy 0.500 < 0.600")


def test_a_candidate_worse_than_the_rescored_champion_fails_with_a_paired_interval(over_compressed_scores):
    champion = arrests_inputs().scores
    result = accuracy_regression(arrests_inputs(scores=over_compressed_scores, champion_scores=champion, champion_version="3"))
    assert not result.passed
    details = result.details
    assert details["champion_rescored"] is True and details["champion_version"] == "3"
    assert details["failed_checks"] == ["max_drop_vs_champion", "max_relative_drop_vs_champion"]
    assert details["relative_drop_vs_champion"] == pytest.approx(details["drop_vs_champion"] / details["champion_balanced_accuracy"], abs=1e-5)
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
    assert "cold start" not in result.summary


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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def test_a_compressor_that_keeps_every_decision_but_flattens_the_probabilities_fails():
    """The "last logit / 1000" compressor: every decision and the balanced accuracy unchanged,
    every probability squeezed into about [0.4994, 0.5004], log-loss that of a constant 0.5."""
    parent = arrests_inputs().scores
    flattened = 1 / (1 + np.exp(-_logit(parent) / 1000))
    assert (flattened >= 0.4990).all() and (flattened <= 0.5010).all()
    result = accuracy_regression(arrests_inputs(candidate="logit_div_1000", scores=flattened, parent_scores=parent))
    assert not result.passed
    details = result.details
    assert details["drop_vs_parent"] == 0.0  # what the decisions alone would have shown
    assert details["score_fidelity"]["decisions_changed"] == 0
    assert details["score_fidelity"]["log_loss"] == pytest.approx(np.log(2), abs=1e-3)
    assert set(details["failed_checks"]) == {
        "max_score_difference", "max_quantile_score_difference", "max_log_loss_increase", "max_brier_increase"
    }
    assert "|p - p_parent| max" in result.summary
    assert details["reason"].startswith("accuracy_regression failed (max_score_difference, ")


def test_a_compressed_candidate_with_faithful_scores_passes_fidelity():
    """Weights stored in float16 and a one-in-a-thousand logit nudge: the scores barely move."""
    compressed = copy.deepcopy(arrests_model())
    classifier = compressed.model[-1]
    classifier.coef_ = classifier.coef_.astype(np.float16).astype(np.float64) * 1.001
    scores = compressed.predict_proba(arrests_split().test)
    parent = arrests_inputs().scores
    result = accuracy_regression(arrests_inputs(candidate="fp16", scores=scores, parent_scores=parent))
    assert result.passed, result.summary
    fidelity = result.details["score_fidelity"]
    assert 0 < fidelity["max_abs_score_difference"] < 0.01
    assert abs(fidelity["log_loss_increase"]) < 0.005


@pytest.mark.parametrize("metric", ["balanced_accuracy", "roc_auc", "f1", "accuracy"])
def test_the_primary_metric_is_configurable_and_drops_are_measured_in_it(metric, over_compressed_scores):
    from gatewise.policy import AccuracyPolicy, GatePolicy

    policy = GatePolicy(accuracy_regression=AccuracyPolicy(metric=metric, min_metric=0.5))
    champion = arrests_inputs().scores
    result = accuracy_regression(arrests_inputs(policy=policy, scores=over_compressed_scores, champion_scores=champion, champion_version="2"))
    assert result.details["metric"] == metric and result.summary.startswith(metric)
    assert result.details[f"champion_{metric}"] is not None
    low, high = result.details["drop_vs_champion_ci95"]
    assert low <= result.details["drop_vs_champion"] <= high


@pytest.mark.parametrize("metric", ["balanced_accuracy", "f1", "accuracy"])
def test_the_count_bootstrap_matches_resampling_rows_without_a_resamples_by_rows_matrix(metric, over_compressed_scores):
    """The decision metrics resample cell counts (one multinomial per resample) instead of a
    [samples x rows] index matrix; the interval is the one resampling the rows gives, within the
    bootstrap's own noise, and the method is written into the evidence."""
    from gatewise.data import label_vector
    from gatewise.gates.metrics import BOOTSTRAP_METHOD, balanced_accuracy, decisions, paired_bootstrap_drop

    y = label_vector(arrests_split().test, ARRESTS_SCHEMA)
    baseline, candidate = arrests_inputs().scores, over_compressed_scores
    function = {
        "balanced_accuracy": balanced_accuracy,
        "f1": lambda t, p: 2 * (t & p).sum(axis=-1) / (t.sum(axis=-1) + p.sum(axis=-1)),
        "accuracy": lambda t, p: (t == p).mean(axis=-1),
    }[metric]
    draws = np.random.default_rng(7).integers(0, len(y), size=(2000, len(y)))  # rows resampled, the textbook way
    by_rows = function(y[draws], decisions(baseline)[draws]) - function(y[draws], decisions(candidate)[draws])
    low, high = paired_bootstrap_drop(y, baseline, candidate, 2000, metric)
    reference_low, reference_high = np.percentile(by_rows, [2.5, 97.5])
    width = reference_high - reference_low
    assert abs(low - reference_low) < 0.15 * width and abs(high - reference_high) < 0.15 * width
    assert paired_bootstrap_drop(y, baseline, candidate, 2000, metric) == [low, high]  # seeded
    details = accuracy_regression(arrests_inputs(scores=candidate, parent_scores=baseline)).details
    assert details["bootstrap_method"] == BOOTSTRAP_METHOD and details["bootstrap_samples"] == 1000


def test_the_auc_bootstrap_gives_the_same_interval_whatever_its_chunk_size(monkeypatch, over_compressed_scores):
    from gatewise.data import label_vector
    from gatewise.gates import metrics

    y = label_vector(arrests_split().test, ARRESTS_SCHEMA)
    whole = metrics.paired_bootstrap_drop(y, arrests_inputs().scores, over_compressed_scores, 200, "roc_auc")
    monkeypatch.setattr(metrics, "BOOTSTRAP_CHUNK_CELLS", 7 * len(y))  # 7 resamples at a time
    assert metrics.paired_bootstrap_drop(y, arrests_inputs().scores, over_compressed_scores, 200, "roc_auc") == whole
    assert whole[0] < whole[1]
