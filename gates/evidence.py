"""Turn measured values into JSON-ready evidence: plain Python numbers, no numpy types, no NaN."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Six decimals keep signed records short and readable; no gate threshold is finer than that.
DECIMALS = 6


def json_ready(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays, tuples and NaN/inf into what json.dumps accepts.

    NaN and infinities become None (``allow_nan=False`` serializers and other languages reject them).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_ready(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):  # numpy arrays and scalars
        return json_ready(value.tolist())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return round(value, DECIMALS) if math.isfinite(value) else None
    return str(value)


def number(value: Any) -> float | None:
    """One measured float for GateResult.value/threshold: rounded, or None when undefined."""
    if value is None:
        return None
    value = float(value)
    return round(value, DECIMALS) if math.isfinite(value) else None



def failure_reason(gate: str, failed_checks: list[str], summary: str) -> str | None:
    """The one human line a failed result carries: which checks failed, then what was measured.

    None when nothing failed, so ``details["reason"]`` is present on every result and read alike.
    """
    if not failed_checks:
        return None
    named = ", ".join(dict.fromkeys(check.split(":")[-1].strip().split(" ")[0] for check in failed_checks))
    return f"{gate} failed ({named}): {summary}"[:300]
