"""Fairness gate: Fairlearn parity differences per sensitive column, and per-group drop vs the parent."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from test_gates_support import ARRESTS_SCHEMA, arrests_inputs, arrests_split, fit_logreg

from gatewise.gates.fairness import fairness


def test_the_stand_in_model_passes_and_every_group_is_reported_with_its_size():
    result = fairness(arrests_inputs())
    assert result.passed, result.summary
    columns = result.details["columns"]
    assert set(columns) == {"colour", "sex"}
    test_rows = len(arrests_split().test)
    for report in columns.values():
        assert sum(group["size"] for group in report["groups"].values()) == test_rows
        assert 0 <= report["demographic_parity_difference"] <= 1
    assert set(columns["colour"]["groups"]) == {"Black", "White"}
    assert result.value == max(report["equalized_odds_difference"] for report in columns.values())
    json.dumps(result.details, allow_nan=False)


def test_the_default_policy_blocks_the_disparity_of_the_bundled_data():
    from gatewise.policy import GatePolicy

    result = fairness(arrests_inputs(policy=GatePolicy()))
    assert not result.passed
    assert result.details["columns"]["colour"]["demographic_parity_difference"] > 0.2
    assert "(colour)" in result.summary


def test_a_model_whose_scores_follow_the_sensitive_column_fails():
    split = arrests_split()
    # Trained to predict "White" rather than release: its decisions are the colour column.
    biased = fit_logreg(split.train, ARRESTS_SCHEMA, target=(split.train["colour"] == "White").to_numpy(dtype=int))
    result = fairness(arrests_inputs(predict_proba=biased.predict_proba))
    assert not result.passed
    colour = result.details["columns"]["colour"]
    assert colour["demographic_parity_difference"] > 0.9
    assert any(check.startswith("colour: demographic_parity_difference") for check in result.details["failed_checks"])
    assert "demographic parity" in result.summary and "(colour)" in result.summary


def test_no_declared_sensitive_column_passes_and_says_so():
    inputs = arrests_inputs()
    result = fairness(replace(inputs, schema=replace(ARRESTS_SCHEMA, sensitive=())))
    assert result.passed and result.value is None
    assert "no sensitive columns were declared" in result.summary


def test_a_compressed_candidate_that_hurts_one_group_fails_vs_its_parent():
    parent = arrests_inputs().scores
    women = (arrests_split().test["sex"] == "Female").to_numpy()
    # Same as the parent except that every woman is now released: her group loses its negatives' recall.
    hurt = np.where(women, 0.99, parent)
    result = fairness(arrests_inputs(candidate="int8", scores=hurt, parent_scores=parent))
    assert not result.passed
    sex = result.details["columns"]["sex"]
    assert sex["groups"]["Female"]["drop_vs_parent"] > 0.05
    assert sex["groups"]["Male"]["drop_vs_parent"] == 0.0
    assert any(check.startswith("sex: max_group_drop_vs_parent") for check in result.details["failed_checks"])


def test_a_compressed_candidate_equal_to_its_parent_passes():
    parent = arrests_inputs().scores
    result = fairness(arrests_inputs(candidate="int8", scores=parent.copy(), parent_scores=parent))
    assert result.passed, result.summary
    assert result.details["columns"]["colour"]["max_group_drop_vs_parent"] == 0.0
    assert "group drop vs parent 0.000 <= 0.050" in result.summary
