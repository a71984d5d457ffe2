"""The data gate: a Great Expectations suite from the schema, run before anything is trained."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_gates_support import ARRESTS_SCHEMA, arrests_split

from gatewise.gates import validate_dataset


@pytest.fixture(scope="module")
def arrests():
    return arrests_split().train


def test_the_bundled_data_passes(arrests):
    result = validate_dataset(arrests, ARRESTS_SCHEMA)
    assert result.passed, result.summary
    assert result.gate == "data_validation" and result.value == 0.0
    assert result.details["failed"] == []
    assert result.details["expectations"] >= 8 + 3 + 3
    json.dumps(result.details, allow_nan=False)


def test_a_label_read_as_numbers_matches_a_string_positive(arrests):
    frame = arrests.assign(released=(arrests["released"] == "Yes").astype(int))
    assert validate_dataset(frame, replace(ARRESTS_SCHEMA, positive="1")).passed


@pytest.mark.parametrize(
    ("break_it", "failed_expectation", "column"),
    [
        (lambda f: f.drop(columns=["age"]), "expect_column_to_exist", "age"),
        (lambda f: f.assign(checks=f["checks"].astype(str) + " checks"), "expect_column_values_to_be_in_type_list", "checks"),
        (lambda f: f.assign(released=f["released"].where(f.index % 10 != 0)), "expect_column_values_to_not_be_null", "released"),
        (lambda f: f.assign(released="Yes"), "expect_column_unique_value_count_to_be_between", "released"),
        (
            lambda f: f.assign(released=f["released"].map({"Yes": "Y", "No": "N"})),
            "expect_column_distinct_values_to_contain_set",
            "released",
        ),
    ],
    ids=["missing-column", "numeric-as-text", "null-labels", "one-label-value", "no-positive-value"],
)
def test_a_broken_table_fails_and_names_the_expectation(arrests, break_it, failed_expectation, column):
    result = validate_dataset(break_it(arrests.copy()), ARRESTS_SCHEMA)
    assert not result.passed
    failed = [(f["expectation"], f.get("column")) for f in result.details["failed"]]
    assert (failed_expectation, column) in failed
    assert result.value == len(failed)
    assert failed_expectation.removeprefix("expect_") in result.summary
    json.dumps(result.details, allow_nan=False)
