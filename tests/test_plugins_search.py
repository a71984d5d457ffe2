"""The built-in ``mlp_search`` trainer: Optuna under a trial and a wall-time budget, trials in
parallel (threads, or the Prefect flow's task runner), every trial recorded."""

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


def most_at_once(trials: list[dict]) -> int:
    """The most trials whose [started_s, ended_s] spans overlap at one instant."""
    events = sorted([(t["started_s"], 1) for t in trials] + [(t["ended_s"], -1) for t in trials], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_the_trial_budget_ends_the_search_and_every_trial_is_recorded(crafted):
    frame, label, spec = crafted
    params = {"trials": 4, "timeout_s": 600, "epochs": 6, "startup_trials": 2, "parallel": 1}
    trained = MLPSearch().train(frame, label, spec, params)
    search = trained.record["search"]
    assert search["stopped_by"] == "trials" and len(search["trials"]) == 4
    assert search["sampler"].startswith("TPE") and search["pruner"] == "median" and search["space"] == SPACE
    assert search["budget"] == {"trials": 4, "timeout_s": 600} and search["parallel"] == 1 and search["seed"] == 0
    assert search["runner"] == "threads (no flow run)" and search["reproducible"] is True
    assert all(t["task_run"] is None for t in search["trials"])
    for trial in search["trials"]:
        assert trial["state"] in ("complete", "pruned") and set(trial["params"]) == set(SPACE)
        assert trial["params"]["hidden"] in SPACE["hidden"]["choices"]
        assert trial["seconds"] >= 0 and 1 <= trial["epochs"] <= 6
    assert most_at_once(search["trials"]) == 1
    complete = [t for t in search["trials"] if t["state"] == "complete"]
    winner = search["winner"]
    assert winner["value"] == min(t["value"] for t in complete)
    # The winner's model is the one returned: its own recipe record sits beside the search.
    assert list(trained.record["recipe"]["hidden"]) == winner["params"]["hidden"]
    assert trained.record["recipe"]["lr"] == pytest.approx(winner["params"]["lr"])
    json.dumps(trained.record, allow_nan=False)
    # One trial at a time with the same seed: the same trials and the same winner again.
    again = MLPSearch().train(frame, label, spec, params).record["search"]
    assert [(t["params"], t["value"], t["state"]) for t in again["trials"]] == [
        (t["params"], t["value"], t["state"]) for t in search["trials"]
    ]


def test_parallel_trials_overlap_and_keep_to_the_trial_budget(crafted):
    frame, label, spec = crafted
    trained = MLPSearch().train(frame, label, spec, {"trials": 5, "timeout_s": 600, "epochs": 8, "startup_trials": 2, "parallel": 2})
    search = trained.record["search"]
    assert search["parallel"] == 2 and search["reproducible"] is False
    assert search["stopped_by"] == "trials" and len(search["trials"]) == 5
    assert most_at_once(search["trials"]) == 2  # two at once, never three
    assert search["winner"]["value"] == min(t["value"] for t in search["trials"] if t["state"] == "complete")


def test_the_time_budget_ends_the_search(crafted):
    frame, label, spec = crafted
    started = time.perf_counter()
    trained = MLPSearch().train(frame, label, spec, {"trials": 1000, "timeout_s": 2.0, "epochs": 3, "parallel": 2})
    elapsed = time.perf_counter() - started
    search = trained.record["search"]
    assert search["stopped_by"] == "time" and 1 <= len(search["trials"]) < 1000
    # No trial starts after the budget: the search ends within one trial of it.
    assert all(t["started_s"] < 2.0 for t in search["trials"])
    assert max(t["epochs"] for t in search["trials"]) <= 3 and elapsed < 2.0 + 30


def test_inside_a_flow_the_trials_are_tasks_of_the_flow_run(crafted):
    """As in the retrain flow: the trainer runs inside the 'train' task; each trial is a task run
    of the same flow run, on the flow's task runner."""
    from prefect import flow, runtime, task
    from prefect.cache_policies import NO_CACHE

    frame, label, spec = crafted
    train = task(MLPSearch().train, name="train", cache_policy=NO_CACHE)

    @flow(validate_parameters=False)
    def tiny_retrain():
        trained = train(frame, label, spec, {"trials": 3, "timeout_s": 600, "epochs": 10, "startup_trials": 1, "parallel": 2})
        return trained.record["search"], str(runtime.flow_run.id)

    search, flow_run_id = tiny_retrain()
    assert search["runner"] == "prefect ThreadPoolTaskRunner" and search["pruning"].startswith("live")
    runs = [t["task_run"] for t in search["trials"]]
    assert len(runs) == 3 and len({r["id"] for r in runs}) == 3
    assert all(r["flow_run_id"] == flow_run_id for r in runs)  # seen from inside each trial's task
    assert most_at_once(search["trials"]) == 2


def test_on_a_dask_runner_the_trials_run_there_and_are_not_pruned(crafted):
    """[run] task_runner = "dask", as the retrain flow builds it: a trial there cannot report to the
    study in this process, so it trains to early stopping and its curve is told when it returns."""
    pytest.importorskip("prefect_dask", reason="prefect-dask is not installed (pip install 'gatewise[dask]')")
    from prefect import flow, runtime, task
    from prefect.cache_policies import NO_CACHE

    from gatewise.config import parse_settings
    from gatewise.flows.execution import task_runner_for

    frame, label, spec = crafted
    train = task(MLPSearch().train, name="train", cache_policy=NO_CACHE)
    runner = task_runner_for(parse_settings({"run": {"task_runner": "dask"}}))

    @flow(task_runner=runner, validate_parameters=False)
    def tiny_retrain_on_dask():
        trained = train(frame, label, spec, {"trials": 4, "timeout_s": 600, "epochs": 5, "startup_trials": 1, "parallel": 2})
        return trained.record["search"], str(runtime.flow_run.id)

    search, flow_run_id = tiny_retrain_on_dask()
    assert search["runner"] == "prefect DaskTaskRunner" and search["pruning"].startswith("none")
    assert len(search["trials"]) == 4 and all(t["state"] == "complete" for t in search["trials"])
    assert all(1 <= t["epochs"] <= 5 and t["task_run"]["flow_run_id"] == flow_run_id for t in search["trials"])
    assert search["winner"]["value"] == min(t["value"] for t in search["trials"])


def test_bad_params_are_usage_errors():
    with pytest.raises(UsageError, match="unknown parameter 'budget'"):
        MLPSearch().check_params({"budget": 3})
    with pytest.raises(UsageError, match="bad value for parameter 'timeout_s'"):
        MLPSearch().check_params({"timeout_s": 0})
    with pytest.raises(UsageError, match="bad value for parameter 'parallel'"):
        MLPSearch().check_params({"parallel": 0})
