"""Drift gate: Evidently compares the training data with the current data, column by column."""

from __future__ import annotations

import json

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


def test_current_data_like_the_training_data_passes():
    result = drift(arrests_inputs())
    assert result.passed, result.summary
    assert result.value == 0.0
    columns = result.details["columns"]
    assert set(columns) == {"year", "age", "checks", "colour", "sex", "employed", "citizen"}
    # Above 1,000 rows Evidently measures distances: Wasserstein for numbers, Jensen-Shannon for categories.
    assert "Wasserstein" in columns["age"]["method"] and "Jensen-Shannon" in columns["colour"]["method"]
    assert all(not column["drifted"] for column in columns.values())
    json.dumps(result.details, allow_nan=False)


def test_shifted_current_data_fails_and_names_the_drifted_columns(shifted):
    result = drift(arrests_inputs(current=shifted))
    assert not result.passed
    assert set(result.details["drifted_columns"]) >= {"year", "age", "checks", "employed"}
    assert result.value == pytest.approx(len(result.details["drifted_columns"]) / 7, abs=1e-6)
    assert "age" in result.summary and "> 0.300" in result.summary


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
