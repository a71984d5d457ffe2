"""Robustness gate: share of decisions that flip under numeric noise and category swaps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_gates_support import ARRESTS_SCHEMA, arrests_inputs, arrests_split

from gatewise.gates.robustness import perturb, robustness
from gatewise.policy import RobustnessPolicy


def fragile(frame: pd.DataFrame) -> np.ndarray:
    """Steps at the train medians of the numeric columns, XOR-ed: a tiny nudge across one flips it.

    Many arrests rows sit exactly on a median (integer years and check counts), so noise of a
    tenth of a standard deviation moves them across a step.
    """
    medians = arrests_split().train[list(ARRESTS_SCHEMA.numeric)].median()
    decision = np.zeros(len(frame), dtype=bool)
    for column in ARRESTS_SCHEMA.numeric:
        decision ^= pd.to_numeric(frame[column]).to_numpy(dtype=float) >= medians[column]
    return np.where(decision, 0.9, 0.1)


def test_the_stand_in_model_holds_its_decisions_under_noise():
    result = robustness(arrests_inputs())
    assert result.passed, result.summary
    assert 0 < result.value <= 0.15
    assert result.details["flips"] == round(result.value * result.details["test_rows"])
    assert abs(result.details["balanced_accuracy_drop"]) < 0.05
    json.dumps(result.details, allow_nan=False)


def test_a_model_that_flips_on_tiny_noise_fails():
    result = robustness(arrests_inputs(predict_proba=fragile))
    assert not result.passed
    assert result.value > 0.15
    assert "flip rate" in result.summary and "> 0.150" in result.summary


def test_the_perturbation_is_seeded_realistic_and_leaves_the_test_split_alone():
    split = arrests_split()
    before = split.test.copy()
    policy = RobustnessPolicy()
    first, evidence = perturb(split.test, split.train, ARRESTS_SCHEMA, policy)
    second, _ = perturb(split.test, split.train, ARRESTS_SCHEMA, policy)
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(split.test, before)
    # Noise is scaled by each column's spread on train.
    assert evidence["numeric_noise_sd"]["age"] == pytest.approx(0.1 * split.train["age"].std())
    assert (first["age"] - split.test["age"]).abs().max() > 0
    for column in ARRESTS_SCHEMA.categorical:
        changed = first[column] != split.test[column]
        assert set(first[column]) <= set(split.train[column])
        assert 0.02 < changed.mean() < 0.08  # about category_swap_rate, each to a different category
        assert evidence["categorical_swapped_share"][column] == changed.mean()
