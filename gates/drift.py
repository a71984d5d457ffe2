"""Drift gate: does the training data still describe the current data? (Evidently, new API)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from gatewise.data import fingerprint
from gatewise.gates.evidence import json_ready, number
from gatewise.gates.inputs import GateInputs
from gatewise.types import GateResult, Schema

if TYPE_CHECKING:
    import pandas as pd

GATE = "drift"

# Drift does not depend on the candidate: every candidate of a run compares the same two tables.
# The memo is keyed by the tables' content (sha256 of their row hashes) and the column lists,
# so a changed table can never reuse a stale report; it keeps the last few results only.
_MEMO_SIZE = 8
_memo: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
_memo_lock = threading.Lock()


def _evidently_columns(reference: pd.DataFrame, current: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Run Evidently's DataDriftPreset; per column: drift value, method, threshold, drifted."""
    import warnings

    with warnings.catch_warnings():
        # Evidently's import trips deprecations inside its own dependencies (numpy.core, litestar).
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    # Without a DataDefinition, Evidently takes integer columns (year, checks) as categorical.
    definition = DataDefinition(numerical_columns=list(schema.numeric), categorical_columns=list(schema.categorical))
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    raw = snapshot.dict()
    # Each per-column ValueDrift test says whether Evidently judged the column drifted; that
    # avoids guessing the direction of the value (a distance drifts when high, a p-value when low).
    status = {test["metric_config"]["metric_id"]: test["status"] for test in raw["tests"]}
    columns: dict[str, Any] = {}
    for metric in raw["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        columns[config["column"]] = {
            "value": metric["value"],
            "method": config["method"],
            "threshold": config["threshold"],
            "drifted": status.get(metric["id"]) == "FAIL",
        }
    missing = set(schema.features) - set(columns)
    if missing:  # a column Evidently skipped is not evidence of no drift
        raise RuntimeError(f"Evidently reported no drift value for column(s): {', '.join(sorted(missing))}")
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


def drift(inputs: GateInputs) -> GateResult:
    """Share of feature columns Evidently finds drifted, reference = train, current = inputs.current."""
    policy = inputs.policy.drift
    features = list(inputs.schema.features)
    missing = [column for column in features if column not in inputs.current.columns]
    if missing:
        return GateResult(
            gate=GATE,
            passed=False,
            value=None,
            threshold=policy.max_drifted_share,
            summary=f"current data lacks feature column(s): {', '.join(missing)}",
            details={"missing_columns": missing},
        )
    reference, current = inputs.train[features], inputs.current[features]
    digests = (fingerprint(reference), fingerprint(current))
    columns = _drift_columns(reference, current, inputs.schema, digests)
    drifted = [column for column in features if columns[column]["drifted"]]
    share = len(drifted) / len(features)
    passed = share <= policy.max_drifted_share
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
        "methods": sorted({column["method"] for column in columns.values()}),
    }
    summary = (
        f"{len(drifted)} of {len(features)} feature columns drifted, share {share:.3f} "
        f"{'<=' if passed else '>'} {policy.max_drifted_share:.3f}"
        + (f" ({', '.join(drifted)})" if drifted else "")
    )
    return GateResult(
        gate=GATE,
        passed=passed,
        value=number(share),
        threshold=policy.max_drifted_share,
        summary=summary,
        details=json_ready(details),
    )
