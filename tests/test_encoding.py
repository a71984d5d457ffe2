"""InputSpec.encode: whole-column numpy, with exactly the matrix the earlier per-column pandas
encoding gave (the models in the registry were gated and signed on that matrix)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gatewise.encoding import InputSpec
from gatewise.errors import UsageError


def pandas_encode(spec: InputSpec, frame: pd.DataFrame) -> np.ndarray:
    """The earlier implementation, kept here as the reference the fast one must equal."""
    out = np.empty((len(frame), len(spec.columns)), dtype=np.float32)
    for i, (column, fill) in enumerate(zip(spec.numeric, spec.numeric_fill)):
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        out[:, i] = values.fillna(fill).to_numpy()
    offset = len(spec.numeric)
    for j, (column, vocabulary) in enumerate(spec.categorical):
        codes = {value: k + 1 for k, value in enumerate(vocabulary)}
        raw = frame[column]
        mapped = raw.astype(str).map(codes).where(raw.notna(), 0)
        out[:, offset + j] = mapped.fillna(0).to_numpy(dtype=np.float32)
    return out


@pytest.fixture(scope="module")
def arrests() -> tuple[InputSpec, pd.DataFrame]:
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True)
    numeric = tuple(c for c in frame.columns if frame[c].dtype.kind in "iufb" and c != "released")
    categorical = tuple(c for c in frame.columns if c not in numeric and c != "released")
    return InputSpec.fit(frame, numeric, categorical), frame


def test_the_bundled_data_encodes_to_the_same_matrix_as_before(arrests):
    spec, frame = arrests
    for rows in (frame, frame.iloc[[7]], frame.iloc[:0], frame.sample(frac=1, random_state=1)):
        encoded = spec.encode(rows)
        assert encoded.dtype == np.float32 and encoded.shape == (len(rows), len(spec.columns))
        assert np.array_equal(encoded, pandas_encode(spec, rows))


def test_missing_unseen_and_oddly_typed_values_encode_as_before():
    spec = InputSpec(numeric=("age", "flag"), numeric_fill=(30.0, 0.0),
                     categorical=(("sex", ("Female", "Male")), ("code", ("1", "2", "nan")), ("empty", ())))
    frame = pd.DataFrame({
        "age": ["41", None, "n/a", 17.5, np.nan, 3],  # text numbers, missing, unparseable
        "flag": [True, False, True, False, True, False],
        "sex": ["Male", None, "Other", "Female", np.nan, "Male"],  # missing and unseen
        "code": [1, 2, 3, np.nan, 2, 1],  # numbers in a categorical column, read as their text
        "empty": ["a", None, "b", "c", "d", "e"],  # no vocabulary: always 0
    })
    expected = pandas_encode(spec, frame)
    assert np.array_equal(spec.encode(frame), expected)
    assert expected[:, 2].tolist() == [2, 0, 0, 1, 0, 2]
    nullable = frame.assign(age=pd.array([41, None, 5, 17, None, 3], dtype="Int64"), sex=frame["sex"].astype("category"))
    assert np.array_equal(spec.encode(nullable), pandas_encode(spec, nullable))


def test_a_missing_feature_column_is_one_clear_error(arrests):
    spec, frame = arrests
    with pytest.raises(UsageError, match="missing feature column"):
        spec.encode(frame.drop(columns=["age"]))
