"""The runner: all five mandatory gates, always, in order; a gate that raises fails closed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from test_gates_support import arrests_inputs

from gatewise.gates import MANDATORY_GATES, run_mandatory_gates

FIVE = ["accuracy_regression", "fairness", "robustness", "drift", "leakage"]


@pytest.fixture(scope="module")
def clean_results():
    return run_mandatory_gates(arrests_inputs())


def test_the_five_gates_are_fixed_and_cannot_be_removed():
    assert list(MANDATORY_GATES) == FIVE
    with pytest.raises(TypeError):
        MANDATORY_GATES["drift"] = lambda inputs: None  # type: ignore[index]
    with pytest.raises(TypeError):
        del MANDATORY_GATES["drift"]  # type: ignore[attr-defined]


def test_a_reasonable_model_passes_all_five_with_json_ready_evidence(clean_results):
    assert [result.gate for result in clean_results] == FIVE
    for result in clean_results:
        assert result.passed, f"{result.gate}: {result.summary}"
        assert "\n" not in result.summary and len(result.summary) < 300
        json.dumps(result.details, allow_nan=False)
        assert result.value is None or type(result.value) is float


def test_a_gate_that_raises_fails_closed_and_the_others_still_run():
    def broken(frame):
        raise RuntimeError("ONNX Runtime session lost")

    results = run_mandatory_gates(arrests_inputs(predict_proba=broken, scores=arrests_inputs().scores))
    by_gate = {result.gate: result for result in results}
    assert list(by_gate) == FIVE
    # Robustness, drift (importance, prediction drift) and leakage (membership) score new rows.
    scoring = ("robustness", "drift", "leakage")
    for name in scoring:
        result = by_gate[name]
        assert not result.passed and result.value is None
        assert result.summary == "gate raised RuntimeError: ONNX Runtime session lost"
        assert result.details["error_type"] == "RuntimeError"
        json.dumps(result.details, allow_nan=False)
    assert all(by_gate[name].passed for name in FIVE if name not in scoring)


def test_misaligned_champion_scores_fail_closed():
    results = run_mandatory_gates(arrests_inputs(champion_scores=np.zeros(3), champion_version="7"))
    accuracy = results[0]
    assert not accuracy.passed
    assert accuracy.summary.startswith("gate raised ValueError: champion has 3 scores")


def test_importing_the_gates_loads_no_heavy_library():
    heavy = ("numpy", "pandas", "sklearn", "fairlearn", "evidently", "great_expectations", "torch")
    code = f"import sys, gatewise.gates; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr
