"""From a source table to a typed Dataset, its fingerprints and its deterministic split."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from gatewise.errors import UsageError
from gatewise.types import Dataset, Schema, Split

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gatewise.hookspecs import SourceTable


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or parquet file; an unreadable file is a UsageError naming it."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise UsageError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise UsageError(f"{path}: unsupported data file type '{suffix}' (use .csv or .parquet)")
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"{path}: cannot read data: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if frame.empty:
        raise UsageError(f"{path}: the table has no rows")
    return frame


def as_times(values: pd.Series) -> pd.Series:
    """A time column as numbers (years, epochs) when every value is one, else as UTC datetimes."""
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum():
        return numeric
    return pd.to_datetime(values, errors="coerce", utc=True, format="mixed")


def build_dataset(
    table: SourceTable, label: str | None, positive: str | None, sensitive: tuple[str, ...] | None,
    id_column: str | None = None, time_column: str | None = None,
) -> Dataset:
    """Apply the user's choices over the source's defaults and infer feature types.

    A declared id or time column is not a feature: the model never reads it; the leakage gate does.
    """
    frame = table.frame
    label = label or table.label
    positive = str(positive if positive is not None else table.positive)
    if not label or not positive:  # a source without defaults, such as a --data file
        raise UsageError(f"{table.name} has no default label: pass --label COLUMN and --positive VALUE")
    sensitive = tuple(sensitive) if sensitive is not None else tuple(table.sensitive)
    if label not in frame.columns:
        raise UsageError(f"label column '{label}' not found in {table.name} (columns: {', '.join(map(str, frame.columns))})")
    for column in sensitive:
        if column not in frame.columns:
            raise UsageError(f"sensitive column '{column}' not found in {table.name}")
        if column == label:
            raise UsageError(f"sensitive column '{column}' is the label")
    for flag, column in (("--id", id_column), ("--time", time_column)):
        if column is None:
            continue
        if column not in frame.columns:
            raise UsageError(f"{flag} column '{column}' not found in {table.name} (columns: {', '.join(map(str, frame.columns))})")
        if column == label or column in sensitive:
            raise UsageError(f"{flag} column '{column}' is the label or a sensitive column")
    if id_column is not None and id_column == time_column:
        raise UsageError(f"'{id_column}' is declared both as the id and as the time column")
    if time_column is not None:
        times = frame[time_column]
        if as_times(times).notna().sum() != len(times):
            raise UsageError(f"--time column '{time_column}' holds values that are neither numbers nor dates (or is missing some)")
    values = set(frame[label].dropna().astype(str).unique())
    if positive not in values:
        raise UsageError(f"positive label value '{positive}' does not occur in column '{label}' (values: {', '.join(sorted(values)[:10])})")
    numeric, categorical = [], []
    for column in frame.columns:
        if column in (label, id_column, time_column):
            continue
        kind = frame[column].dtype.kind
        (numeric if kind in "iufb" else categorical).append(str(column))
    if not numeric and not categorical:
        raise UsageError(f"{table.name} has no feature columns besides the label '{label}'")
    schema = Schema(
        label=label, positive=positive, numeric=tuple(numeric), categorical=tuple(categorical), sensitive=sensitive,
        id_column=id_column, time_column=time_column,
    )
    return Dataset(name=table.name, frame=frame, schema=schema, fingerprint=fingerprint(frame))


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the column names and every row's hash, in order: equal tables, equal digests."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(row_hashes(frame).tobytes())
    return digest.hexdigest()


def label_vector(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """0/1 per row: 1 where the label equals the positive value."""
    return (frame[schema.label].astype(str) == schema.positive).to_numpy(dtype="int64")


def split_dataset(dataset: Dataset, seed: int, test_fraction: float, kind: str = "random") -> Split:
    """Deterministic split: the same data and seed give the same rows every run.

    ``random``: stratified by the label. ``time``: out of time, the latest ``test_fraction`` of
    the rows by the declared time column are the test split (ties keep the table's order).
    """
    from sklearn.model_selection import train_test_split

    frame = dataset.frame[dataset.frame[dataset.schema.label].notna()].reset_index(drop=True)
    if kind == "time":
        column = dataset.schema.time_column
        if column is None:
            raise UsageError("--split time needs a time column: pass --time COLUMN or set [data] time_column")
        ordered = frame.iloc[as_times(frame[column]).argsort(kind="stable").to_numpy()]
        cut = len(ordered) - max(1, round(test_fraction * len(ordered)))
        train, test = ordered.iloc[:cut], ordered.iloc[cut:]
    else:
        train, test = train_test_split(
            frame, test_size=test_fraction, random_state=seed, stratify=label_vector(frame, dataset.schema)
        )
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    return Split(train=train, test=test, seed=seed, train_fingerprint=fingerprint(train), test_fingerprint=fingerprint(test))
