"""The five mandatory gates, the runner that fails closed, and the data gate run before training.

Gates are pure functions from ``GateInputs`` to a ``GateResult``: they never import the registry,
the flows or the plugins. Importing this package stays light; each gate loads its heavy library
(scikit-learn, Fairlearn, Evidently, Great Expectations) when it runs.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from importlib import import_module
from types import MappingProxyType

from gatewise.gate_names import MANDATORY_GATES as MANDATORY_GATE_NAMES
from gatewise.gates.data_validation import validate_dataset
from gatewise.gates.inputs import GateInputs
from gatewise.types import GateResult

Gate = Callable[[GateInputs], GateResult]

# Read-only and deliberately without any switch: configuration sets thresholds, never which run.
# Built from core's one list of names: gate ``name`` is the function ``name`` of module
# ``gatewise.gates.name`` (importing it also binds the module, never the function, as the
# attribute ``name`` of this package), so a name without its gate fails at import, not in a run.
MANDATORY_GATES: Mapping[str, Gate] = MappingProxyType(
    {name: getattr(import_module(f"{__name__}.{name}"), name) for name in MANDATORY_GATE_NAMES}
)


def _errored(name: str, exc: BaseException) -> GateResult:
    """A gate that cannot reach a verdict blocks promotion: it fails, naming the exception."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return GateResult(
        gate=name,
        passed=False,
        value=None,
        threshold=None,
        summary=f"gate raised {type(exc).__name__}: {message}"[:300],
        details={
            "error_type": type(exc).__name__,
            "error": str(exc)[:2000],
            "traceback": "".join(traceback.format_exception(exc))[-4000:],
        },
    )


def run_gate(name: str, gate: Gate, inputs: GateInputs) -> GateResult:
    """Run one gate and fail closed: an exception, a wrong result type or evidence that is not
    strict JSON all yield a failed GateResult instead of an unsigned or unsignable verdict."""
    try:
        result = gate(inputs)
        if not isinstance(result, GateResult):
            raise TypeError(f"gate returned {type(result).__name__}, not GateResult")
        if result.gate != name:
            raise ValueError(f"gate '{name}' returned a result named '{result.gate}'")
        json.dumps(result.details, allow_nan=False)
    except Exception as exc:  # fail closed: any error is a failed gate, never a skipped one
        return _errored(name, exc)
    return result


def run_mandatory_gates(inputs: GateInputs) -> list[GateResult]:
    """Run all five mandatory gates on one candidate, in MANDATORY_GATES order; one result each."""
    return [run_gate(name, gate, inputs) for name, gate in MANDATORY_GATES.items()]


__all__ = [
    "MANDATORY_GATES",
    "MANDATORY_GATE_NAMES",
    "Gate",
    "GateInputs",
    "GateResult",
    "run_gate",
    "run_mandatory_gates",
    "validate_dataset",
]
