"""Drift gate: Evidently compares the training data with the current data, column by column."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_gates_support import arrests_inputs, arrests_split

from gatewise.gates import drift as drift_module
from gatewise.gates.drift import drift


@pytest.fixture(scope="module")
def shifted():
    """Current data a few years on: everyone older, more checks, fewer employed."""
    current = arrests_split().test.copy()
    current["year"] += 4
    current["age"] += 15
    current["checks"] += 3
    current["employed"] = "No"
    return current


def _flip(values):
    return values.map({"Yes": "No", "No": "Yes"})


def shift(current, column, sds):
    current = current.copy()
    current[column] = current[column] + sds * arrests_split().train[column].std()
    return current


def flip_share(current, column, share, seed=0):
    current = current.copy()
    rows = np.random.default_rng(seed).random(len(current)) < share
    current.loc[rows, column] = _flip(current.loc[rows, column])
    return current


def test_current_data_like_the_training_data_passes():
    result = drift(arrests_inputs())
    assert result.passed, result.summary
    assert result.value == 0.0
    assert result.details["weighted_drift"] < 0.05 and result.details["prediction_drift"]["value"] < 0.05
    weights = {column: entry["weight"] for column, entry in result.details["columns"].items()}
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(weights, key=weights.get) == "checks"  # what the stand-in model relies on most
    columns = result.details["columns"]
    assert set(columns) == {"year", "age", "checks", "colour", "sex", "employed", "citizen"}
    # Distances at every sample size: Wasserstein for numbers, Jensen-Shannon for categories.
    assert columns["age"]["method"] == "wasserstein" and columns["colour"]["method"] == "jensenshannon"
    assert all(not column["drifted"] for column in columns.values())
    json.dumps(result.details, allow_nan=False)


def test_shifted_current_data_fails_and_names_the_drifted_columns(shifted):
    result = drift(arrests_inputs(current=shifted))
    assert not result.passed
    assert set(result.details["drifted_columns"]) >= {"year", "age", "checks", "employed"}
    assert result.value == pytest.approx(len(result.details["drifted_columns"]) / 7, abs=1e-6)
    assert "age" in result.summary and "> 0.300" in result.summary
    assert "max_drifted_share" in result.details["failed_checks"]


def test_a_strong_shift_in_the_two_most_important_features_fails():
    """checks up 1.2 standard deviations, employed flipped in 40% of rows: 2 of 7 columns, a share
    under 0.30, that the old share-of-columns rule passed."""
    current = flip_share(shift(arrests_split().test, "checks", 1.2), "employed", 0.4)
    result = drift(arrests_inputs(current=current))
    assert not result.passed
    details = result.details
    assert details["drifted_share"] == pytest.approx(2 / 7, abs=1e-5) and details["drifted_share"] < 0.3
    assert {"max_weighted_drift", "max_prediction_drift"} <= set(details["failed_checks"])
    assert details["weighted_drift"] > 0.25
    assert "weighted drift" in result.summary and details["reason"].startswith("drift failed (")


def test_an_age_shift_and_a_flipped_binary_feature_fail_on_prediction_drift():
    """The issue's case: age up 1.2 standard deviations and citizen flipped in 40% of rows. The
    model uses age little, but its own predictions move: prediction drift catches it."""
    current = flip_share(shift(arrests_split().test, "age", 1.2), "citizen", 0.4)
    result = drift(arrests_inputs(current=current))
    assert not result.passed
    assert "max_prediction_drift" in result.details["failed_checks"]
    assert result.details["prediction_drift"]["value"] > 0.15


@pytest.mark.parametrize("column, sds", [("age", 0.5), ("year", 0.5), ("checks", 0.2)])
def test_a_fraction_of_a_standard_deviation_in_one_feature_passes(column, sds):
    result = drift(arrests_inputs(current=shift(arrests_split().test, column, sds)))
    assert result.passed, result.summary
    assert result.details["weighted_drift"] <= 0.25


def test_a_small_sample_is_still_judged_by_distances_not_p_values():
    """Below 1,000 rows Evidently would switch to p-value tests; the gate keeps distances."""
    small = arrests_split().test.sample(n=300, random_state=0)
    result = drift(arrests_inputs(current=small))
    assert result.details["columns"]["age"]["method"] == "wasserstein"
    assert result.passed, result.summary


def test_current_data_without_a_feature_column_fails():
    result = drift(arrests_inputs(current=arrests_split().test.drop(columns=["age"])))
    assert not result.passed and result.value is None
    assert "lacks feature column(s): age" in result.summary


def test_the_report_is_computed_once_per_pair_of_tables(shifted):
    drift_module._memo.clear()
    first = drift(arrests_inputs(candidate="parent"))
    second = drift(arrests_inputs(candidate="int8", current=arrests_split().test.copy()))  # equal content
    assert len(drift_module._memo) == 1
    assert first.details == second.details
    drift(arrests_inputs(current=shifted))
    assert len(drift_module._memo) == 2
