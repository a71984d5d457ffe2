"""Accuracy regression gate: a floor on the primary metric, no regression vs the champion or the
parent, and score fidelity of a compressed candidate to its parent."""

from __future__ import annotations

from typing import Any

from gatewise.data import label_vector
from gatewise.gates.evidence import failure_reason, json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.gates.metrics import (
    BOOTSTRAP_METHOD,
    BOOTSTRAP_SEED,
    DECISION_THRESHOLD,
    LOG_LOSS_EPS,
    brier,
    check_length,
    decisions,
    log_loss,
    metric_value,
    paired_bootstrap_drop,
    roc_auc,
)
from gatewise.policy import AccuracyPolicy
from gatewise.types import GateResult

GATE = "accuracy_regression"


def score_fidelity(y: Any, scores: Any, parent: Any, policy: AccuracyPolicy) -> tuple[dict[str, Any], list[str]]:
    """How far a compressed candidate's probabilities moved from its parent's, on the same rows.

    Decisions and the metric can stay put while the probabilities collapse (a last logit divided
    by 1000 keeps every decision and squeezes every score into [0.4994, 0.5004]); anyone who reads
    the scores (a ranking, a threshold other than 0.5, a calibrated risk) is then misled.
    """
    import numpy as np

    difference = np.abs(np.asarray(scores, dtype="float64") - np.asarray(parent, dtype="float64"))
    quantile = float(np.quantile(difference, policy.score_difference_quantile)) if len(difference) else float("nan")
    fidelity = {
        "max_abs_score_difference": float(difference.max()) if len(difference) else float("nan"),
        "quantile": policy.score_difference_quantile,
        "quantile_abs_score_difference": quantile,
        "mean_abs_score_difference": float(difference.mean()) if len(difference) else float("nan"),
        "decisions_changed": int((decisions(scores) != decisions(parent)).sum()),
        "log_loss": log_loss(y, scores),
        "parent_log_loss": log_loss(y, parent),
        "brier": brier(y, scores),
        "parent_brier": brier(y, parent),
        "log_loss_clip": LOG_LOSS_EPS,
        "max_score_difference": policy.max_score_difference,
        "max_quantile_score_difference": policy.max_quantile_score_difference,
        "max_log_loss_increase": policy.max_log_loss_increase,
        "max_brier_increase": policy.max_brier_increase,
    }
    fidelity["log_loss_increase"] = fidelity["log_loss"] - fidelity["parent_log_loss"]
    fidelity["brier_increase"] = fidelity["brier"] - fidelity["parent_brier"]
    checks = (
        ("max_score_difference", fidelity["max_abs_score_difference"], policy.max_score_difference),
        ("max_quantile_score_difference", quantile, policy.max_quantile_score_difference),
        ("max_log_loss_increase", fidelity["log_loss_increase"], policy.max_log_loss_increase),
        ("max_brier_increase", fidelity["brier_increase"], policy.max_brier_increase),
    )
    failed = [name for name, measured, limit in checks if not (np.isfinite(measured) and measured <= limit)]
    return fidelity, failed


def accuracy_regression(inputs: GateInputs) -> GateResult:
    """The primary metric on the test split, against a floor, the re-scored champion and the parent.

    Default metric: balanced accuracy at 0.5, not accuracy: on an imbalanced label (arrests: 83%
    "Yes") always answering the majority class scores 0.83 accuracy but 0.50 balanced accuracy.
    Drops are judged on their point estimates; the paired bootstrap intervals are evidence beside
    them. Cold start (no champion): the floor, and for a compressed candidate its parent, decide.
    """
    import numpy as np

    policy = inputs.policy.accuracy_regression
    metric = policy.metric
    y = label_vector(inputs.test, inputs.schema)
    check_length("candidate", inputs.scores, len(y))
    check_length("champion", inputs.champion_scores, len(y))
    check_length("parent", inputs.parent_scores, len(y))
    predicted = decisions(inputs.scores)
    value = metric_value(metric, y, inputs.scores)

    failed: list[str] = []
    floor_ok = value is not None and value >= policy.min_metric
    if not floor_ok:
        failed.append("min_metric")
    shown = "undefined" if value is None else f"{value:.3f}"
    parts = [f"{metric} {shown} {'>=' if floor_ok else '<'} {policy.min_metric:.3f}"]
    details: dict[str, Any] = {
        "metric": metric,
        "value": value,
        "decision_threshold": DECISION_THRESHOLD,
        "test_rows": len(y),
        "test_positives": int(y.sum()),
        "balanced_accuracy": metric_value("balanced_accuracy", y, inputs.scores),
        "roc_auc": roc_auc(y, inputs.scores),
        "accuracy": float((predicted == y).mean()) if len(y) else None,
        # What always answering the majority class would score, to read "accuracy" against.
        "majority_class_accuracy": float(max(y.mean(), 1 - y.mean())) if len(y) else None,
        "log_loss": log_loss(y, inputs.scores),
        "brier": brier(y, inputs.scores),
        "min_metric": policy.min_metric,
        "bootstrap_samples": policy.bootstrap_samples,
        "bootstrap_seed": BOOTSTRAP_SEED,
        "bootstrap_method": BOOTSTRAP_METHOD,
        "champion_rescored": inputs.champion_scores is not None,
        "champion_version": inputs.champion_version,
        "cold_start": inputs.champion_scores is None,
        "compressed": inputs.parent_scores is not None,
    }
    if inputs.champion_scores is None:  # cold start: the floor (and the parent) decide alone
        parts.append("no champion to compare (cold start: floor only)")

    baselines = (
        ("champion", inputs.champion_scores, policy.max_drop_vs_champion),
        ("parent", inputs.parent_scores, policy.max_drop_vs_parent),
    )
    for name, scores, limit in baselines:
        if scores is None:
            continue
        baseline_value = metric_value(metric, y, scores)
        drop = float("nan") if value is None or baseline_value is None else baseline_value - value
        ok = bool(np.isfinite(drop) and drop <= limit)
        if not ok:
            failed.append(f"max_drop_vs_{name}")
        parts.append(f"drop vs {name} {drop:.3f} {'<=' if ok else '>'} {limit:.3f}")
        details[f"{name}_{metric}"] = baseline_value
        details[f"{name}_roc_auc"] = roc_auc(y, scores)
        details[f"drop_vs_{name}"] = drop
        details[f"drop_vs_{name}_ci95"] = paired_bootstrap_drop(y, scores, inputs.scores, policy.bootstrap_samples, metric)
        details[f"max_drop_vs_{name}"] = limit
        if name == "champion":
            relative = drop / baseline_value if baseline_value else float("nan")
            relative_ok = bool(np.isfinite(relative) and relative <= policy.max_relative_drop_vs_champion)
            if not relative_ok:
                failed.append("max_relative_drop_vs_champion")
                parts.append(f"relative drop vs champion {relative:.1%} > {policy.max_relative_drop_vs_champion:.1%}")
            details["relative_drop_vs_champion"] = relative
            details["max_relative_drop_vs_champion"] = policy.max_relative_drop_vs_champion

    if inputs.parent_scores is not None:
        fidelity, fidelity_failed = score_fidelity(y, inputs.scores, inputs.parent_scores, policy)
        details["score_fidelity"] = fidelity
        failed.extend(fidelity_failed)
        q = policy.score_difference_quantile
        parts.append(
            f"|p - p_parent| max {fidelity['max_abs_score_difference']:.3f}, q{q * 100:g} "
            f"{fidelity['quantile_abs_score_difference']:.3f}, log-loss {fidelity['log_loss_increase']:+.3f}, "
            f"Brier {fidelity['brier_increase']:+.3f}"
            + (f" ({', '.join(fidelity_failed)} exceeded)" if fidelity_failed else "")
        )

    details["failed_checks"] = failed
    summary = "; ".join(parts)
    details["reason"] = failure_reason(GATE, failed, summary)
    return GateResult(
        gate=GATE,
        passed=not failed,
        value=number(value),
        threshold=policy.min_metric,
        summary=summary,
        details=json_ready(details),
    )
