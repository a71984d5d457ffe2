"""The gate policy: thresholds of the five mandatory gates, read from ``[gates]`` in gatewise.toml.

Every field has a documented default, calibrated on the bundled arrests data (the measured values
and the reason for each default are in docs/gates.md). There is deliberately no ``enabled``
switch: the five gates always run, configuration only sets how strict they are.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gatewise.gate_names import MANDATORY_GATES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccuracyPolicy(_Strict):
    min_balanced_accuracy: float = Field(0.60, ge=0, le=1, description="Floor on balanced accuracy on the test split.")
    max_drop_vs_champion: float = Field(0.02, ge=0, le=1, description="Largest allowed drop in balanced accuracy against the champion re-scored on the same test rows.")
    max_drop_vs_parent: float = Field(0.01, ge=0, le=1, description="Largest allowed drop in balanced accuracy of a compressed candidate against its uncompressed parent.")
    bootstrap_samples: int = Field(1000, ge=0, le=10000, description="Paired bootstrap resamples for the confidence interval of each drop (0 disables the interval, not the gate).")


class FairnessPolicy(_Strict):
    max_demographic_parity_difference: float = Field(0.20, ge=0, le=1, description="Largest allowed Fairlearn demographic-parity difference for any sensitive column.")
    max_equalized_odds_difference: float = Field(0.20, ge=0, le=1, description="Largest allowed Fairlearn equalized-odds difference for any sensitive column.")
    max_group_drop_vs_parent: float = Field(0.05, ge=0, le=1, description="Largest allowed drop in any group's balanced accuracy of a compressed candidate against its parent.")


class RobustnessPolicy(_Strict):
    noise_scale: float = Field(0.1, ge=0, le=10, description="Gaussian noise added to numeric features, as a fraction of each feature's standard deviation on train.")
    category_swap_rate: float = Field(0.05, ge=0, le=1, description="Share of categorical values replaced by another category seen in train.")
    max_flip_rate: float = Field(0.15, ge=0, le=1, description="Largest allowed share of test predictions that change under the perturbation.")
    seed: int = Field(0, description="Seed of the perturbation, so the gate is reproducible.")


class DriftPolicy(_Strict):
    max_drifted_share: float = Field(0.3, ge=0, le=1, description="Largest allowed share of feature columns that Evidently finds drifted (training data vs current data).")


class LeakagePolicy(_Strict):
    max_single_feature_auc: float = Field(0.95, ge=0.5, le=1, description="Largest allowed ROC AUC of any single feature predicting the label on its own.")
    max_excess_duplicate_share: float = Field(0.10, ge=0, le=1, description="Largest allowed estimated share of test rows copied from train: the test rows with an exact copy in train beyond what the data's own duplication explains (see docs/gates.md).")


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
