"""The model's input contract: how a raw table becomes the float matrix an ONNX model reads.

The contract travels inside the ONNX file (metadata key ``gatewise.input_spec``), so the bytes
that are gated, signed and served carry their own preprocessing vocabulary. Numeric columns go
in as they are (the model standardizes them itself); a categorical value becomes its 1-based
index in the training vocabulary, 0 for a value unseen in training or missing.
"""

from __future__ import annotations

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
        import numpy as np
        import pandas as pd

        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise UsageError(f"input is missing feature column(s): {', '.join(missing)}")
        out = np.empty((len(frame), len(self.columns)), dtype=np.float32)
        for i, (column, fill) in enumerate(zip(self.numeric, self.numeric_fill)):
            values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            out[:, i] = values.fillna(fill).to_numpy()
        offset = len(self.numeric)
        for j, (column, vocabulary) in enumerate(self.categorical):
            codes = {value: k + 1 for k, value in enumerate(vocabulary)}
            raw = frame[column]
            mapped = raw.astype(str).map(codes).where(raw.notna(), 0)
            out[:, offset + j] = mapped.fillna(0).to_numpy(dtype=np.float32)
        return out

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
