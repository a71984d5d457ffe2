"""Drift gate: does the training data still describe the current data, where this model looks?

Evidently (new API) measures each column's drift as a distance; the gate weighs each distance by
how much the candidate relies on the column (permutation importance on the test split) and adds
the drift of the candidate's own predictions, train vs current.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from gatewise.data import fingerprint
from gatewise.gates.evidence import failure_reason, json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.types import GateResult, Schema

if TYPE_CHECKING:
    import pandas as pd

GATE = "drift"
# Distances, not p-values, at every sample size: on large samples every test is significant, while
# a distance (normed Wasserstein in standard deviations, Jensen-Shannon) stays a size of change.
NUMERIC_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"
# A prediction spread below this (a near-constant model) would turn any wobble into huge drift.
MIN_PREDICTION_SPREAD = 0.001
IMPORTANCE_SEED = 0
# Sample sizes of the candidate-specific work: a dynamically quantized model is scored row by row
# (as the server answers), so every scored row counts; these sizes keep the estimates steady.
IMPORTANCE_ROWS = 500
PREDICTION_ROWS = 2000

# Drift does not depend on the candidate: every candidate of a run compares the same two tables.
# The memo is keyed by the tables' content (sha256 of their row hashes) and the column lists,
# so a changed table can never reuse a stale report; it keeps the last few results only.
_MEMO_SIZE = 8
_memo: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
_memo_lock = threading.Lock()


def _evidently_columns(reference: pd.DataFrame, current: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Evidently's per-column drift tests; per column: distance, method, threshold, drifted.

    Each column is declared numerical or categorical from the schema (Evidently would otherwise
    take integer columns such as year and checks as categorical) and gets Evidently's own stat
    test, called directly: the same function its DataDriftPreset runs per column, without the
    Report around it, which spent 1 to 5 s here building plotly figures no one reads.
    Missing values are left out of both sides, as Evidently's report does.
    """
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        # Evidently's import trips deprecations inside its own dependencies (numpy.core, litestar).
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently.legacy.calculations.stattests import get_stattest
        from evidently.legacy.core import ColumnType

    columns: dict[str, Any] = {}
    for column in schema.features:
        numeric = column in schema.numeric
        kind = ColumnType.Numerical if numeric else ColumnType.Categorical
        method = NUMERIC_METHOD if numeric else CATEGORICAL_METHOD
        if numeric:
            ref, cur = (pd.to_numeric(frame[column], errors="coerce").dropna() for frame in (reference, current))
        else:
            ref, cur = (frame[column].dropna().astype(str) for frame in (reference, current))
        if ref.empty or cur.empty:  # no values to compare is not evidence of no drift
            raise RuntimeError(f"column '{column}' has no values in the {'reference' if ref.empty else 'current'} data")
        test = get_stattest(ref, cur, kind, method)
        outcome = test(ref, cur, kind, None)
        columns[column] = {
            "value": float(outcome.drift_score),
            "method": method,
            "threshold": float(outcome.actual_threshold),
            "drifted": bool(outcome.drifted),
        }
    return columns


def _drift_columns(
    reference: pd.DataFrame, current: pd.DataFrame, schema: Schema, digests: tuple[str, str]
) -> dict[str, Any]:
    """Per-column drift, computed once per (reference content, current content, column lists)."""
    key = (*digests, *schema.numeric, "|", *schema.categorical)
    # The lock is held while Evidently runs, so candidates gated in parallel threads wait for
    # the first report instead of each computing their own.
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]
        columns = _evidently_columns(reference, current, schema)
        _memo[key] = columns
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
        return columns


def permutation_importance(inputs: GateInputs, repeats: int) -> dict[str, float]:
    """How much the candidate relies on each feature: the mean |change| of its predicted probability
    on (a seeded sample of at most IMPORTANCE_ROWS of) the test rows when that column alone is
    shuffled, averaged over ``repeats`` seeded shuffles; all shuffles are scored in one call.

    Measured on predictions rather than on a metric, so it needs no label and is never undefined;
    a column the model ignores scores 0, whatever its drift.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(IMPORTANCE_SEED)
    rows = np.sort(rng.choice(len(inputs.test), size=min(len(inputs.test), IMPORTANCE_ROWS), replace=False))
    sample = inputs.test.iloc[rows].reset_index(drop=True)
    base = np.asarray(inputs.scores, dtype="float64")[rows]
    features = list(inputs.schema.features)
    copies = []
    for column in features:
        for _ in range(repeats):
            shuffled = sample.copy()
            shuffled[column] = sample[column].to_numpy()[rng.permutation(len(sample))]
            copies.append(shuffled)
    scores = np.asarray(inputs.predict_proba(pd.concat(copies, ignore_index=True)), dtype="float64")
    moved = np.abs(scores.reshape(len(features), repeats, len(sample)) - base).mean(axis=(1, 2))
    return {column: float(value) for column, value in zip(features, moved, strict=True)}


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=IMPORTANCE_SEED)


def prediction_drift(reference: Any, current: Any) -> dict[str, Any]:
    """Wasserstein distance between the two predicted-probability distributions, divided by the
    reference's spread: the measure Evidently applies to a numeric column of this size."""
    import numpy as np
    from scipy.stats import wasserstein_distance

    spread = max(float(np.std(reference)), MIN_PREDICTION_SPREAD)
    return {
        "method": "wasserstein_distance_norm",
        "value": float(wasserstein_distance(reference, current) / spread),
        "reference_mean": float(np.mean(reference)),
        "current_mean": float(np.mean(current)),
        "reference_rows": int(len(reference)),
        "current_rows": int(len(current)),
    }


def drift(inputs: GateInputs) -> GateResult:
    """Importance-weighted column drift and prediction drift, reference = train, current = inputs.current.

    Fails when the importance-weighted drift (sum over features of the candidate's share of
    permutation importance times the column's drift distance) exceeds max_weighted_drift, when
    the candidate's own predictions drift more than max_prediction_drift, or when more than
    max_drifted_share of the columns drift, however little the model uses them (a backstop).
    ``value`` stays the drifted-column share (monitoring reads it); the weighted drift and the
    prediction drift sit beside it in ``details``.
    """
    import numpy as np

    policy = inputs.policy.drift
    features = list(inputs.schema.features)
    missing = [column for column in features if column not in inputs.current.columns]
    if missing:
        summary = f"current data lacks feature column(s): {', '.join(missing)}"
        return GateResult(
            gate=GATE,
            passed=False,
            value=None,
            threshold=policy.max_drifted_share,
            summary=summary,
            details={"missing_columns": missing, "failed_checks": ["missing_columns"], "reason": f"drift failed: {summary}"},
        )
    reference, current = inputs.train[features], inputs.current[features]
    digests = (fingerprint(reference), fingerprint(current))
    columns = _drift_columns(reference, current, inputs.schema, digests)
    drifted = [column for column in features if columns[column]["drifted"]]
    share = len(drifted) / len(features)

    importance = permutation_importance(inputs, policy.importance_repeats)
    total = sum(max(value, 0.0) for value in importance.values())
    weights = {c: (max(importance[c], 0.0) / total if total > 0 else 1.0 / len(features)) for c in features}
    contributions = {c: weights[c] * float(columns[c]["value"]) for c in features}
    weighted = float(sum(contributions.values()))
    for column in features:
        columns[column] = {**columns[column], "importance": importance[column], "weight": weights[column],
                           "weighted_drift": contributions[column]}
    # The current scores are the test scores when current is the test split (no --current).
    current_scores = inputs.scores if inputs.current is inputs.test else inputs.predict_proba(_sample(inputs.current, PREDICTION_ROWS))
    predictions = prediction_drift(
        np.asarray(inputs.predict_proba(_sample(inputs.train, PREDICTION_ROWS)), dtype="float64"),
        np.asarray(current_scores, dtype="float64"),
    )

    failed: list[str] = []
    if not weighted <= policy.max_weighted_drift:
        failed.append("max_weighted_drift")
    if not predictions["value"] <= policy.max_prediction_drift:
        failed.append("max_prediction_drift")
    if share > policy.max_drifted_share:
        failed.append("max_drifted_share")
    top = sorted(features, key=lambda c: contributions[c], reverse=True)[:2]
    summary = (
        f"weighted drift {weighted:.3f} {'>' if 'max_weighted_drift' in failed else '<='} {policy.max_weighted_drift:.3f} "
        f"(most: {', '.join(f'{c} {contributions[c]:.3f}' for c in top)}); "
        f"prediction drift {predictions['value']:.3f} {'>' if 'max_prediction_drift' in failed else '<='} "
        f"{policy.max_prediction_drift:.3f}; {len(drifted)} of {len(features)} feature columns drifted, share {share:.3f} "
        f"{'>' if 'max_drifted_share' in failed else '<='} {policy.max_drifted_share:.3f}"
        + (f" ({', '.join(drifted)})" if drifted else "")
    )
    details = {
        "reference": "train split",
        "reference_rows": len(reference),
        "current_rows": len(current),
        "reference_fingerprint": digests[0],
        "current_fingerprint": digests[1],
        "columns": columns,
        "drifted_columns": drifted,
        "drifted_share": share,
        "max_drifted_share": policy.max_drifted_share,
        "weighted_drift": weighted,
        "max_weighted_drift": policy.max_weighted_drift,
        "importance": {"method": "mean |change in P(positive)| when the column is shuffled, test split",
                       "rows": min(len(inputs.test), IMPORTANCE_ROWS), "repeats": policy.importance_repeats,
                       "seed": IMPORTANCE_SEED},
        "prediction_drift": predictions,
        "max_prediction_drift": policy.max_prediction_drift,
        "methods": sorted({column["method"] for column in columns.values()}),
        "failed_checks": failed,
        "reason": failure_reason(GATE, failed, summary),
    }
    return GateResult(
        gate=GATE,
        passed=not failed,
        value=number(share),
        threshold=policy.max_drifted_share,
        summary=summary,
        details=json_ready(details),
    )
