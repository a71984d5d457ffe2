"""What a gate is given: one candidate's scores, the data, the baselines and the policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatewise.policy import GatePolicy
from gatewise.types import Schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True, eq=False)
class GateInputs:
    candidate: str
    schema: Schema
    train: pd.DataFrame
    test: pd.DataFrame
    current: pd.DataFrame  # the drift gate's current data: --current, or the test split
    predict_proba: Callable[[pd.DataFrame], np.ndarray]  # the candidate's ONNX file in ONNX Runtime
    scores: np.ndarray  # predict_proba(test), computed once
    policy: GatePolicy
    parent_scores: np.ndarray | None = None  # set for a compressed candidate: its parent on test
    # Set for a compressed candidate: its parent's ONNX file, so that robustness and membership
    # inference compare both models on the very same perturbed or training rows.
    parent_predict_proba: Callable[[pd.DataFrame], np.ndarray] | None = None
    champion_scores: np.ndarray | None = None  # the production version re-scored on test
    champion_version: str | None = None
