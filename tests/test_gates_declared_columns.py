"""Declared id and time columns (--id, --time, --split time): never features; bad ones are bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gatewise.data import build_dataset, split_dataset
from gatewise.errors import UsageError
from gatewise.plugins.data_sources import ArrestsSource


def test_declared_id_and_time_columns_are_not_features():
    table = ArrestsSource().load(None)
    frame = table.frame.assign(arrest_id=range(len(table.frame)))
    dataset = build_dataset(table.__class__(**{**table.__dict__, "frame": frame}), None, None, None, "arrest_id", "year")
    assert "arrest_id" not in dataset.schema.features and "year" not in dataset.schema.features
    assert dataset.schema.id_column == "arrest_id" and dataset.schema.time_column == "year"


def test_an_out_of_time_split_tests_on_the_latest_rows():
    dataset = build_dataset(ArrestsSource().load(None), None, None, None, None, "year")
    split = split_dataset(dataset, seed=42, test_fraction=0.3, kind="time")
    assert split.test["year"].min() >= split.train["year"].max()
    assert abs(len(split.test) / (len(split.train) + len(split.test)) - 0.3) < 0.01


@pytest.mark.parametrize("id_column, time_column, message", [
    ("nope", None, "--id column 'nope' not found"),
    (None, "employed", "--time column 'employed' holds values that are neither numbers nor dates"),
    ("released", None, "--id column 'released' is the label or a sensitive column"),
    ("age", "age", "'age' is declared both as the id and as the time column"),
])
def test_a_bad_declared_column_is_a_usage_error_naming_it(id_column, time_column, message):
    with pytest.raises(UsageError, match=message):
        build_dataset(ArrestsSource().load(None), None, None, None, id_column, time_column)


def test_split_time_without_a_time_column_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "GATEWISE_HOME": str(tmp_path / "home")}
    env.pop("GATEWISE_REGISTRY_URL", None)
    done = subprocess.run([sys.executable, "-m", "gatewise.cli", "run", "--split", "time"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "gatewise: error: --split time needs a time column: pass --time COLUMN or set [data] time_column"
    assert not (tmp_path / "home" / "registry.db").exists()  # nothing recorded
