"""Score a raw table with an ONNX file in ONNX Runtime: the one way gatewise runs a model.

Gates, the champion re-score and the server all go through ``OnnxScorer``, so what is gated is
exactly what ships: the same bytes, the same runtime, the same input contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.encoding import INPUT_NAME, METADATA_KEY, InputSpec
from gatewise.errors import GatewiseError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


# Operators that compute activation scales from the batch they are given (dynamic quantization):
# a model holding one scores each row alone, so that a row's score never depends on the rows
# scored with it, in the gates and in the server alike (docs/serving.md).
# The ONNX models output P(positive); the gates and the server decide at this threshold.
DECISION_THRESHOLD = 0.5
BATCH_DEPENDENT_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"})


def read_input_spec(path: Path) -> InputSpec:
    import onnx

    return input_spec_of(onnx.load(str(path), load_external_data=False), str(path))


def input_spec_of(model: Any, origin: str) -> InputSpec:
    """The input contract in a loaded ONNX ``ModelProto``'s metadata; GatewiseError names ``origin`` without one."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return InputSpec.from_json(prop.value)
    raise GatewiseError(f"{origin}: ONNX file carries no '{METADATA_KEY}' metadata")


def batch_dependent(model: Any) -> bool:
    """Whether a loaded ONNX ``ModelProto`` scores a row differently depending on its batch."""
    return any(node.op_type in BATCH_DEPENDENT_OPS for node in model.graph.node)


# Rows per session.run call when scoring a whole table: one call over 150k rows kept about 124 MB
# of ONNX Runtime working memory, against 8 MB in chunks of this size, with identical scores.
SCORE_CHUNK_ROWS = 8192


def score_rows(session: Any, features: np.ndarray, row_by_row: bool) -> np.ndarray:
    """P(positive) per row of an encoded matrix; ``row_by_row`` runs each row alone, else the rows
    go in chunks of ``SCORE_CHUNK_ROWS``."""
    import numpy as np

    step = 1 if row_by_row else SCORE_CHUNK_ROWS
    if len(features) > step:
        return np.concatenate([score_rows(session, features[i : i + step], row_by_row) for i in range(0, len(features), step)])
    (scores,) = session.run(None, {INPUT_NAME: features})
    return scores.reshape(-1)


def stamp_input_spec(path: Path, spec: InputSpec) -> None:
    """Write the input contract into the ONNX file's metadata (in place)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=spec.to_json())
    onnx.save(model, str(path))


def session_options(threads: int = 2) -> Any:
    """The ONNX Runtime session options of every gatewise session: gates, re-score and server alike."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # A spinning ORT pool starves torch in the same process (LIBRARY-NOTES: 50-80x slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OnnxScorer:
    """An ONNX Runtime session plus the input contract read from the same file."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        import onnxruntime as ort

        import onnx

        self.path = Path(path)
        model = onnx.load(str(self.path), load_external_data=False)
        self.spec = input_spec_of(model, str(self.path))
        self.row_by_row = batch_dependent(model)
        self.session = ort.InferenceSession(str(self.path), session_options(threads), providers=["CPUExecutionProvider"])

    def predict_encoded(self, features: np.ndarray) -> np.ndarray:
        """One ONNX Runtime call on the whole matrix (export parity, latency): the raw batch semantics."""
        (scores,) = self.session.run(None, {INPUT_NAME: features})
        return scores.reshape(-1)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row of a raw table, as the server answers it:
        a batch-dependent (dynamically quantized) model scores each row alone."""
        return score_rows(self.session, self.spec.encode(frame), self.row_by_row)
