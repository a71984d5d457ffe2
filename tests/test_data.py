"""Loading a table into a typed dataset: clear errors for wrong columns, a deterministic split."""

import pandas as pd
import pytest

from gatewise.data import build_dataset, fingerprint, label_vector, read_table, split_dataset
from gatewise.errors import UsageError
from gatewise.hookspecs import SourceTable


def table(frame, label="y", positive="1", sensitive=("g",)):
    return SourceTable(name="t", frame=frame, label=label, positive=positive, sensitive=sensitive)


@pytest.fixture
def frame():
    return pd.DataFrame({"x": range(40), "g": ["a", "b"] * 20, "y": [0, 1, 1, 0] * 10})


def test_types_are_inferred_and_labels_compared_as_strings(frame):
    dataset = build_dataset(table(frame), None, None, None)
    assert dataset.schema.numeric == ("x",)
    assert dataset.schema.categorical == ("g",)
    assert label_vector(frame, dataset.schema).sum() == 20


def test_missing_label_column_names_it(frame):
    with pytest.raises(UsageError, match="label column 'released' not found"):
        build_dataset(table(frame), "released", None, None)


def test_positive_value_must_occur(frame):
    with pytest.raises(UsageError, match="positive label value 'Yes' does not occur"):
        build_dataset(table(frame), None, "Yes", None)


def test_unknown_sensitive_column(frame):
    with pytest.raises(UsageError, match="sensitive column 'race' not found"):
        build_dataset(table(frame), None, None, ("race",))


def test_split_is_deterministic_and_stratified(frame):
    dataset = build_dataset(table(frame), None, None, None)
    a, b = split_dataset(dataset, 7, 0.25), split_dataset(dataset, 7, 0.25)
    assert a.train_fingerprint == b.train_fingerprint and a.test_fingerprint == b.test_fingerprint
    assert len(a.test) == 10 and label_vector(a.test, dataset.schema).sum() == 5
    assert split_dataset(dataset, 8, 0.25).test_fingerprint != a.test_fingerprint


def test_fingerprint_sees_one_changed_cell(frame):
    changed = frame.copy()
    changed.loc[3, "x"] = 99
    assert fingerprint(changed) != fingerprint(frame)


def test_corrupt_and_unknown_files(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(UsageError, match="bad.parquet: cannot read data"):
        read_table(bad)
    with pytest.raises(UsageError, match="unsupported data file type '.xlsx'"):
        (tmp_path / "a.xlsx").write_text("x")
        read_table(tmp_path / "a.xlsx")
    with pytest.raises(UsageError, match="data file not found"):
        read_table(tmp_path / "missing.csv")
