"""Robustness gate: do the candidate's decisions hold when the test inputs get realistic noise?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatewise.data import label_vector
from gatewise.gates.evidence import json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.gates.metrics import DECISION_THRESHOLD, balanced_accuracy, check_length, decisions
from gatewise.policy import RobustnessPolicy
from gatewise.types import GateResult, Schema

if TYPE_CHECKING:
    import pandas as pd

GATE = "robustness"


def perturb(
    test: pd.DataFrame, train: pd.DataFrame, schema: Schema, policy: RobustnessPolicy
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A noisy copy of ``test`` and what was done to it; the same inputs give the same copy.

    Numeric columns get gaussian noise with sd = noise_scale * the column's train sd (noise is
    not rounded, so integer columns such as age get fractional values: the model must cope with a
    small move either way). Each categorical value is, with probability category_swap_rate,
    replaced by a different category seen in train. Missing values stay missing.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(policy.seed)
    noisy = test.copy()
    noise_sd: dict[str, float] = {}
    swapped: dict[str, float] = {}
    for column in schema.numeric:
        values = pd.to_numeric(test[column], errors="coerce").astype("float64")
        train_sd = float(pd.to_numeric(train[column], errors="coerce").std())
        sd = policy.noise_scale * (train_sd if np.isfinite(train_sd) else 0.0)
        noise_sd[column] = sd
        noisy[column] = values + rng.normal(0.0, 1.0, len(values)) * sd
    for column in schema.categorical:
        vocabulary = sorted(train[column].dropna().astype(str).unique())
        original = test[column]
        swap = (rng.random(len(test)) < policy.category_swap_rate) & original.notna().to_numpy()
        if len(vocabulary) < 2:  # nothing else to swap to
            swap[:] = False
        if swap.any():
            position = {value: i for i, value in enumerate(vocabulary)}
            # Shift by 1..k-1 places in the vocabulary: always a different category. A test value
            # unseen in train counts as position 0; whatever it becomes is another category.
            shifts = rng.integers(1, len(vocabulary), int(swap.sum()))
            values = original.astype("object").to_numpy(copy=True)
            values[swap] = [
                vocabulary[(position.get(value, 0) + shift) % len(vocabulary)]
                for value, shift in zip(original[swap].astype(str), shifts, strict=True)
            ]
            noisy[column] = values
        swapped[column] = float(swap.mean()) if len(swap) else 0.0
    return noisy, {"numeric_noise_sd": noise_sd, "categorical_swapped_share": swapped}


def robustness(inputs: GateInputs) -> GateResult:
    """Share of test decisions that flip when the inputs are perturbed (value), and the accuracy lost."""
    import numpy as np

    policy = inputs.policy.robustness
    y = label_vector(inputs.test, inputs.schema)
    check_length("candidate", inputs.scores, len(y))
    noisy, perturbation = perturb(inputs.test, inputs.train, inputs.schema, policy)
    clean = decisions(inputs.scores)
    perturbed = decisions(inputs.predict_proba(noisy))
    check_length("perturbed scores", perturbed, len(y))
    flips = int((clean != perturbed).sum())
    flip_rate = flips / len(y) if len(y) else float("nan")
    clean_value, perturbed_value = balanced_accuracy(y, clean), balanced_accuracy(y, perturbed)
    passed = bool(np.isfinite(flip_rate) and flip_rate <= policy.max_flip_rate)
    details: dict[str, Any] = {
        "decision_threshold": DECISION_THRESHOLD,
        "test_rows": len(y),
        "flips": flips,
        "flip_rate": flip_rate,
        "max_flip_rate": policy.max_flip_rate,
        "balanced_accuracy_clean": clean_value,
        "balanced_accuracy_perturbed": perturbed_value,
        "balanced_accuracy_drop": clean_value - perturbed_value,
        "noise_scale": policy.noise_scale,
        "category_swap_rate": policy.category_swap_rate,
        "seed": policy.seed,
        **perturbation,
    }
    if inputs.parent_scores is not None:
        check_length("parent", inputs.parent_scores, len(y))
        # Not gated here (accuracy and fairness gate the parent comparison); shown as evidence.
        details["decisions_differing_from_parent"] = float((decisions(inputs.parent_scores) != clean).mean())
    summary = (
        f"flip rate {flip_rate:.3f} {'<=' if passed else '>'} {policy.max_flip_rate:.3f} under noise "
        f"{policy.noise_scale:g} sd and {policy.category_swap_rate:.0%} category swaps; "
        f"balanced accuracy drop {clean_value - perturbed_value:.3f}"
    )
    return GateResult(
        gate=GATE,
        passed=passed,
        value=number(flip_rate),
        threshold=policy.max_flip_rate,
        summary=summary,
        details=json_ready(details),
    )
