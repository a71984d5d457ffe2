"""What a predict request must look like, checked against the served version's input contract.

Every refusal names the field: ``rows[3].age``. The contract itself encodes an unseen category
or a missing value silently (the gates rely on that for robustness); a client of the server
gets told instead, because a silent default would answer a question nobody asked.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gatewise.encoding import InputSpec

MAX_BODY_BYTES = 1 << 20  # 1 MiB: about 5,000 rows of the bundled data's seven features
MAX_ROWS = 10_000


class RequestError(Exception):
    """A request the server refuses: HTTP ``status``, a one-line ``message``, the ``field`` at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    def document(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


def _constant(name: str) -> float:
    return float(name)  # NaN, Infinity: kept, so that the row check names the field


def parse_body(body: bytes) -> list[Any]:
    """The ``rows`` list of a JSON body ``{"rows": [{column: value, ...}, ...]}``."""
    try:
        document = json.loads(body, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"body is not JSON: {str(exc)[:120]}", "body") from None
    if not isinstance(document, dict) or "rows" not in document:
        raise RequestError(422, 'body must be a JSON object {"rows": [{column: value, ...}, ...]}', "rows")
    rows = document["rows"]
    if not isinstance(rows, list) or not rows:
        raise RequestError(422, "'rows' must be a non-empty list of objects", "rows")
    if len(rows) > MAX_ROWS:
        raise RequestError(413, f"{len(rows)} rows in one request; at most {MAX_ROWS}", "rows")
    return rows


def check_rows(rows: list[Any], spec: InputSpec) -> list[dict[str, Any]]:
    """Each row reduced to the contract's columns, every value checked; RequestError names the first bad one.

    Numeric columns take JSON numbers (not booleans, not strings), finite; categorical columns take
    a value of the training vocabulary (a string, or an integer whose text is in it). Columns the
    contract does not name are ignored. Nulls are refused: say what the value is.
    """
    vocabularies = {name: frozenset(vocab) for name, vocab in spec.categorical}
    checked = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(422, f"row {i} is not a JSON object", f"rows[{i}]")
        clean: dict[str, Any] = {}
        for column in spec.numeric:
            value = _present(row, i, column)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RequestError(422, f"{column} must be a number, got {_show(value)}", f"rows[{i}].{column}")
            if not math.isfinite(value):
                raise RequestError(422, f"{column} must be a finite number, got {value}", f"rows[{i}].{column}")
            clean[column] = float(value)
        for column, vocabulary in vocabularies.items():
            value = _present(row, i, column)
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise RequestError(422, f"{column} must be a category (a string), got {_show(value)}", f"rows[{i}].{column}")
            if str(value) not in vocabulary:
                known = ", ".join(sorted(vocabulary)[:20]) + (", ..." if len(vocabulary) > 20 else "")
                raise RequestError(422, f"unknown category {_show(value)} for {column} (known: {known})", f"rows[{i}].{column}")
            clean[column] = str(value)
        checked.append(clean)
    return checked


def _present(row: dict[str, Any], i: int, column: str) -> Any:
    if column not in row:
        raise RequestError(422, f"missing feature column '{column}'", f"rows[{i}].{column}")
    value = row[column]
    if value is None:
        raise RequestError(422, f"{column} is null; send its value", f"rows[{i}].{column}")
    return value


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
