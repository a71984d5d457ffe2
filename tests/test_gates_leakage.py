"""Leakage gate: train/test copies beyond the data's own duplication, and features that give the label away."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
from test_gates_support import ARRESTS_SCHEMA, arrests_inputs, arrests_split

from gatewise.gates.leakage import leakage


def with_column(name: str, make, kind: str):
    """Inputs whose train and test carry one more feature column, declared numeric or categorical."""
    split = arrests_split()
    train, test = split.train.assign(**{name: make}), split.test.assign(**{name: make})
    schema = replace(ARRESTS_SCHEMA, **{kind: getattr(ARRESTS_SCHEMA, kind) + (name,)})
    return arrests_inputs(schema=schema, train=train, test=test)


def test_a_clean_split_passes_although_half_the_test_rows_repeat_a_training_row():
    result = leakage(arrests_inputs())
    assert result.passed, result.summary
    duplicates = result.details["duplicates"]
    # The arrests rows repeat each other: about half the test rows have a copy in train, as expected.
    assert 0.4 < duplicates["share_with_copy_in_train"] < 0.7
    assert abs(duplicates["share_with_copy_in_train"] - duplicates["expected_share_from_train_duplication"]) < 0.05
    assert duplicates["excess_share"] < 0.1
    assert result.details["worst_feature"] == "checks" and result.value < 0.75
    json.dumps(result.details, allow_nan=False)


def test_a_categorical_copy_of_the_label_fails():
    result = leakage(with_column("released_copy", lambda frame: frame["released"], "categorical"))
    assert not result.passed
    assert result.value == 1.0
    assert result.details["worst_feature"] == "released_copy"
    assert result.details["leaking_features"] == ["released_copy"]
    assert "(released_copy)" in result.summary


def test_a_numeric_inverted_copy_of_the_label_fails():
    result = leakage(with_column("not_released", lambda frame: (frame["released"] == "No").astype(int), "numeric"))
    assert not result.passed
    assert result.details["single_feature_auc"]["not_released"] == 1.0


def test_a_row_id_is_not_mistaken_for_a_leak():
    split = arrests_split()
    train = split.train.assign(arrest_id=[f"train-{i}" for i in range(len(split.train))])
    test = split.test.assign(arrest_id=[f"test-{i}" for i in range(len(split.test))])
    schema = replace(ARRESTS_SCHEMA, categorical=ARRESTS_SCHEMA.categorical + ("arrest_id",))
    result = leakage(arrests_inputs(schema=schema, train=train, test=test))
    assert result.passed, result.summary
    assert result.details["single_feature_auc"]["arrest_id"] == 0.5  # every test id is unseen: no signal


def test_a_test_set_copied_from_train_fails():
    split = arrests_split()
    copied = split.train.sample(n=len(split.test), random_state=0).reset_index(drop=True)
    result = leakage(arrests_inputs(test=copied))
    assert not result.passed
    assert result.details["duplicates"]["share_with_copy_in_train"] == 1.0
    assert result.details["duplicates"]["excess_share"] == 1.0
    assert result.details["failed_checks"] == ["max_excess_duplicate_share"]


def test_a_partly_copied_test_set_fails():
    split = arrests_split()
    half = len(split.test) // 2
    mixed = pd.concat([split.train.sample(n=half, random_state=1), split.test.iloc[half:]], ignore_index=True)
    result = leakage(arrests_inputs(test=mixed))
    assert not result.passed
    assert 0.35 < result.details["duplicates"]["excess_share"] < 0.65  # about the half that was copied
