"""Accuracy regression gate: a balanced-accuracy floor, no regression vs the champion or the parent."""

from __future__ import annotations

from typing import Any

from gatewise.data import label_vector
from gatewise.gates.evidence import json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.gates.metrics import (
    BOOTSTRAP_SEED,
    DECISION_THRESHOLD,
    balanced_accuracy,
    check_length,
    decisions,
    paired_bootstrap_drop,
    roc_auc,
)
from gatewise.types import GateResult

GATE = "accuracy_regression"


def accuracy_regression(inputs: GateInputs) -> GateResult:
    """Balanced accuracy at 0.5 on the test split, against a floor, the champion and the parent.

    Balanced accuracy, not accuracy: on an imbalanced label (arrests: 83% "Yes") a model that
    always answers the majority class scores 0.83 accuracy but 0.50 balanced accuracy.
    A drop is judged on its point estimate; the paired bootstrap interval is evidence beside it.
    """
    import numpy as np

    policy = inputs.policy.accuracy_regression
    y = label_vector(inputs.test, inputs.schema)
    check_length("candidate", inputs.scores, len(y))
    check_length("champion", inputs.champion_scores, len(y))
    check_length("parent", inputs.parent_scores, len(y))
    predicted = decisions(inputs.scores)
    value = balanced_accuracy(y, predicted)

    failed: list[str] = []
    floor_ok = bool(np.isfinite(value) and value >= policy.min_balanced_accuracy)
    if not floor_ok:
        failed.append("min_balanced_accuracy")
    parts = [f"balanced accuracy {value:.3f} {'>=' if floor_ok else '<'} {policy.min_balanced_accuracy:.3f}"]
    details: dict[str, Any] = {
        "metric": "balanced_accuracy",
        "decision_threshold": DECISION_THRESHOLD,
        "test_rows": len(y),
        "test_positives": int(y.sum()),
        "balanced_accuracy": value,
        "roc_auc": roc_auc(y, inputs.scores),
        "accuracy": float((predicted == y).mean()) if len(y) else None,
        # What always answering the majority class would score, to read "accuracy" against.
        "majority_class_accuracy": float(max(y.mean(), 1 - y.mean())) if len(y) else None,
        "min_balanced_accuracy": policy.min_balanced_accuracy,
        "bootstrap_samples": policy.bootstrap_samples,
        "bootstrap_seed": BOOTSTRAP_SEED,
        "champion_rescored": inputs.champion_scores is not None,
        "champion_version": inputs.champion_version,
        "compressed": inputs.parent_scores is not None,
    }

    baselines = (
        ("champion", inputs.champion_scores, policy.max_drop_vs_champion),
        ("parent", inputs.parent_scores, policy.max_drop_vs_parent),
    )
    for name, scores, limit in baselines:
        if scores is None:
            if name == "champion":  # a first run has no champion; an uncompressed model no parent
                parts.append("no champion to compare")
            continue
        baseline = decisions(scores)
        baseline_value = balanced_accuracy(y, baseline)
        drop = baseline_value - value
        ok = bool(np.isfinite(drop) and drop <= limit)
        if not ok:
            failed.append(f"max_drop_vs_{name}")
        parts.append(f"drop vs {name} {drop:.3f} {'<=' if ok else '>'} {limit:.3f}")
        details[f"{name}_balanced_accuracy"] = baseline_value
        details[f"{name}_roc_auc"] = roc_auc(y, scores)
        details[f"drop_vs_{name}"] = drop
        details[f"drop_vs_{name}_ci95"] = paired_bootstrap_drop(y, baseline, predicted, policy.bootstrap_samples)
        details[f"max_drop_vs_{name}"] = limit

    details["failed_checks"] = failed
    return GateResult(
        gate=GATE,
        passed=not failed,
        value=number(value),
        threshold=policy.min_balanced_accuracy,
        summary="; ".join(parts),
        details=json_ready(details),
    )
