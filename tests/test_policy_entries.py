"""Which way each gate threshold is looser, and the comparison a run is held to (no registry)."""

from __future__ import annotations

import pytest
from gatewise.policy import GatePolicy
from gatewise.registry.policy_entries import LARGER, NEVER, SMALLER, looser_when, loosenings


def test_every_policy_field_has_a_direction():
    # A new field of gatewise.policy without a known direction fails here: name it max_/min_ or
    # add it to policy_entries._EXCEPTIONS.
    for gate, section in GatePolicy.model_fields.items():
        for name in section.annotation.model_fields:
            looser_when(gate, name)


def test_directions_follow_what_the_field_does():
    assert looser_when("fairness", "max_demographic_parity_difference") == LARGER
    assert looser_when("accuracy_regression", "min_metric") == SMALLER
    assert looser_when("fairness", "min_group_size") == LARGER  # bigger groups only: fewer judged
    assert looser_when("robustness", "noise_scale") == SMALLER
    assert looser_when("robustness", "seed") == NEVER
    with pytest.raises(KeyError):
        looser_when("fairness", "tolerance")


def test_looser_and_stricter_configurations():
    signed = GatePolicy().model_dump(mode="json")
    looser = {"fairness": {"max_demographic_parity_difference": 0.45}, "accuracy_regression": {"min_metric": 0.5}}
    found = {(item.gate, item.name): item for item in loosenings(looser, signed)}
    assert set(found) == {("fairness", "max_demographic_parity_difference"), ("accuracy_regression", "min_metric")}
    assert found["fairness", "max_demographic_parity_difference"].by == pytest.approx(0.25)
    assert "looser by 0.25" in found["fairness", "max_demographic_parity_difference"].describe()
    stricter = {"fairness": {"max_demographic_parity_difference": 0.1}, "robustness": {"seed": 7, "noise_scale": 0.2}}
    assert loosenings(stricter, signed) == []
    assert [i.name for i in loosenings({"accuracy_regression": {"metric": "accuracy"}}, signed)] == ["metric"]

