"""Robustness gate: per perturbation family, the flip rate and the metric drop, and the parent on the same rows."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pandas as pd
import pytest
from test_gates_support import ARRESTS_SCHEMA, arrests_inputs, arrests_model, arrests_split, fit_logreg

from gatewise.data import split_dataset
from gatewise.gates.robustness import FAMILIES, perturb, robustness
from gatewise.policy import RobustnessPolicy
from gatewise.types import Dataset


def fragile(frame: pd.DataFrame) -> np.ndarray:
    """Decides on the parity of year + age + checks: any one-step move of one of them flips it."""
    total = sum(pd.to_numeric(frame[column]).fillna(0).to_numpy(dtype=float) for column in ARRESTS_SCHEMA.numeric)
    return np.where(np.round(total) % 2 == 1, 0.9, 0.1)


@cache
def boundary_inputs():
    """Labels on a sharp boundary: released exactly when the stand-in model's logit is above its
    median, and a model fitted to that. Its flip rate under noise looks like a normal model's
    (about 6%), but every flip is now a mistake: the metric drop shows it."""
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True)
    logit = arrests_model().model.decision_function(frame[list(ARRESTS_SCHEMA.features)])
    sharp = frame.assign(released=np.where(logit > np.median(logit), "Yes", "No"))
    split = split_dataset(Dataset("boundary", sharp, ARRESTS_SCHEMA, "unused"), seed=42, test_fraction=0.3)
    model = fit_logreg(split.train, ARRESTS_SCHEMA)
    return arrests_inputs(train=split.train, test=split.test, current=split.test, predict_proba=model.predict_proba)


def test_the_stand_in_model_holds_its_decisions_and_its_metric_under_every_family():
    result = robustness(arrests_inputs())
    assert result.passed, result.summary
    families = result.details["families"]
    assert set(families) == set(FAMILIES) == {"numeric_noise", "category_swap", "missing"}
    for effect in families.values():
        assert 0 <= effect["flip_rate"] <= 0.15
        assert effect["flips"] == round(effect["flip_rate"] * result.details["test_rows"])
        low, high = effect["metric_drop_ci95"]
        assert low <= effect["metric_drop"] <= high and effect["metric_drop"] < 0.03
    assert result.value == max(effect["flip_rate"] for effect in families.values())
    assert result.details["failed_checks"] == []
    json.dumps(result.details, allow_nan=False)


def test_a_model_that_flips_on_tiny_noise_fails():
    result = robustness(arrests_inputs(predict_proba=fragile))
    assert not result.passed
    assert result.details["families"]["numeric_noise"]["flip_rate"] > 0.15
    assert any(c.startswith("numeric_noise: max_flip_rate") for c in result.details["failed_checks"])
    assert "flip rate" in result.summary and "> 0.150" in result.summary


def test_a_boundary_fragile_model_fails_on_its_metric_drop_not_its_flip_rate():
    result = robustness(boundary_inputs())
    assert not result.passed
    families = result.details["families"]
    assert all(effect["flip_rate"] < 0.15 for effect in families.values())  # flips alone pass
    worst = max(families.values(), key=lambda effect: effect["metric_drop"])
    assert worst["metric_drop"] > 0.03 and worst["metric_drop_ci95"][0] > 0.03
    assert any("max_metric_drop" in c for c in result.details["failed_checks"])
    assert result.details["reason"].startswith("robustness failed (max_metric_drop)")


def test_a_compressed_candidate_more_fragile_than_its_parent_on_the_same_rows_fails():
    parent = arrests_model()
    # Keeps the parent's clean decisions (same scores on clean rows) but is pushed around by noise.
    clean_test = arrests_split().test

    def brittle(frame: pd.DataFrame) -> np.ndarray:
        scores = parent.predict_proba(frame)
        moved = (frame[list(ARRESTS_SCHEMA.features)].astype(str).to_numpy() != clean_test[list(ARRESTS_SCHEMA.features)].astype(str).to_numpy()).any(axis=1)
        return np.where(moved, 1 - scores, scores)

    result = robustness(arrests_inputs(candidate="brittle", predict_proba=brittle, parent_scores=arrests_inputs().scores,
                                       parent_predict_proba=parent.predict_proba))
    assert not result.passed
    assert any("increase_vs_parent" in c for c in result.details["failed_checks"])
    for effect in result.details["families"].values():
        assert effect["flip_rate_increase_vs_parent"] > 0.03
    same = robustness(arrests_inputs(candidate="int8", parent_scores=arrests_inputs().scores, parent_predict_proba=parent.predict_proba))
    assert same.passed, same.summary
    assert all(effect["flip_rate_increase_vs_parent"] == 0.0 for effect in same.details["families"].values())
    assert "vs parent on the same rows" in same.summary


def test_the_perturbations_are_seeded_respect_column_kinds_and_leave_the_test_split_alone():
    split = arrests_split()
    before = split.test.copy()
    policy = RobustnessPolicy()
    first = perturb(split.test, split.train, ARRESTS_SCHEMA, policy)
    second = perturb(split.test, split.train, ARRESTS_SCHEMA, policy)
    for family in FAMILIES:
        pd.testing.assert_frame_equal(first[family][0], second[family][0])
    pd.testing.assert_frame_equal(split.test, before)

    noisy, evidence = first["numeric_noise"]
    assert evidence["age"]["noise_sd"] == pytest.approx(0.1 * split.train["age"].std())
    for column in ("year", "age", "checks"):  # integer columns stay integer, inside their train range
        assert evidence[column]["integer_steps"] is True
        assert (noisy[column] == noisy[column].round()).all()
        assert noisy[column].min() >= split.train[column].min() and noisy[column].max() <= split.train[column].max()
    # Years move by whole years, a few rows at a time: never multiplied into another era.
    assert (noisy["year"] - split.test["year"]).abs().max() <= 2
    assert 0 < evidence["year"]["changed_share"] < 0.3

    swapped, evidence = first["category_swap"]
    for column in ARRESTS_SCHEMA.categorical:
        changed = swapped[column] != split.test[column]
        assert set(swapped[column]) <= set(split.train[column])
        assert 0.02 < changed.mean() < 0.08  # about category_swap_rate, each to a different category
        assert evidence[column]["changed_share"] == changed.mean()

    blanked, evidence = first["missing"]
    for column in ARRESTS_SCHEMA.features:
        assert 0.02 < blanked[column].isna().mean() < 0.08
