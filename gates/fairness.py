"""Fairness gate: Fairlearn parity differences per sensitive column, and per-group drop vs the parent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatewise.data import label_vector
from gatewise.gates.evidence import json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.gates.metrics import DECISION_THRESHOLD, balanced_accuracy, check_length, decisions
from gatewise.types import GateResult

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

GATE = "fairness"
MISSING_GROUP = "<missing>"  # a missing sensitive value is a group of its own, not dropped
LABELS = {
    "demographic_parity_difference": "demographic parity",
    "equalized_odds_difference": "equalized odds",
    "max_group_drop_vs_parent": "group drop vs parent",
}


def _groups(test: pd.DataFrame, column: str) -> pd.Series:
    return test[column].astype("object").where(test[column].notna(), MISSING_GROUP).astype(str)


def _column_report(
    y: np.ndarray, predicted: np.ndarray, parent: np.ndarray | None, groups: pd.Series
) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    metrics = {
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "balanced_accuracy": balanced_accuracy,
    }
    frame = MetricFrame(metrics=metrics, y_true=y, y_pred=predicted, sensitive_features=groups)
    by_group = frame.by_group
    sizes = groups.value_counts()
    positives = groups[y == 1].value_counts()
    report: dict[str, Any] = {
        "demographic_parity_difference": float(demographic_parity_difference(y, predicted, sensitive_features=groups)),
        "equalized_odds_difference": float(equalized_odds_difference(y, predicted, sensitive_features=groups)),
        "groups": {
            str(group): {
                "size": int(sizes[group]),
                "positives": int(positives.get(group, 0)),
                **by_group.loc[group].to_dict(),
            }
            for group in by_group.index
        },
    }
    if parent is not None:
        parent_frame = MetricFrame(metrics=balanced_accuracy, y_true=y, y_pred=parent, sensitive_features=groups)
        drops = parent_frame.by_group - by_group["balanced_accuracy"]
        for group in by_group.index:
            report["groups"][str(group)]["parent_balanced_accuracy"] = float(parent_frame.by_group[group])
            report["groups"][str(group)]["drop_vs_parent"] = float(drops[group])
        report["max_group_drop_vs_parent"] = float(drops.max())
    return report


def fairness(inputs: GateInputs) -> GateResult:
    """Demographic-parity and equalized-odds differences of the 0.5 decisions, per sensitive column.

    ``value`` is the worst equalized-odds difference: it conditions on the true label, so unlike
    demographic parity it does not penalize groups merely for having different base rates.
    Both are gated; a compressed candidate is also held to max_group_drop_vs_parent.
    """
    import numpy as np

    policy = inputs.policy.fairness
    columns = inputs.schema.sensitive
    if not columns:
        return GateResult(
            gate=GATE,
            passed=True,
            value=None,
            threshold=policy.max_equalized_odds_difference,
            summary="no sensitive columns were declared; nothing to compare",
            details={"sensitive_columns": []},
        )
    y = label_vector(inputs.test, inputs.schema)
    check_length("candidate", inputs.scores, len(y))
    check_length("parent", inputs.parent_scores, len(y))
    predicted = decisions(inputs.scores)
    parent = decisions(inputs.parent_scores) if inputs.parent_scores is not None else None

    reports = {column: _column_report(y, predicted, parent, _groups(inputs.test, column)) for column in columns}
    limits = {
        "demographic_parity_difference": policy.max_demographic_parity_difference,
        "equalized_odds_difference": policy.max_equalized_odds_difference,
    }
    if parent is not None:
        limits["max_group_drop_vs_parent"] = policy.max_group_drop_vs_parent
    failed: list[str] = []
    worst: dict[str, tuple[float, str]] = {}
    for column, report in reports.items():
        for metric, limit in limits.items():
            measured = report[metric]
            # NaN (e.g. a group with no positives) cannot show fairness: it fails closed.
            if not np.isfinite(measured) or measured > limit:
                failed.append(f"{column}: {metric} {measured:.3f} > {limit:.3f}")
            if metric not in worst or not measured <= worst[metric][0]:
                worst[metric] = (measured, column)

    parts = [
        f"{LABELS[metric]} {measured:.3f} {'<=' if measured <= limits[metric] else '>'} "
        f"{limits[metric]:.3f} ({column})"
        for metric, (measured, column) in worst.items()
    ]
    details = {
        "decision_threshold": DECISION_THRESHOLD,
        "sensitive_columns": list(columns),
        "compressed": parent is not None,
        "columns": reports,
        "limits": limits,
        "failed_checks": failed,
    }
    return GateResult(
        gate=GATE,
        passed=not failed,
        value=number(worst["equalized_odds_difference"][0]),
        threshold=policy.max_equalized_odds_difference,
        summary="; ".join(parts),
        details=json_ready(details),
    )
