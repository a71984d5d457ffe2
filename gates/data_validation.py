"""The data gate, run before training: a Great Expectations suite built from the dataset's schema."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gatewise.gates.evidence import json_ready
from gatewise.types import GateResult, Schema

if TYPE_CHECKING:
    import pandas as pd

GATE = "data_validation"

# dtype names Great Expectations reports for pandas columns that hold numbers. Booleans count:
# the schema inference (gatewise.data.build_dataset) treats them as numeric too.
NUMERIC_TYPES = [
    *(f"{kind}{bits}" for kind in ("int", "uint", "float") for bits in (8, 16, 32, 64)),
    *(f"{kind}{bits}" for kind in ("Int", "UInt") for bits in (8, 16, 32, 64)),
    "Float32",
    "Float64",
    "bool",
    "boolean",
]


def build_suite(frame: pd.DataFrame, schema: Schema) -> Any:
    """The expectations a table must meet before anything is trained on it."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="gatewise_data_gate")
    required = list(dict.fromkeys([*schema.features, schema.label, *schema.sensitive]))
    for column in required:
        suite.add_expectation(gxe.ExpectColumnToExist(column=column))
    present = set(frame.columns)
    # A missing column already fails above; expectations on it would only add tracebacks.
    for column in schema.numeric:
        if column in present:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_TYPES))
    if schema.label in present:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=schema.label))
        suite.add_expectation(gxe.ExpectColumnUniqueValueCountToBeBetween(column=schema.label, min_value=2))
        suite.add_expectation(gxe.ExpectColumnDistinctValuesToContainSet(column=schema.label, value_set=[schema.positive]))
    return suite


def _as_validated(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Labels are compared as strings (Schema.positive), so "1", 1 and the positive "1" agree."""
    if schema.label not in frame.columns:
        return frame
    label = frame[schema.label]
    return frame.assign(**{schema.label: label.astype("object").where(label.isna(), label.astype(str))})


def _failure(result: dict[str, Any]) -> dict[str, Any]:
    config = result["expectation_config"]
    kwargs = {key: value for key, value in config["kwargs"].items() if key != "batch_id"}
    observed = result.get("result", {})
    failure = {"expectation": config["type"], **kwargs}
    for key in ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list"):
        if key in observed:
            failure[key] = observed[key]
    if result.get("exception_info", {}).get("raised_exception"):
        failure["exception"] = result["exception_info"]["exception_message"]
    return failure


def validate_dataset(frame: pd.DataFrame, schema: Schema) -> GateResult:
    """Run the data gate; ``value`` is the number of failed expectations (threshold 0)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # The child logger that says it has its own level once GX is imported, so set it directly.
    gx_logger = logging.getLogger("great_expectations.data_context.types.base")
    level = gx_logger.level
    # GX narrates an ephemeral context at INFO ("Created temporary directory ... docs site");
    # the run's log should show the verdict, not that.
    gx_logger.setLevel(max(level, logging.WARNING))
    try:
        # Ephemeral: in-memory stores, no project directory, nothing written to disk.
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("gatewise").add_dataframe_asset("table")
        batch = asset.add_batch_definition_whole_dataframe("whole_table").get_batch(
            batch_parameters={"dataframe": _as_validated(frame, schema)}
        )
        outcome = batch.validate(build_suite(frame, schema)).to_json_dict()
    finally:
        gx_logger.setLevel(level)
    failures = [_failure(result) for result in outcome["results"] if not result["success"]]
    total = len(outcome["results"])
    if failures:
        named = ", ".join(
            f"{failure['expectation'].removeprefix('expect_')}({failure.get('column', '')})" for failure in failures
        )
        summary = f"{len(failures)} of {total} expectations failed: {named}"
    else:
        summary = f"all {total} expectations met on {len(frame)} rows"
    details = {
        "rows": len(frame),
        "expectations": total,
        "failed": failures,
        "great_expectations_version": gx.__version__,
    }
    return GateResult(
        gate=GATE,
        passed=not failures,
        value=float(len(failures)),
        threshold=0.0,
        summary=summary,
        details=json_ready(details),
    )
