"""Built-in trainer ``mlp``: a small class-weighted torch MLP over the encoded input matrix."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from gatewise.errors import UsageError
from gatewise.hookspecs import TrainedModel, Trainer, hookimpl
from gatewise.plugins.params import ComponentParams, parse_params

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gatewise.encoding import InputSpec

logger = logging.getLogger(__name__)


class MLPParams(ComponentParams):
    """Parameters of the ``mlp`` trainer (``[train] params`` in gatewise.toml)."""

    hidden: tuple[Annotated[int, Field(gt=0, le=4096)], ...] = Field(
        (64, 32), max_length=8, description="Width of each hidden layer (ReLU); an empty list trains a logistic regression."
    )
    epochs: int = Field(30, ge=1, le=10_000, description="Most passes over the training rows; early stopping usually ends sooner.")
    lr: float = Field(3e-3, gt=0, le=1, description="Peak AdamW learning rate, reached after the warm-up.")
    batch_size: int = Field(128, ge=1, le=1_000_000, description="Rows per optimizer step.")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="AdamW decoupled weight decay.")
    seed: int = Field(0, ge=0, description="Seed of the validation carve, weight initialization and batch order.")
    validation_fraction: float = Field(
        0.15, ge=0, lt=0.9, description="Share of the training split (per class) held out for early stopping; 0 trains every epoch."
    )
    patience: int = Field(10, ge=1, le=10_000, description="Epochs without a better validation loss before training stops.")
    min_delta: float = Field(1e-4, ge=0, description="Smallest decrease of the validation loss that counts as better.")
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="Share of the planned steps with a linear learning-rate warm-up; cosine decay to 0 follows.")
    clip_norm: float | None = Field(1.0, gt=0, description="Largest L2 norm of the gradient (clipped above it); null: no clipping.")
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="'balanced' weights positives by negatives/positives in the loss; 'none' weighs every row alike."
    )
    refit: bool = Field(
        True, description="After early stopping, retrain on every training row (validation rows too) for the best epoch count; false keeps the restored best weights."
    )


class MLPTrainer:
    """Fits ``TabularMLP`` (see ``gatewise.plugins.mlp_module``) on the training split."""

    name = "mlp"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(MLPParams, params, f"trainer '{self.name}'")

    @staticmethod
    def check_data(train: pd.DataFrame, label: np.ndarray, name: str) -> None:
        """One row per label and both classes present, or a UsageError naming the trainer."""
        if len(label) != len(train):
            raise UsageError(f"trainer '{name}': {len(label)} labels for {len(train)} rows")
        positives = int(label.sum())
        if positives == 0 or positives == len(label):
            raise UsageError(f"trainer '{name}': the training split holds one class only; both are needed")

    def train(self, train: pd.DataFrame, label: np.ndarray, spec: InputSpec, params: dict[str, Any]) -> TrainedModel:
        settings = parse_params(MLPParams, params, f"trainer '{self.name}'")
        import numpy as np

        label = np.asarray(label)
        self.check_data(train, label, self.name)

        from gatewise.plugins.mlp_module import Recipe, fit_mlp

        started = time.perf_counter()
        module, record = fit_mlp(
            spec.encode(train),
            label,
            n_numeric=len(spec.numeric),
            cardinalities=tuple(len(vocabulary) for _, vocabulary in spec.categorical),
            recipe=Recipe(**settings.model_dump()),
        )
        logger.info(
            "trained mlp on %d rows in %.2f s: best epoch %d of %d",
            len(train), time.perf_counter() - started, record["best_epoch"], record["epochs_run"],
        )
        return TrainedModel(module=module, spec=spec, record={"trainer": self.name, **record})


@hookimpl
def gatewise_trainers() -> list[Trainer]:
    return [MLPTrainer()]
