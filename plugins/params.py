"""Validation of a component's ``params`` table: an unknown key or a bad value names itself."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatewise.errors import UsageError


class ComponentParams(BaseModel):
    """Base of every built-in component's parameters: frozen, and unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=ComponentParams)


def parse_params(model: type[P], params: dict[str, Any] | None, component: str) -> P:
    """Validate ``params`` for the component named ``component``, as a UsageError on failure."""
    try:
        return model.model_validate(params or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            raise UsageError(f"{component}: unknown parameter '{key}' (known: {known})") from None
        raise UsageError(f"{component}: bad value for parameter '{key}': {first['msg']}") from None


# The fit both retraining compressors (prune_units, distill) run: the student learns the parent's
# logits on the calibration rows, with AdamW and a cosine-decayed learning rate. Each compressor
# keeps its own defaults for ``epochs`` and ``lr`` (the constrained types below are shared).
FineTuneEpochs = Annotated[int, Field(ge=0, le=10_000, description="Passes over the calibration rows.")]
PeakLearningRate = Annotated[float, Field(gt=0, le=1, description="Peak AdamW learning rate (cosine decay).")]


class FineTuneParams(ComponentParams):
    """Parameters of the fit to the parent's logits, shared by ``prune_units`` and ``distill``."""

    epochs: FineTuneEpochs = 20
    lr: PeakLearningRate = 3e-3
    batch_size: int = Field(128, ge=1, le=100_000, description="Rows per step.")
    seed: int = Field(0, ge=0, description="Seed of the batch order (and of a new student's initialization).")
