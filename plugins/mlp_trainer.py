"""Built-in trainer ``mlp``: a small class-weighted torch MLP over the encoded input matrix."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any

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
    epochs: int = Field(15, ge=1, le=10_000, description="Passes over the training split.")
    lr: float = Field(3e-3, gt=0, le=1, description="AdamW learning rate.")
    batch_size: int = Field(128, ge=1, le=1_000_000, description="Rows per optimizer step.")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="AdamW decoupled weight decay.")
    seed: int = Field(0, ge=0, description="Seed of weight initialization and batch order.")


class MLPTrainer:
    """Fits ``TabularMLP`` (see ``gatewise.plugins.mlp_module``) on the training split."""

    name = "mlp"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(MLPParams, params, f"trainer '{self.name}'")

    def train(self, train: pd.DataFrame, label: np.ndarray, spec: InputSpec, params: dict[str, Any]) -> TrainedModel:
        settings = parse_params(MLPParams, params, f"trainer '{self.name}'")
        import numpy as np

        label = np.asarray(label)
        if len(label) != len(train):
            raise UsageError(f"trainer '{self.name}': {len(label)} labels for {len(train)} rows")
        positives = int(label.sum())
        if positives == 0 or positives == len(label):
            raise UsageError(f"trainer '{self.name}': the training split holds one class only; both are needed")

        from gatewise.plugins.mlp_module import fit_mlp

        started = time.perf_counter()
        module = fit_mlp(
            spec.encode(train),
            label,
            n_numeric=len(spec.numeric),
            cardinalities=tuple(len(vocabulary) for _, vocabulary in spec.categorical),
            hidden=settings.hidden,
            epochs=settings.epochs,
            lr=settings.lr,
            batch_size=settings.batch_size,
            weight_decay=settings.weight_decay,
            seed=settings.seed,
        )
        logger.info("trained mlp on %d rows in %.2f s", len(train), time.perf_counter() - started)
        return TrainedModel(module=module, spec=spec)


@hookimpl
def gatewise_trainers() -> list[Trainer]:
    return [MLPTrainer()]
