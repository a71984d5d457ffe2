"""Robustness gate: do the candidate's decisions and its metric hold under realistic input noise?

Three perturbation families, each respecting what a column is: numeric noise scaled to the
column's spread (integer columns such as counts and years move by whole steps and stay in their
observed range; nothing is multiplied), category swaps between values seen in train, and blanked
values. A compressed candidate is compared with its parent on the very same perturbed rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatewise.data import label_vector
from gatewise.gates.evidence import failure_reason, json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.gates.metrics import BOOTSTRAP_METHOD, DECISION_THRESHOLD, check_length, decisions, metric_value, paired_bootstrap_drop
from gatewise.policy import RobustnessPolicy
from gatewise.types import GateResult, Schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

GATE = "robustness"
FAMILIES = ("numeric_noise", "category_swap", "missing")


def _is_integer(values: pd.Series) -> bool:
    import numpy as np

    present = values.dropna().to_numpy(dtype="float64")
    return bool(len(present)) and bool(np.all(np.isfinite(present)) and np.all(present == np.round(present)))


def numeric_noise(test: pd.DataFrame, train: pd.DataFrame, schema: Schema, policy: RobustnessPolicy, rng: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Gaussian noise of sd = noise_scale x the column's train sd, added (never multiplied).

    Integer columns (counts, years, ages in years) get the noise stochastically rounded, so that a
    noise of 0.3 steps moves 30% of the rows by one step and the values stay whole; every value is
    kept inside the column's range on train (a count never goes negative).
    """
    import numpy as np
    import pandas as pd

    noisy = test.copy()
    evidence: dict[str, Any] = {}
    for column in schema.numeric:
        values = pd.to_numeric(test[column], errors="coerce").astype("float64").to_numpy()
        reference = pd.to_numeric(train[column], errors="coerce").astype("float64")
        sd = float(reference.std()) if reference.notna().sum() > 1 else 0.0
        sd = policy.noise_scale * (sd if np.isfinite(sd) else 0.0)
        noise = rng.normal(0.0, 1.0, len(values)) * sd
        integer = _is_integer(reference)
        if integer:
            noise = np.floor(noise + rng.random(len(values)))
        low, high = float(reference.min()), float(reference.max())
        moved = np.where(np.isnan(values), values, np.clip(values + noise, low, high))
        noisy[column] = moved
        evidence[column] = {
            "noise_sd": sd,
            "integer_steps": integer,
            "range": [low, high],
            "changed_share": float(np.mean(moved != values)) if len(values) else 0.0,
        }
    return noisy, evidence


def category_swap(test: pd.DataFrame, train: pd.DataFrame, schema: Schema, policy: RobustnessPolicy, rng: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each categorical value is, with probability category_swap_rate, replaced by a different category seen in train."""
    noisy = test.copy()
    evidence: dict[str, Any] = {}
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
        evidence[column] = {"changed_share": float(swap.mean()) if len(swap) else 0.0}
    return noisy, evidence


def missing_values(test: pd.DataFrame, train: pd.DataFrame, schema: Schema, policy: RobustnessPolicy, rng: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each feature value is blanked with probability missing_rate (a form left incomplete)."""
    import numpy as np

    noisy = test.copy()
    evidence: dict[str, Any] = {}
    for column in schema.features:
        blank = rng.random(len(test)) < policy.missing_rate
        values = noisy[column].astype("float64" if column in schema.numeric else "object").to_numpy(copy=True)
        values[blank] = np.nan if column in schema.numeric else None
        noisy[column] = values
        evidence[column] = {"changed_share": float(blank.mean()) if len(blank) else 0.0}
    return noisy, evidence


def perturb(test: pd.DataFrame, train: pd.DataFrame, schema: Schema, policy: RobustnessPolicy) -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
    """One perturbed copy of ``test`` per family, and what was done to each column; seeded per family."""
    import numpy as np

    makers = {"numeric_noise": numeric_noise, "category_swap": category_swap, "missing": missing_values}
    return {
        family: makers[family](test, train, schema, policy, np.random.default_rng([policy.seed, index]))
        for index, family in enumerate(FAMILIES)
    }


def _family_effect(y: Any, clean: Any, perturbed: Any, metric: str, samples: int) -> dict[str, Any]:
    clean_value, perturbed_value = metric_value(metric, y, clean), metric_value(metric, y, perturbed)
    flips = int((decisions(clean) != decisions(perturbed)).sum())
    drop = float("nan") if clean_value is None or perturbed_value is None else clean_value - perturbed_value
    return {
        "flips": flips,
        "flip_rate": flips / len(y) if len(y) else float("nan"),
        f"{metric}_clean": clean_value,
        f"{metric}_perturbed": perturbed_value,
        "metric_drop": drop,
        "metric_drop_ci95": paired_bootstrap_drop(y, clean, perturbed, samples, metric),
    }


def robustness(inputs: GateInputs) -> GateResult:
    """Per family: the share of decisions that flip and the drop of the primary metric, each against
    clean test rows; for a compressed candidate, both against its parent on the same perturbed rows.

    ``value`` is the worst family's flip rate. A flip rate alone says little where many predictions
    sit near 0.5; the metric drop says whether the flips are mistakes.
    """
    import numpy as np

    policy = inputs.policy.robustness
    metric = inputs.policy.accuracy_regression.metric
    y = label_vector(inputs.test, inputs.schema)
    check_length("candidate", inputs.scores, len(y))
    parent_clean = None
    if inputs.parent_predict_proba is not None:
        parent_clean = np.asarray(inputs.parent_predict_proba(inputs.test), dtype="float64")
        check_length("parent", parent_clean, len(y))

    families: dict[str, Any] = {}
    failed: list[str] = []
    for family, (noisy, evidence) in perturb(inputs.test, inputs.train, inputs.schema, policy).items():
        perturbed = np.asarray(inputs.predict_proba(noisy), dtype="float64")
        check_length("perturbed scores", perturbed, len(y))
        effect = _family_effect(y, inputs.scores, perturbed, metric, policy.bootstrap_samples)
        effect["columns"] = evidence
        if not (np.isfinite(effect["flip_rate"]) and effect["flip_rate"] <= policy.max_flip_rate):
            failed.append(f"{family}: max_flip_rate {effect['flip_rate']:.3f} > {policy.max_flip_rate:.3f}")
        if not (np.isfinite(effect["metric_drop"]) and effect["metric_drop"] <= policy.max_metric_drop):
            failed.append(f"{family}: max_metric_drop {effect['metric_drop']:.3f} > {policy.max_metric_drop:.3f}")
        if parent_clean is not None:
            parent_perturbed = np.asarray(inputs.parent_predict_proba(noisy), dtype="float64")
            parent_effect = _family_effect(y, parent_clean, parent_perturbed, metric, 0)
            flip_increase = effect["flip_rate"] - parent_effect["flip_rate"]
            drop_increase = effect["metric_drop"] - parent_effect["metric_drop"]
            effect.update(
                parent_flip_rate=parent_effect["flip_rate"], parent_metric_drop=parent_effect["metric_drop"],
                flip_rate_increase_vs_parent=flip_increase, metric_drop_increase_vs_parent=drop_increase,
                decisions_differing_from_parent=float((decisions(parent_perturbed) != decisions(perturbed)).mean()),
            )
            if not (np.isfinite(flip_increase) and flip_increase <= policy.max_flip_rate_increase_vs_parent):
                failed.append(f"{family}: max_flip_rate_increase_vs_parent {flip_increase:.3f} > {policy.max_flip_rate_increase_vs_parent:.3f}")
            if not (np.isfinite(drop_increase) and drop_increase <= policy.max_metric_drop_increase_vs_parent):
                failed.append(f"{family}: max_metric_drop_increase_vs_parent {drop_increase:.3f} > {policy.max_metric_drop_increase_vs_parent:.3f}")
        families[family] = effect

    worst_flip = max(families, key=lambda f: families[f]["flip_rate"])
    worst_drop = max(families, key=lambda f: families[f]["metric_drop"] if np.isfinite(families[f]["metric_drop"]) else np.inf)
    flip_rate, drop = families[worst_flip]["flip_rate"], families[worst_drop]["metric_drop"]
    parts = [
        f"worst flip rate {flip_rate:.3f} {'<=' if flip_rate <= policy.max_flip_rate else '>'} {policy.max_flip_rate:.3f} ({worst_flip})",
        f"worst {metric} drop {drop:.3f} {'<=' if drop <= policy.max_metric_drop else '>'} {policy.max_metric_drop:.3f} ({worst_drop})",
    ]
    if parent_clean is not None:
        flip_increase = max(families[f]["flip_rate_increase_vs_parent"] for f in families)
        drop_increase = max(families[f]["metric_drop_increase_vs_parent"] for f in families)
        parts.append(f"vs parent on the same rows: flip rate {flip_increase:+.3f}, {metric} drop {drop_increase:+.3f}")
    summary = "; ".join(parts)
    details: dict[str, Any] = {
        "decision_threshold": DECISION_THRESHOLD,
        "metric": metric,
        "test_rows": len(y),
        "families": families,
        "compressed": parent_clean is not None,
        "limits": {
            "max_flip_rate": policy.max_flip_rate,
            "max_metric_drop": policy.max_metric_drop,
            "max_flip_rate_increase_vs_parent": policy.max_flip_rate_increase_vs_parent,
            "max_metric_drop_increase_vs_parent": policy.max_metric_drop_increase_vs_parent,
        },
        "noise_scale": policy.noise_scale,
        "category_swap_rate": policy.category_swap_rate,
        "missing_rate": policy.missing_rate,
        "bootstrap_samples": policy.bootstrap_samples,
        "bootstrap_method": BOOTSTRAP_METHOD,
        "seed": policy.seed,
        "failed_checks": failed,
        "reason": failure_reason(GATE, failed, summary),
    }
    return GateResult(
        gate=GATE,
        passed=not failed,
        value=number(flip_rate),
        threshold=policy.max_flip_rate,
        summary=summary,
        details=json_ready(details),
    )
