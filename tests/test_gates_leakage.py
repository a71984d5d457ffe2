"""Leakage gate: train/test copies beyond the data's own duplication, and features that give the label away."""

from __future__ import annotations

import json
from dataclasses import replace

from functools import cache

import numpy as np
import pandas as pd
import pytest
from test_gates_support import ARRESTS_SCHEMA, Fitted, arrests_inputs, arrests_model, arrests_split, fit_logreg

from gatewise.data import split_dataset
from gatewise.gates.leakage import leakage
from gatewise.types import Dataset, Schema


@cache
def arrests_frame() -> pd.DataFrame:
    from sklego.datasets import load_arrests

    return load_arrests(as_frame=True)


def resplit(frame: pd.DataFrame, schema: Schema = ARRESTS_SCHEMA, kind: str = "random", model: bool = False):
    """Inputs for a crafted table, split as the flow splits it; with ``model``, a stand-in fitted on it."""
    split = split_dataset(Dataset("crafted", frame, schema, "unused"), seed=42, test_fraction=0.3, kind=kind)
    changes = {"schema": schema, "train": split.train, "test": split.test, "current": split.test}
    # The crafted table's own model, or the stand-in (which reads the arrests features only).
    changes["predict_proba"] = fit_logreg(split.train, schema).predict_proba if model else arrests_model().predict_proba
    return arrests_inputs(**changes)


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
    # 61% of the rows repeat another (features and label), as the data's joint distribution predicts.
    natural = result.details["pre_split_duplication"]
    assert natural["share_with_copy"] > 0.55 and abs(natural["excess_share"]) < 0.05
    assert result.details["membership_inference"]["advantage"] < 0.05
    assert result.details["failed_checks"] == [] and result.details["reason"] is None
    json.dumps(result.details, allow_nan=False)


def test_a_categorical_copy_of_the_label_fails():
    result = leakage(with_column("released_copy", lambda frame: frame["released"], "categorical"))
    assert not result.passed
    assert result.value == 1.0
    assert result.details["worst_feature"] == "released_copy"
    assert result.details["leaking_features"] == ["released_copy"]
    assert "label proxy: released_copy" in result.summary


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
    # Both copy checks see it: across the split, and in the table the split came from.
    assert result.details["failed_checks"] == ["max_excess_duplicate_share", "max_duplication_excess"]


def test_a_partly_copied_test_set_fails():
    split = arrests_split()
    half = len(split.test) // 2
    mixed = pd.concat([split.train.sample(n=half, random_state=1), split.test.iloc[half:]], ignore_index=True)
    result = leakage(arrests_inputs(test=mixed))
    assert not result.passed
    assert 0.35 < result.details["duplicates"]["excess_share"] < 0.65  # about the half that was copied


def test_copies_made_before_the_split_fail_while_natural_duplicates_pass():
    """A third of the rows copied, then split at random: the train/test check cannot see it
    (both halves are equally duplicated); the joint-distribution check does."""
    frame = arrests_frame()
    copied = pd.concat([frame, frame.sample(frac=1 / 3, random_state=1)], ignore_index=True)
    result = leakage(resplit(copied))
    assert not result.passed
    assert result.details["failed_checks"] == ["max_duplication_excess"]
    duplication = result.details["pre_split_duplication"]
    assert duplication["share_with_copy"] > duplication["expected_share_with_copy"] + 0.1
    assert duplication["excess_share"] > 0.3
    assert result.details["duplicates"]["excess_share"] <= 0.1  # what the old check alone saw
    assert result.details["reason"].startswith("leakage failed (max_duplication_excess)")


def _with_signal(frame: pd.DataFrame, signal: np.ndarray, label: np.ndarray | None = None) -> pd.DataFrame:
    frame = frame.assign(signal=signal)
    if label is not None:
        frame["released"] = np.where(label, "Yes", "No")
    return frame


SIGNAL_SCHEMA = Schema(
    label="released", positive="Yes", numeric=("year", "age", "checks", "signal"),
    categorical=ARRESTS_SCHEMA.categorical, sensitive=ARRESTS_SCHEMA.sensitive,
)


def test_a_noisy_copy_of_the_label_fails():
    frame = arrests_frame()
    released = (frame["released"] == "Yes").to_numpy()
    noisy = released + np.random.default_rng(0).normal(0, 0.37, len(frame))
    result = leakage(resplit(_with_signal(frame, noisy), SIGNAL_SCHEMA))
    assert not result.passed
    assert 0.96 < result.details["single_feature_auc"]["signal"] < 0.985
    proxy = result.details["label_proxies"]["signal"]
    assert proxy["proxy"] is True and proxy["max_abs_fisher_z"] < 4
    assert result.details["failed_checks"] == ["label_proxy"]
    assert "label proxy: signal" in result.summary


def test_a_legitimately_strong_feature_passes():
    """The label is caused by a strong measurement and by the arrests features together: alone the
    measurement scores AUC about 0.95, and within each class it moves with the other features."""
    frame = arrests_frame()
    rng = np.random.default_rng(1)
    strength = rng.normal(0, 1, len(frame))
    logit = arrests_model().model.decision_function(frame[list(ARRESTS_SCHEMA.features)])
    label = 4.5 * strength + logit + rng.logistic(0, 1, len(frame)) > -4.0
    result = leakage(resplit(_with_signal(frame, strength, label), SIGNAL_SCHEMA, model=True))
    assert result.passed, result.summary
    assert 0.94 < result.details["single_feature_auc"]["signal"] < 0.97
    proxy = result.details["label_proxies"]["signal"]
    assert proxy["proxy"] is False and proxy["max_abs_fisher_z"] >= 4
    assert "strong but not a proxy: signal" in result.summary


def _one_hot_tree(train: pd.DataFrame, **params) -> Fitted:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    from gatewise.data import label_vector

    columns = list(ARRESTS_SCHEMA.features)
    encode = ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), list(ARRESTS_SCHEMA.categorical))], remainder="passthrough")
    model = make_pipeline(encode, DecisionTreeClassifier(random_state=0, **params))
    model.fit(train[columns], label_vector(train, ARRESTS_SCHEMA))
    return Fitted(model, tuple(columns))


def test_an_overfit_model_gives_its_training_rows_away_and_fails():
    overfit = _one_hot_tree(arrests_split().train)  # grown until every leaf is pure
    result = leakage(arrests_inputs(predict_proba=overfit.predict_proba))
    assert not result.passed
    membership = result.details["membership_inference"]
    assert membership["advantage"] > 0.15
    assert membership["member_mean_loss"] < membership["held_out_mean_loss"]
    assert result.details["failed_checks"] == ["max_membership_advantage"]


def test_a_regularized_model_keeps_its_membership_advantage_low():
    pruned = _one_hot_tree(arrests_split().train, min_samples_leaf=20)
    result = leakage(arrests_inputs(predict_proba=pruned.predict_proba))
    assert result.passed, result.summary
    assert result.details["membership_inference"]["advantage"] < 0.1


def test_a_compressed_candidate_that_reveals_more_than_its_parent_fails():
    parent = arrests_model()
    overfit = _one_hot_tree(arrests_split().train, min_samples_leaf=3)
    result = leakage(arrests_inputs(candidate="distilled", predict_proba=overfit.predict_proba,
                                    parent_scores=parent.predict_proba(arrests_split().test),
                                    parent_predict_proba=parent.predict_proba))
    membership = result.details["membership_inference"]
    assert membership["increase_vs_parent"] > 0.03
    assert "max_membership_advantage_increase_vs_parent" in result.details["failed_checks"]
    same = leakage(arrests_inputs(candidate="int8", parent_scores=arrests_inputs().scores, parent_predict_proba=parent.predict_proba))
    assert same.passed and same.details["membership_inference"]["increase_vs_parent"] == 0.0


ID_SCHEMA = Schema(
    label="released", positive="Yes", numeric=ARRESTS_SCHEMA.numeric, categorical=ARRESTS_SCHEMA.categorical,
    sensitive=ARRESTS_SCHEMA.sensitive, id_column="arrest_id",
)


def test_an_id_that_orders_the_label_fails_and_a_shuffled_id_passes():
    frame = arrests_frame()
    # Ids handed out after sorting by outcome: every "No" has a smaller id than every "Yes".
    ordered = frame.sort_values("released", kind="stable").reset_index(drop=True)
    ordered["arrest_id"] = [f"A{i:06d}" for i in range(len(ordered))]
    result = leakage(resplit(ordered, ID_SCHEMA))
    assert not result.passed
    assert result.details["declared_columns"]["id"]["auc"] > 0.9
    assert result.details["failed_checks"] == ["max_id_auc"]
    shuffled = frame.assign(arrest_id=np.random.default_rng(0).permutation(len(frame)))
    clean = leakage(resplit(shuffled, ID_SCHEMA))
    assert clean.passed, clean.summary
    assert clean.details["declared_columns"]["id"]["auc"] < 0.6


TIME_SCHEMA = Schema(
    label="released", positive="Yes", numeric=("age", "checks"), categorical=ARRESTS_SCHEMA.categorical,
    sensitive=ARRESTS_SCHEMA.sensitive, time_column="year",
)


def test_a_random_split_of_dated_rows_fails_and_an_out_of_time_split_passes():
    frame = arrests_frame()
    result = leakage(resplit(frame, TIME_SCHEMA))
    assert not result.passed
    time = result.details["declared_columns"]["time"]
    assert time["test_before_train_share"] > 0.5
    assert result.details["failed_checks"] == ["max_test_before_train_share"]
    assert "use --split time" in result.summary
    out_of_time = leakage(resplit(frame, TIME_SCHEMA, kind="time"))
    assert out_of_time.passed, out_of_time.summary
    assert out_of_time.details["declared_columns"]["time"]["test_before_train_share"] == 0.0


def test_the_duplication_models_mutual_information_is_scikit_learns_from_hashed_pairs():
    """Chow-Liu's edges weigh column pairs by mutual information, found by hashing the pairs that
    occur (linear in the rows, no dense table): the same value scikit-learn computes."""
    from sklearn.metrics import mutual_info_score

    from gatewise.gates.leakage import _coded, _mutual_information

    split = arrests_split()
    rows = split.train.assign(age=split.train["age"] + np.arange(len(split.train)) * 1e-3)  # distinct floats
    columns = [*ARRESTS_SCHEMA.features, ARRESTS_SCHEMA.label]
    codes = _coded(rows, columns, ARRESTS_SCHEMA)
    for i, j in ((0, 1), (columns.index("age"), columns.index("released")), (2, 5)):
        assert _mutual_information(codes[:, i], codes[:, j]) == pytest.approx(mutual_info_score(codes[:, i], codes[:, j]), abs=1e-12)
