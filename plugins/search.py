"""Built-in trainer ``mlp_search``: the ``mlp`` recipe with its hyper-parameters searched by Optuna.

TPE sampler, median pruner (on each trial's validation loss, epoch by epoch), bounded by a number
of trials *and* a wall-time budget, whichever ends first, with up to ``parallel`` trials running
at once: inside a Prefect flow each trial is a task on the flow's own task runner, elsewhere a
thread. Every trial is judged on the validation rows carved from the training split; the test
split is never seen. The budget comes from ``[search]`` (``gatewise.config.SearchSettings``,
folded into this trainer's params). The search space, the budget, where the trials ran, every
trial and the winner are recorded in the trainer's record, which gatewise signs inside the
parent's ONNX file (``gatewise.training``) and repeats in the gate evidence. Only the winner goes
on to compression. Needs ``pip install 'gatewise[search]'`` (optuna).
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatewise.config import SearchSettings
from gatewise.errors import UsageError
from gatewise.hookspecs import TrainedModel, Trainer, hookimpl
from gatewise.plugins.mlp_trainer import MLPParams, MLPTrainer
from gatewise.plugins.params import parse_params

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gatewise.encoding import InputSpec

logger = logging.getLogger(__name__)

# The space searched; documented in docs/optimization.md. Widths are whole architectures so that
# TPE compares like with like.
SPACE = {
    "lr": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "hidden": {"type": "categorical", "choices": [[16], [32, 16], [64, 32], [128, 64]]},
    "batch_size": {"type": "categorical", "choices": [64, 128, 256]},
}

# The trainer's params are the [search] section (gatewise.toml), folded in by Settings.
SearchParams = SearchSettings


@dataclass
class TrialOutcome:
    """What one trial's task hands back: the fitted module (None when pruned) and its timings."""

    state: str  # "complete" or "pruned"
    validation_loss: list[float]
    started: float  # time.time(), so trials on other threads or workers line up
    ended: float
    task_run: dict[str, str] | None = None  # the Prefect task run it ran as (id, flow run id), seen from inside
    module: Any = None
    record: dict[str, Any] = field(default_factory=dict)


def run_trial(features: np.ndarray, label: np.ndarray, n_numeric: int, cardinalities: tuple[int, ...],
              recipe: Any, trial: Any = None) -> TrialOutcome:
    """Fit one trial's recipe. With ``trial`` (an Optuna trial in this process), report each epoch's
    validation loss to it and stop when its pruner says so; without, train to early stopping."""
    import optuna

    from gatewise.plugins.mlp_module import fit_mlp

    curve: list[float] = []

    def report(epoch: int, loss: float) -> None:
        curve.append(loss)
        if trial is not None:
            trial.report(loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

    started, task_run = time.time(), _task_run()
    try:
        module, record = fit_mlp(features, label, n_numeric, cardinalities, recipe, on_epoch=report)
    except optuna.TrialPruned:
        return TrialOutcome("pruned", curve, started, time.time(), task_run=task_run)
    return TrialOutcome("complete", curve, started, time.time(), task_run, module, record)


def _task_run() -> dict[str, str] | None:
    if "prefect" not in sys.modules:
        return None
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    if context is None:
        return None
    return {"id": str(context.task_run.id), "flow_run_id": str(context.task_run.flow_run_id)}


class _TrialPool:
    """Where trials run: the Prefect flow's task runner when called inside a flow run, else threads.

    ``live_pruning``: whether a trial's task can reach the Optuna study in this process (threads)
    to report epoch by epoch; on another runner (Dask, Ray: other processes or machines) the
    trial trains to early stopping and its curve is reported when it returns.
    """

    def __init__(self, parallel: int) -> None:
        self._executor: ThreadPoolExecutor | None = None
        runner = _flow_task_runner()
        if runner is None:
            self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="gatewise-trial")
            self.runner, self.live_pruning = "threads (no flow run)", True
        else:
            from prefect import task
            from prefect.cache_policies import NO_CACHE
            from prefect.task_runners import ThreadPoolTaskRunner

            self._task = task(run_trial, name="search trial", cache_policy=NO_CACHE)
            self.runner = f"prefect {type(runner).__name__}"
            self.live_pruning = isinstance(runner, ThreadPoolTaskRunner)

    def submit(self, *args: Any) -> Any:
        if self._executor is not None:
            return self._executor.submit(run_trial, *args)
        return self._task.submit(*args)

    def first_done(self, futures: list[Any]) -> Any:
        if self._executor is not None:
            done, _ = wait_futures(futures, return_when=FIRST_COMPLETED)
            return next(iter(done))
        from prefect.futures import as_completed

        return next(as_completed(futures))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _flow_task_runner() -> Any:
    """The task runner of the Prefect flow run this code runs in, or None outside one."""
    if "prefect" not in sys.modules:  # nothing loaded Prefect: no flow run (and none is imported here)
        return None
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return None if context is None else context.task_runner


class MLPSearch:
    name = "mlp_search"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(SearchParams, params, f"trainer '{self.name}'")  # type: ignore[type-var]
        _optuna(self.name)

    def train(self, train: pd.DataFrame, label: np.ndarray, spec: InputSpec, params: dict[str, Any]) -> TrainedModel:
        settings = parse_params(SearchParams, params, f"trainer '{self.name}'")  # type: ignore[type-var]
        optuna = _optuna(self.name)
        import numpy as np

        label = np.asarray(label)
        MLPTrainer().check_data(train, label, self.name)
        features = spec.encode(train)
        n_numeric, cardinalities = len(spec.numeric), tuple(len(v) for _, v in spec.categorical)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # constant_liar: a trial still running counts as a poor result while TPE samples the next,
        # so parallel trials spread out instead of piling onto one region.
        sampler = optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=settings.startup_trials, constant_liar=True)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=2)
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        pool = _TrialPool(settings.parallel)
        started = time.time()
        try:
            outcomes = _run_trials(study, pool, settings, (features, label, n_numeric, cardinalities), started + settings.timeout_s)
        finally:
            pool.close()
        elapsed = time.time() - started
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise UsageError(f"trainer '{self.name}': no trial completed within {settings.timeout_s} s; raise [search] timeout_s")
        best = study.best_trial
        winner = outcomes[best.number]
        busy = sum(o.ended - o.started for o in outcomes.values())
        search = {
            "sampler": "TPE (constant liar)", "pruner": "median", "objective": "best validation loss (class-weighted BCE)",
            "space": SPACE, "budget": {"trials": settings.trials, "timeout_s": settings.timeout_s},
            "parallel": settings.parallel, "runner": pool.runner,
            "pruning": "live, epoch by epoch" if pool.live_pruning else "none: on this task runner a trial cannot reach the study, so each runs to early stopping",
            "seed": settings.seed, "startup_trials": settings.startup_trials, "epochs_per_trial": settings.epochs,
            "threads_per_trial": 1,
            # With more than one trial running, what TPE has seen when it samples depends on timing.
            "reproducible": settings.parallel == 1,
            "stopped_by": "trials" if len(study.trials) >= settings.trials else "time",
            "seconds": round(elapsed, 3),
            "trial_seconds": round(busy, 3),
            "trials": [_trial_record(t, outcomes[t.number], started) for t in study.trials],
            "winner": {"number": best.number, "params": _readable(best.params), "value": round(float(best.value), 6)},
        }
        logger.info("mlp_search: %d trials in %.1f s (%d at once on %s), winner %d",
                    len(study.trials), elapsed, settings.parallel, pool.runner, best.number)
        return TrainedModel(module=winner.module, spec=spec, record={"trainer": self.name, "search": search, **winner.record})


def _run_trials(study: Any, pool: _TrialPool, settings: SearchSettings, data: tuple[Any, ...], deadline: float) -> dict[int, TrialOutcome]:
    """Optuna's ask/tell with at most ``settings.parallel`` trials in flight; the outcome of each."""
    import optuna

    from gatewise.plugins.mlp_module import Recipe

    running: dict[Any, Any] = {}  # future -> Optuna trial
    outcomes: dict[int, TrialOutcome] = {}
    while True:
        # Fill the free slots; no trial starts after the time budget (those running finish).
        while len(running) < settings.parallel and len(study.trials) < settings.trials and time.time() < deadline:
            trial = study.ask()
            recipe = Recipe(**{**MLPParams().model_dump(), **_suggest(trial), "epochs": settings.epochs, "seed": settings.seed})
            running[pool.submit(*data, recipe, trial if pool.live_pruning else None)] = trial
        if not running:
            return outcomes
        future = pool.first_done(list(running))
        trial = running.pop(future)
        try:
            outcome = future.result()
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if not pool.live_pruning:  # the trial could not report from where it ran: its curve, now
            for epoch, loss in enumerate(outcome.validation_loss, start=1):
                trial.report(loss, epoch)
        if outcome.state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, float(outcome.record["best_validation_loss"]))
        outcomes[trial.number] = outcome


def _suggest(trial: Any) -> dict[str, Any]:
    hidden = SPACE["hidden"]["choices"]
    return {
        "lr": trial.suggest_float("lr", SPACE["lr"]["low"], SPACE["lr"]["high"], log=True),
        "weight_decay": trial.suggest_float("weight_decay", SPACE["weight_decay"]["low"], SPACE["weight_decay"]["high"], log=True),
        "hidden": tuple(hidden[trial.suggest_categorical("hidden", list(range(len(hidden))))]),
        "batch_size": trial.suggest_categorical("batch_size", SPACE["batch_size"]["choices"]),
    }


def _trial_record(trial: Any, outcome: TrialOutcome, origin: float) -> dict[str, Any]:
    return {
        "number": trial.number, "state": trial.state.name.lower(), "params": _readable(trial.params),
        "value": None if trial.value is None else round(float(trial.value), 6),
        "epochs": len(outcome.validation_loss),
        "started_s": round(outcome.started - origin, 3), "ended_s": round(outcome.ended - origin, 3),
        "seconds": round(outcome.ended - outcome.started, 3),
        "task_run": outcome.task_run,  # None: a thread of this trainer, no Prefect flow run
    }


def _readable(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if "hidden" in out:
        out["hidden"] = SPACE["hidden"]["choices"][out["hidden"]]
    return out


def _optuna(component: str) -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError(f"trainer '{component}' needs optuna: pip install 'gatewise[search]'") from None
    return optuna


@hookimpl
def gatewise_trainers() -> list[Trainer]:
    return [MLPSearch()]
