"""Leakage gate: rows shared across the split beyond the data's own duplication, and label proxies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatewise.data import label_vector
from gatewise.gates.evidence import json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.gates.metrics import roc_auc
from gatewise.types import GateResult, Schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

GATE = "leakage"


def _row_keys(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """One hash per row over features and label, blind to dtype (1 read as int or float alike)."""
    import pandas as pd

    columns = [*schema.features, schema.label]
    canonical = pd.DataFrame(
        {
            column: (
                pd.to_numeric(frame[column], errors="coerce").astype("float64")
                if column in schema.numeric
                else frame[column].astype("object").where(frame[column].notna(), None).astype(str)
            )
            for column in columns
        }
    )
    return pd.util.hash_pandas_object(canonical, index=False).to_numpy()


def duplicate_overlap(train: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """How many test rows were copied from train, beyond what the data's own duplication explains.

    ``observed``: the share of test rows with an exact copy (features and label) in train.
    ``expected``: the share of train rows with an exact copy among the *other* train rows. Under a
    random split both estimate the same thing (does a row meet a copy of itself among about
    n_train rows drawn from the same data), so on clean data they agree: on arrests both are
    about 0.53 although no row leaked.
    If a share c of the test rows were copied from train and the rest split at random, then
    observed = c + (1 - c) * expected, so c = (observed - expected) / (1 - expected): the
    ``excess_share`` gated here. The check cannot see duplication made before the split (e.g.
    oversampling), which is indistinguishable from a dataset's natural duplicates.
    """
    import math

    import numpy as np
    import pandas as pd

    train_keys, test_keys = _row_keys(train, schema), _row_keys(test, schema)
    in_train = np.isin(test_keys, train_keys)
    counts = pd.Series(train_keys).map(pd.Series(train_keys).value_counts()).to_numpy()
    observed = float(in_train.mean()) if len(test_keys) else 0.0
    expected = float((counts > 1).mean()) if len(train_keys) else 0.0
    room = 1.0 - expected  # the share of test rows the data's duplication leaves without a copy
    excess = (observed - expected) / room if room > 0 else 0.0
    # Binomial standard error of the excess: how far clean data may stray by chance (small tables).
    parts = ((observed, len(test_keys)), (expected, len(train_keys)))
    variance = sum(share * (1 - share) / rows for share, rows in parts if rows)
    return {
        "test_rows": len(test_keys),
        "test_rows_with_copy_in_train": int(in_train.sum()),
        "share_with_copy_in_train": observed,
        "expected_share_from_train_duplication": expected,
        "excess_share": excess,
        "excess_share_standard_error": math.sqrt(variance) / room if room > 0 else None,
    }


def single_feature_auc(train: pd.DataFrame, test: pd.DataFrame, schema: Schema) -> dict[str, float | None]:
    """ROC AUC on test of each feature alone as a score for the label.

    Numeric: the raw value (missing: the train median), max(auc, 1 - auc) since either direction
    leaks. Categorical: each category's positive rate learned on train (unseen or missing: the
    train base rate), so a relabelled copy of the label scores 1.0 but an id column scores 0.5.
    """
    import pandas as pd

    y_train, y_test = label_vector(train, schema), label_vector(test, schema)
    result: dict[str, float | None] = {}
    for column in schema.numeric:
        values = pd.to_numeric(test[column], errors="coerce").astype("float64")
        values = values.fillna(pd.to_numeric(train[column], errors="coerce").median()).fillna(0.0)
        auc = roc_auc(y_test, values.to_numpy())
        result[column] = None if auc is None else max(auc, 1.0 - auc)
    for column in schema.categorical:
        rates = pd.Series(y_train).groupby(train[column].astype(str).to_numpy()).mean()
        base_rate = float(y_train.mean()) if len(y_train) else 0.5
        learned = test[column].astype(str).map(rates).where(test[column].notna(), base_rate).fillna(base_rate)
        result[column] = roc_auc(y_test, learned.to_numpy(dtype="float64"))
    return result


def leakage(inputs: GateInputs) -> GateResult:
    """Fails on excess train/test duplicates or on any feature that predicts the label by itself.

    ``value`` is the worst single-feature AUC. An undefined AUC (a single label class on test)
    cannot rule leakage out, so it fails.
    """
    policy = inputs.policy.leakage
    duplicates = duplicate_overlap(inputs.train, inputs.test, inputs.schema)
    aucs = single_feature_auc(inputs.train, inputs.test, inputs.schema)
    failed: list[str] = []
    if duplicates["excess_share"] > policy.max_excess_duplicate_share:
        failed.append("max_excess_duplicate_share")
    defined = {column: auc for column, auc in aucs.items() if auc is not None}
    worst_column = max(defined, key=defined.__getitem__) if defined else None
    worst = defined[worst_column] if worst_column is not None else None
    leaking = sorted(column for column, auc in defined.items() if auc > policy.max_single_feature_auc)
    if leaking or worst is None:
        failed.append("max_single_feature_auc")

    duplicates_ok = "max_excess_duplicate_share" not in failed
    auc_text = (
        f"worst single-feature AUC {worst:.3f} {'<=' if not leaking else '>'} {policy.max_single_feature_auc:.3f} ({worst_column})"
        if worst is not None
        else "single-feature AUC undefined (one label class on test)"
    )
    summary = (
        f"{auc_text}; test rows with a copy in train {duplicates['share_with_copy_in_train']:.3f} "
        f"(data's own duplication explains {duplicates['expected_share_from_train_duplication']:.3f}), "
        f"excess {duplicates['excess_share']:.3f} {'<=' if duplicates_ok else '>'} {policy.max_excess_duplicate_share:.3f}"
    )
    details = {
        "duplicates": {**duplicates, "max_excess_duplicate_share": policy.max_excess_duplicate_share},
        "single_feature_auc": aucs,
        "worst_feature": worst_column,
        "leaking_features": leaking,
        "max_single_feature_auc": policy.max_single_feature_auc,
        "failed_checks": failed,
    }
    return GateResult(
        gate=GATE,
        passed=not failed,
        value=number(worst),
        threshold=policy.max_single_feature_auc,
        summary=summary,
        details=json_ready(details),
    )
