"""Validation of a component's ``params`` table: an unknown key or a bad value names itself."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

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
