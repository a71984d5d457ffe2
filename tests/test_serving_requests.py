"""The predict request checks and the input log, without a server: every refusal names its field."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from gatewise.encoding import InputSpec
from gatewise.serving_inputs import InputLog
from gatewise.serving_requests import MAX_ROWS, RequestError, check_rows, parse_body

SPEC = InputSpec(numeric=("age", "checks"), numeric_fill=(25.0, 1.0),
                 categorical=(("colour", ("Black", "White")), ("zone", ("1", "2"))))
GOOD = {"age": 31, "checks": 2.5, "colour": "White", "zone": "2"}


def refusal(body: bytes) -> RequestError:
    with pytest.raises(RequestError) as caught:
        check_rows(parse_body(body), SPEC)
    return caught.value


def test_a_good_row_is_reduced_to_the_contract_columns_and_encodes_like_the_gates():
    rows = check_rows(parse_body(json.dumps({"rows": [{**GOOD, "id": 7}, {**GOOD, "zone": 1}]}).encode()), SPEC)
    assert rows == [{"age": 31.0, "checks": 2.5, "colour": "White", "zone": "2"},
                    {"age": 31.0, "checks": 2.5, "colour": "White", "zone": "1"}]
    encoded = SPEC.encode(pd.DataFrame.from_records(rows, columns=list(SPEC.columns)))
    assert encoded.tolist() == [[31.0, 2.5, 2.0, 2.0], [31.0, 2.5, 2.0, 1.0]]


@pytest.mark.parametrize(
    ("body", "status", "field", "says"),
    [
        (b"\xff\xfe", 400, "body", "not JSON"),
        (b"[1, 2]", 422, "rows", "JSON object"),
        (b'{"rows": {}}', 422, "rows", "non-empty list"),
        (b'{"rows": [1]}', 422, "rows[0]", "not a JSON object"),
        (b'{"rows": [{"age": 1}]}', 422, "rows[0].checks", "missing feature column 'checks'"),
        (json.dumps({"rows": [{**GOOD, "age": "31"}]}).encode(), 422, "rows[0].age", "must be a number"),
        (json.dumps({"rows": [{**GOOD, "age": False}]}).encode(), 422, "rows[0].age", "must be a number"),
        (json.dumps({"rows": [GOOD, {**GOOD, "age": float("inf")}]}).encode(), 422, "rows[1].age", "finite"),
        (b'{"rows": [{"age": NaN, "checks": 1, "colour": "White", "zone": "1"}]}', 422, "rows[0].age", "finite"),
        (json.dumps({"rows": [{**GOOD, "checks": None}]}).encode(), 422, "rows[0].checks", "null"),
        (json.dumps({"rows": [{**GOOD, "colour": "Blue"}]}).encode(), 422, "rows[0].colour", "unknown category"),
        (json.dumps({"rows": [{**GOOD, "colour": ["White"]}]}).encode(), 422, "rows[0].colour", "must be a category"),
        (json.dumps({"rows": [GOOD] * (MAX_ROWS + 1)}).encode(), 413, "rows", "at most"),
    ],
)
def test_each_bad_request_is_refused_naming_the_field(body, status, field, says):
    error = refusal(body)
    assert (error.status, error.field) == (status, field)
    assert says in error.message and "\n" not in error.message
    assert error.document() == {"error": error.message, "field": field}


def test_the_input_log_writes_whole_files_and_keeps_a_window(tmp_path):
    log = InputLog(tmp_path / "inputs", rows_per_file=10, flush_s=3600, max_files=2)
    try:
        for n in range(3):
            log.add([{**GOOD, "age": float(n)}] * 4)
            assert log.flush().suffix == ".parquet"
        log.add([GOOD])
    finally:
        log.close()
    files = sorted((tmp_path / "inputs").glob("*.parquet"))
    assert len(files) == 2  # the oldest of four files was rotated out
    assert not list((tmp_path / "inputs").glob(".*"))  # no partial file left behind
    frame = pd.concat(pd.read_parquet(f) for f in files)
    assert len(frame) == 5 and sorted(frame.columns) == sorted(GOOD)
