"""The built-in data sources: the bundled arrests data and --data files."""

from __future__ import annotations

import pytest

from gatewise.data import build_dataset
from gatewise.errors import UsageError
from gatewise.plugins.data_sources import ArrestsSource, FileSource


@pytest.fixture(scope="module")
def arrests():
    return ArrestsSource().load(None)


def test_arrests_loads_the_bundled_table_with_its_schema_defaults(arrests):
    assert arrests.name == "arrests"
    assert len(arrests.frame) == 5226
    assert (arrests.label, arrests.positive, arrests.sensitive) == ("released", "Yes", ("colour", "sex"))
    assert not arrests.frame.isna().any().any()
    assert arrests.frame["released"].value_counts().to_dict() == {"Yes": 4334, "No": 892}


def test_arrests_features_get_the_right_kinds(arrests):
    schema = build_dataset(arrests, None, None, None).schema
    assert schema.numeric == ("year", "age", "checks")
    assert schema.categorical == ("colour", "sex", "employed", "citizen")


def test_arrests_refuses_a_data_file(tmp_path):
    with pytest.raises(UsageError, match="bundled"):
        ArrestsSource().load(tmp_path / "other.csv")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_file_source_reads_csv_and_parquet(arrests, tmp_path, suffix):
    path = tmp_path / f"toronto.{suffix}"
    if suffix == "csv":
        arrests.frame.to_csv(path, index=False)
    else:
        arrests.frame.to_parquet(path, index=False)
    table = FileSource().load(path)
    assert table.name == "toronto"
    assert len(table.frame) == 5226
    dataset = build_dataset(table, "released", "Yes", ("colour",))
    assert dataset.schema.numeric == ("year", "age", "checks")
    assert dataset.schema.sensitive == ("colour",)


@pytest.mark.parametrize(("label", "positive"), [(None, None), ("released", None)])
def test_file_source_needs_the_user_to_name_label_and_positive(arrests, tmp_path, label, positive):
    path = tmp_path / "toronto.csv"
    arrests.frame.to_csv(path, index=False)
    table = FileSource().load(path)
    with pytest.raises(UsageError, match="--label COLUMN and --positive VALUE"):
        build_dataset(table, label, positive, None)


def test_file_source_without_a_path_asks_for_data():
    with pytest.raises(UsageError, match="--data"):
        FileSource().load(None)


def test_file_source_reports_a_missing_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        FileSource().load(tmp_path / "absent.csv")
