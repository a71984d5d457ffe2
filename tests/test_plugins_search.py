"""The built-in ``mlp_search`` trainer: Optuna under a trial and a wall-time budget, every trial recorded."""

from __future__ import annotations

import json
import time

import pytest

from gatewise.encoding import InputSpec
from gatewise.errors import UsageError
from test_plugins_support import CATEGORICAL, NUMERIC, crafted_frame

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install 'gatewise[search]')")

from gatewise.plugins.search import SPACE, MLPSearch  # noqa: E402


@pytest.fixture(scope="module")
def crafted():
    frame, label = crafted_frame(600, seed=4)
    return frame, label, InputSpec.fit(frame, NUMERIC, CATEGORICAL)


def test_the_trial_budget_ends_the_search_and_every_trial_is_recorded(crafted):
    frame, label, spec = crafted
    trained = MLPSearch().train(frame, label, spec, {"trials": 4, "timeout_s": 600, "epochs": 6, "startup_trials": 2})
    search = trained.record["search"]
    assert search["stopped_by"] == "trials" and len(search["trials"]) == 4
    assert search["sampler"] == "TPE" and search["pruner"] == "median" and search["space"] == SPACE
    for trial in search["trials"]:
        assert trial["state"] in ("complete", "pruned") and set(trial["params"]) == set(SPACE)
        assert trial["params"]["hidden"] in SPACE["hidden"]["choices"]
    complete = [t for t in search["trials"] if t["state"] == "complete"]
    winner = search["winner"]
    assert winner["value"] == min(t["value"] for t in complete)
    # The winner's model is the one returned: its own recipe record sits beside the search.
    assert list(trained.record["recipe"]["hidden"]) == winner["params"]["hidden"]
    assert trained.record["recipe"]["lr"] == pytest.approx(winner["params"]["lr"])
    json.dumps(trained.record, allow_nan=False)


def test_the_time_budget_ends_the_search(crafted):
    frame, label, spec = crafted
    started = time.perf_counter()
    trained = MLPSearch().train(frame, label, spec, {"trials": 1000, "timeout_s": 2.0, "epochs": 3})
    elapsed = time.perf_counter() - started
    search = trained.record["search"]
    assert search["stopped_by"] == "time" and 1 <= len(search["trials"]) < 1000
    # No trial starts after the budget: the search ends within one trial of it.
    longest = max(t["epochs"] for t in search["trials"])
    assert longest <= 3 and elapsed < 2.0 + 30


def test_bad_params_are_usage_errors():
    with pytest.raises(UsageError, match="unknown parameter 'budget'"):
        MLPSearch().check_params({"budget": 3})
    with pytest.raises(UsageError, match="bad value for parameter 'timeout_s'"):
        MLPSearch().check_params({"timeout_s": 0})
