"""The gate policy: thresholds of the five mandatory gates, read from ``[gates]`` in gatewise.toml.

Every field has a documented default, calibrated on the bundled arrests data (the measured values
and the reason for each default are in docs/gates.md). There is deliberately no ``enabled``
switch: the five gates always run, configuration only sets how strict they are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gatewise.gate_names import MANDATORY_GATES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccuracyPolicy(_Strict):
    metric: Literal["balanced_accuracy", "roc_auc", "f1", "accuracy"] = Field("balanced_accuracy", description="Primary metric every drop and floor is measured in: balanced_accuracy (default; sees class imbalance), roc_auc (ranking, threshold-free), f1 (of the positive class) or accuracy (misleading on an imbalanced label).")
    min_metric: float = Field(0.60, ge=0, le=1, description="Floor on the primary metric on the test split.")
    max_drop_vs_champion: float = Field(0.02, ge=0, le=1, description="Largest allowed absolute drop in the primary metric against the champion re-scored on the same test rows.")
    max_relative_drop_vs_champion: float = Field(0.03, ge=0, le=1, description="Largest allowed drop in the primary metric against the re-scored champion, as a fraction of the champion's value.")
    max_drop_vs_parent: float = Field(0.01, ge=0, le=1, description="Largest allowed drop in the primary metric of a compressed candidate against its uncompressed parent.")
    max_score_difference: float = Field(0.25, ge=0, le=1, description="Score fidelity of a compressed candidate: largest allowed |p - p_parent| on any test row.")
    score_difference_quantile: float = Field(0.99, gt=0, le=1, description="Quantile of |p - p_parent| over the test rows that max_quantile_score_difference limits.")
    max_quantile_score_difference: float = Field(0.10, ge=0, le=1, description="Score fidelity of a compressed candidate: largest allowed score_difference_quantile of |p - p_parent|.")
    max_log_loss_increase: float = Field(0.02, ge=0, description="Score fidelity of a compressed candidate: largest allowed rise of the test log-loss over its parent's.")
    max_brier_increase: float = Field(0.01, ge=0, le=1, description="Score fidelity of a compressed candidate: largest allowed rise of the test Brier score over its parent's.")
    bootstrap_samples: int = Field(1000, ge=0, le=10000, description="Paired bootstrap resamples for the confidence interval of each drop (0 disables the interval, not the gate).")


class FairnessPolicy(_Strict):
    max_demographic_parity_difference: float = Field(0.20, ge=0, le=1, description="Largest allowed Fairlearn demographic-parity difference for any sensitive column or their intersection.")
    max_equalized_odds_difference: float = Field(0.20, ge=0, le=1, description="Largest allowed Fairlearn equalized-odds difference for any sensitive column or their intersection.")
    max_group_drop_vs_parent: float = Field(0.05, ge=0, le=1, description="Largest allowed drop in any judged group's primary metric of a compressed candidate against its parent.")
    max_group_drop_vs_champion: float = Field(0.05, ge=0, le=1, description="Largest allowed drop in any judged group's primary metric against the champion re-scored on the same rows.")
    max_parity_increase_vs_parent: float = Field(0.05, ge=0, le=1, description="Largest allowed rise of a compressed candidate's demographic-parity or equalized-odds difference over its parent's, even while under the absolute limit.")
    min_group_size: int = Field(30, ge=1, description="Groups with fewer test rows (or fewer than min_group_class_rows of either label) are too small to judge: reported as such, left out of the differences, named in the summary.")
    min_group_class_rows: int = Field(5, ge=1, description="Fewest positive and fewest negative test rows a group needs for its rates (TPR, FPR, per-group metric) to be judged.")


class RobustnessPolicy(_Strict):
    noise_scale: float = Field(0.1, ge=0, le=10, description="Numeric noise, as a fraction of each feature's standard deviation on train (integer columns get integer steps; nothing is multiplied).")
    category_swap_rate: float = Field(0.05, ge=0, le=1, description="Share of categorical values replaced by another category seen in train.")
    missing_rate: float = Field(0.05, ge=0, le=1, description="Share of values blanked (set missing) in the missing-values family.")
    max_flip_rate: float = Field(0.15, ge=0, le=1, description="Largest allowed share of test predictions that change under any one perturbation family.")
    max_metric_drop: float = Field(0.03, ge=0, le=1, description="Largest allowed drop of the primary metric under any one perturbation family, against the clean test rows.")
    max_flip_rate_increase_vs_parent: float = Field(0.03, ge=0, le=1, description="Largest allowed rise of a compressed candidate's flip rate over its parent's on the same perturbed rows, per family.")
    max_metric_drop_increase_vs_parent: float = Field(0.02, ge=0, le=1, description="Largest allowed rise of a compressed candidate's metric drop over its parent's on the same perturbed rows, per family.")
    bootstrap_samples: int = Field(500, ge=0, le=10000, description="Paired bootstrap resamples for the confidence interval of each family's metric drop (0 disables the interval, not the gate).")
    seed: int = Field(0, description="Seed of the perturbations, so the gate is reproducible.")


class DriftPolicy(_Strict):
    max_drifted_share: float = Field(0.3, ge=0, le=1, description="Largest allowed share of feature columns that Evidently finds drifted (training data vs current data), whatever their importance: a backstop for broad drift.")
    max_weighted_drift: float = Field(0.25, ge=0, description="Largest allowed importance-weighted drift: the sum over feature columns of the model's share of permutation importance times the column's drift distance (docs/gates.md).")
    max_prediction_drift: float = Field(0.15, ge=0, description="Largest allowed drift of the candidate's own predicted probabilities (Wasserstein distance / the reference's standard deviation), train vs current.")
    importance_repeats: int = Field(3, ge=1, le=50, description="Shuffles per column when measuring permutation importance on the test split.")


class LeakagePolicy(_Strict):
    max_single_feature_auc: float = Field(0.90, ge=0.5, le=1, description="A feature whose ROC AUC alone on test exceeds this is a suspected label proxy, then judged by min_proxy_dependence_z.")
    max_proxy_auc: float = Field(0.995, ge=0.5, le=1, description="A feature at or above this single-feature AUC is a label copy whatever else holds.")
    min_proxy_dependence_z: float = Field(4.0, ge=0, description="A suspected proxy fails unless, within some label class, it is related to what the other features predict (|Fisher z| at least this): a noisy label copy carries nothing but the label.")
    max_excess_duplicate_share: float = Field(0.10, ge=0, le=1, description="Largest allowed estimated share of test rows copied from train: the test rows with an exact copy in train beyond what the data's own duplication explains (see docs/gates.md).")
    max_duplication_excess: float = Field(0.15, ge=0, le=1, description="Largest allowed share of rows in duplicated patterns beyond what the data's own joint distribution predicts (copies made before the split).")
    max_membership_advantage: float = Field(0.10, ge=0, le=1, description="Largest allowed membership-inference advantage (max TPR - FPR of a loss-threshold attack, training rows vs held-out rows).")
    max_membership_advantage_increase_vs_parent: float = Field(0.03, ge=0, le=1, description="Largest allowed rise of a compressed candidate's membership advantage over its parent's, on the same rows.")
    max_id_auc: float = Field(0.60, ge=0.5, le=1, description="Largest allowed ROC AUC of the declared id column (its order) predicting the label.")
    max_test_before_train_share: float = Field(0.05, ge=0, le=1, description="With a declared time column: largest allowed share of test rows dated before the latest training row.")


class GatePolicy(_Strict):
    """One section per mandatory gate, named and ordered as gatewise.gate_names lists them."""

    accuracy_regression: AccuracyPolicy = Field(default_factory=AccuracyPolicy, description="Thresholds of the accuracy regression gate.")
    fairness: FairnessPolicy = Field(default_factory=FairnessPolicy, description="Thresholds of the fairness gate.")
    robustness: RobustnessPolicy = Field(default_factory=RobustnessPolicy, description="Perturbation and threshold of the robustness gate.")
    drift: DriftPolicy = Field(default_factory=DriftPolicy, description="Threshold of the drift gate.")
    leakage: LeakagePolicy = Field(default_factory=LeakagePolicy, description="Thresholds of the leakage gate.")


# A section per gate, no more, no fewer: checked when gatewise loads, not when a run needs it.
if tuple(GatePolicy.model_fields) != MANDATORY_GATES:  # pragma: no cover - a programming error
    raise ImportError(f"[gates] sections {tuple(GatePolicy.model_fields)} do not match the mandatory gates {MANDATORY_GATES}")
