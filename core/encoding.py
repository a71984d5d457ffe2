"""The model's input contract: how a raw table becomes the float matrix an ONNX model reads.

The contract travels inside the ONNX file (metadata key ``gatewise.input_spec``), so the bytes
that are gated, signed and served carry their own preprocessing vocabulary. Numeric columns go
in as they are (the model standardizes them itself); a categorical value becomes its 1-based
index in the training vocabulary, 0 for a value unseen in training or missing.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatewise.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

METADATA_KEY = "gatewise.input_spec"
INPUT_NAME = "features"
OUTPUT_NAME = "prob_positive"


@dataclass(frozen=True)
class InputSpec:
    numeric: tuple[str, ...]
    numeric_fill: tuple[float, ...]  # training median per numeric column, used for missing values
    categorical: tuple[tuple[str, tuple[str, ...]], ...]  # (column, vocabulary seen in training)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + tuple(name for name, _ in self.categorical)

    @classmethod
    def fit(cls, frame: pd.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]) -> InputSpec:
        fill = tuple(float(frame[c].median()) if frame[c].notna().any() else 0.0 for c in numeric)
        vocab = tuple((c, tuple(sorted(frame[c].dropna().astype(str).unique()))) for c in categorical)
        return cls(numeric=tuple(numeric), numeric_fill=fill, categorical=vocab)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The [N, F] float32 matrix of ``frame``: a few whole-column numpy operations per column,
        no per-row Python, so one row (the server) and 500k rows (the gates) take the same path."""
        import numpy as np

        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise UsageError(f"input is missing feature column(s): {', '.join(missing)}")
        out = np.empty((len(frame), len(self.columns)), dtype=np.float32)
        for i, (column, fill) in enumerate(zip(self.numeric, self.numeric_fill)):
            out[:, i] = numeric_values(frame[column], fill)
        offset = len(self.numeric)
        for j, ((column, _), lookup) in enumerate(zip(self.categorical, self._lookups)):
            out[:, offset + j] = lookup.codes(frame[column])
        return out

    @functools.cached_property
    def _lookups(self) -> tuple[VocabularyLookup, ...]:
        return tuple(VocabularyLookup(vocabulary) for _, vocabulary in self.categorical)

    def to_json(self) -> str:
        return json.dumps(
            {
                "numeric": list(self.numeric),
                "numeric_fill": list(self.numeric_fill),
                "categorical": [[name, list(vocab)] for name, vocab in self.categorical],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> InputSpec:
        raw = json.loads(text)
        return cls(
            numeric=tuple(raw["numeric"]),
            numeric_fill=tuple(float(v) for v in raw["numeric_fill"]),
            categorical=tuple((name, tuple(vocab)) for name, vocab in raw["categorical"]),
        )


def numeric_values(values: pd.Series, fill: float) -> np.ndarray:
    """A numeric column as float64, text that is no number and missing values as ``fill``."""
    import numpy as np
    import pandas as pd

    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iufb":  # already numbers: no parsing
        numbers = values.to_numpy(dtype="float64")
    else:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    return np.where(np.isnan(numbers), fill, numbers)


class VocabularyLookup:
    """A categorical column's training vocabulary, sorted for binary search: a value's 1-based
    position in the vocabulary, 0 for a value unseen in training or missing. Values are compared
    as their text, as ``fit`` read them (pandas ``astype(str)``)."""

    def __init__(self, vocabulary: tuple[str, ...]) -> None:
        import numpy as np

        codes = {value: k + 1 for k, value in enumerate(vocabulary)}  # a repeated value: its last place
        words = np.array(list(codes), dtype=str)
        order = np.argsort(words, kind="stable")
        self._words = words[order]
        self._codes = np.array(list(codes.values()), dtype=np.float32)[order]

    def codes(self, values: pd.Series) -> np.ndarray:
        import numpy as np
        import pandas as pd

        raw = values.to_numpy()
        if raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
            text, missing = raw, pd.isna(raw)  # str values already: pandas' text exactly
        else:  # numbers, bytes, dates or categories in the column: pandas' own conversion to text
            text, missing = values.astype(str).to_numpy(dtype=object), values.isna().to_numpy()
        # Each distinct value is looked up once (a column has few), then spread back to the rows.
        index, distinct = pd.factorize(text)
        if not len(self._words) or not len(distinct):
            return np.zeros(len(raw), dtype=np.float32)
        distinct = np.asarray(distinct, dtype=str)
        position = np.minimum(np.searchsorted(self._words, distinct), len(self._words) - 1)
        found = np.r_[np.where(self._words[position] == distinct, self._codes[position], np.float32(0)), np.float32(0)]
        return np.where(missing, np.float32(0), found[index])  # index -1: a missing value
