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


def read_input_spec(path: Path) -> InputSpec:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return InputSpec.from_json(prop.value)
    raise GatewiseError(f"{path}: ONNX file carries no '{METADATA_KEY}' metadata")


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

        self.path = Path(path)
        self.spec = read_input_spec(self.path)
        self.session = ort.InferenceSession(str(self.path), session_options(threads), providers=["CPUExecutionProvider"])

    def predict_encoded(self, features: np.ndarray) -> np.ndarray:
        (scores,) = self.session.run(None, {INPUT_NAME: features})
        return scores.reshape(-1)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row of a raw table."""
        return self.predict_encoded(self.spec.encode(frame))
