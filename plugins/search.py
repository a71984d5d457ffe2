"""Built-in trainer ``mlp_search``: the ``mlp`` recipe with its hyper-parameters searched by Optuna.

TPE sampler, median pruner (on each trial's validation loss, epoch by epoch), bounded by a number
of trials *and* a wall-time budget, whichever ends first. Every trial is judged on the validation
rows carved from the training split; the test split is never seen. The search space, every trial
and the winner are recorded in the trainer's record, which gatewise signs inside the parent's
ONNX file (``gatewise.training``) and repeats in the gate evidence. Only the winner goes on to
compression. Needs ``pip install 'gatewise[search]'`` (optuna).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from gatewise.errors import UsageError
from gatewise.hookspecs import TrainedModel, Trainer, hookimpl
from gatewise.plugins.mlp_trainer import MLPParams, MLPTrainer
from gatewise.plugins.params import ComponentParams, parse_params

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


class SearchParams(ComponentParams):
    """Parameters of ``mlp_search`` (``[train] params`` with ``trainer = "mlp_search"``)."""

    trials: int = Field(12, ge=1, le=10_000, description="Most trials.")
    timeout_s: float = Field(60.0, gt=0, le=86_400, description="Wall-time budget of the search in seconds; no trial starts after it.")
    seed: int = Field(0, ge=0, description="Seed of the TPE sampler and of every trial's fit.")
    epochs: int = Field(30, ge=1, le=10_000, description="Most epochs per trial (early stopping and the pruner end most sooner).")
    startup_trials: int = Field(4, ge=0, le=1000, description="Trials sampled at random before TPE, and before the pruner may prune.")


class MLPSearch:
    name = "mlp_search"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(SearchParams, params, f"trainer '{self.name}'")
        _optuna(self.name)

    def train(self, train: pd.DataFrame, label: np.ndarray, spec: InputSpec, params: dict[str, Any]) -> TrainedModel:
        settings = parse_params(SearchParams, params, f"trainer '{self.name}'")
        optuna = _optuna(self.name)
        import numpy as np

        from gatewise.plugins.mlp_module import Recipe, fit_mlp

        label = np.asarray(label)
        MLPTrainer().check_data(train, label, self.name)
        features = spec.encode(train)
        cardinalities = tuple(len(v) for _, v in spec.categorical)
        fitted: dict[int, tuple[Any, dict[str, Any]]] = {}

        def objective(trial: Any) -> float:
            chosen = {
                "lr": trial.suggest_float("lr", SPACE["lr"]["low"], SPACE["lr"]["high"], log=True),
                "weight_decay": trial.suggest_float("weight_decay", SPACE["weight_decay"]["low"], SPACE["weight_decay"]["high"], log=True),
                "hidden": tuple(SPACE["hidden"]["choices"][trial.suggest_categorical("hidden", list(range(len(SPACE["hidden"]["choices"]))))]),
                "batch_size": trial.suggest_categorical("batch_size", SPACE["batch_size"]["choices"]),
            }
            recipe = Recipe(**{**MLPParams().model_dump(), **chosen, "epochs": settings.epochs, "seed": settings.seed})

            def report(epoch: int, loss: float) -> None:
                trial.report(loss, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            module, record = fit_mlp(features, label, len(spec.numeric), cardinalities, recipe, on_epoch=report)
            fitted[trial.number] = (module, record)
            return float(record["best_validation_loss"])

        sampler = optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=settings.startup_trials)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=2)
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        started = time.perf_counter()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(objective, n_trials=settings.trials, timeout=settings.timeout_s, catch=())
        elapsed = time.perf_counter() - started
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise UsageError(f"trainer '{self.name}': no trial completed within {settings.timeout_s} s; raise timeout_s")
        best = study.best_trial
        module, record = fitted[best.number]
        search = {
            "sampler": "TPE", "pruner": "median", "objective": "best validation loss (class-weighted BCE)",
            "space": SPACE, "budget": {"trials": settings.trials, "timeout_s": settings.timeout_s},
            "stopped_by": "trials" if len(study.trials) >= settings.trials else "time",
            "seconds": round(elapsed, 3),
            "trials": [
                {"number": t.number, "state": t.state.name.lower(), "params": _readable(t.params),
                 "value": None if t.value is None else round(float(t.value), 6),
                 "epochs": len(t.intermediate_values)}
                for t in study.trials
            ],
            "winner": {"number": best.number, "params": _readable(best.params), "value": round(float(best.value), 6)},
        }
        logger.info("mlp_search: %d trials in %.1f s, winner %d", len(study.trials), elapsed, best.number)
        return TrainedModel(module=module, spec=spec, record={"trainer": self.name, "search": search, **record})


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
