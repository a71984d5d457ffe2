"""Shared material of the gate tests: the arrests split and real fitted models, built once per session.

Plain cached functions (not fixtures) so that every tests/test_gates_*.py module shares one copy
without a conftest.py of its own. This module holds no tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gatewise.data import label_vector, split_dataset
from gatewise.gates.inputs import GateInputs
from gatewise.config import load_settings
from gatewise.policy import GatePolicy
from gatewise.types import Dataset, Schema, Split

ARRESTS_SCHEMA = Schema(
    label="released",
    positive="Yes",
    numeric=("year", "age", "checks"),
    categorical=("colour", "sex", "employed", "citizen"),
    sensitive=("colour", "sex"),
)


@cache
def arrests_split() -> Split:
    """The bundled data, split as the flow splits it by default (stratified 70/30, seed 42)."""
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True)
    return split_dataset(Dataset("arrests", frame, ARRESTS_SCHEMA, "unused"), seed=42, test_fraction=0.3)


@dataclass(frozen=True, eq=False)
class Fitted:
    """A fitted sklearn model and the columns it reads, scored like the flow's ONNX scorer."""

    model: Any
    columns: tuple[str, ...]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw table in, P(positive) per row out; a missing category reads as unseen, as in ONNX."""
        columns = frame[list(self.columns)]
        text = [c for c in self.columns if columns[c].dtype == object]
        if text:
            columns = columns.assign(**{c: columns[c].where(columns[c].notna(), "<missing>") for c in text})
        return self.model.predict_proba(columns)[:, 1]


def fit_logreg(
    train: pd.DataFrame, schema: Schema, columns: Sequence[str] | None = None, target: np.ndarray | None = None
) -> Fitted:
    """A class-weighted logistic regression on one-hot and standardized features: our stand-in MLP."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = list(columns or schema.features)
    numeric = [c for c in columns if c in schema.numeric]
    categorical = [c for c in columns if c not in schema.numeric]
    # Missing numbers get the train median, as the ONNX input contract fills them.
    encode = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = make_pipeline(encode, LogisticRegression(class_weight="balanced", max_iter=1000))
    model.fit(train[columns], label_vector(train, schema) if target is None else target)
    return Fitted(model, tuple(columns))


@cache
def arrests_model() -> Fitted:
    return fit_logreg(arrests_split().train, ARRESTS_SCHEMA)


@cache
def demo_policy() -> GatePolicy:
    """The policy in the repository's gatewise.toml, which `make demo` runs with."""
    return load_settings(Path(__file__).parent.parent / "gatewise.toml").gates


def arrests_inputs(**changes: Any) -> GateInputs:
    """GateInputs for the stand-in model on the arrests split; keyword arguments replace fields.

    When ``predict_proba`` is replaced and ``scores`` is not, the scores are recomputed from it.
    """
    split = arrests_split()
    base = GateInputs(
        candidate="parent",
        schema=ARRESTS_SCHEMA,
        train=split.train,
        test=split.test,
        current=split.test,
        predict_proba=arrests_model().predict_proba,
        scores=_scores(),
        policy=demo_policy(),
    )
    if "predict_proba" in changes and "scores" not in changes:
        changes["scores"] = changes["predict_proba"](changes.get("test", split.test))
    return replace(base, **changes)


@cache
def _scores() -> np.ndarray:
    return arrests_model().predict_proba(arrests_split().test)
