"""Export a trained torch module to one self-describing ONNX file, and prove it computes the same thing.

The file carries the input contract in its metadata and is checked in ONNX Runtime against
torch on a sample before anyone may gate it: a silent exporter bug must not become a candidate.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gatewise.encoding import INPUT_NAME, OUTPUT_NAME
from gatewise.errors import GatewiseError
from gatewise.scoring import OnnxScorer, stamp_input_spec

if TYPE_CHECKING:
    import numpy as np

    from gatewise.hookspecs import TrainedModel

logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4

# Loggers that narrate every export (optimizer passes, absent torchvision ops) at INFO/WARNING.
_CHATTY_LOGGERS = ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[io.StringIO]:
    """Keep the exporter's progress lines, pass notes and deprecation warnings out of the run's output."""
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [log.level for log in loggers]
    chatter = io.StringIO()
    try:
        for log in loggers:
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            yield chatter
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def export_onnx(trained: TrainedModel, sample: np.ndarray, path: Path) -> float:
    """Write ``trained.module`` to ``path`` as ONNX with a dynamic batch dimension.

    ``sample`` is an encoded float32 matrix of at least two rows (torch.export specializes a batch
    of one to a constant). The InputSpec is stamped into the file's metadata, then ONNX Runtime's
    output on ``sample`` is compared with torch's. Returns the largest absolute difference;
    raises GatewiseError above ``PARITY_TOLERANCE`` or when the exporter fails.
    """
    import numpy as np
    import torch

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if sample.ndim != 2 or sample.shape[0] < 2 or sample.shape[1] != len(trained.spec.columns):
        raise GatewiseError(
            f"export needs a sample of shape [N >= 2, {len(trained.spec.columns)}], got {list(sample.shape)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = trained.module.eval()
    inputs = torch.from_numpy(sample)
    started = time.perf_counter()
    try:
        with _quiet_exporter() as chatter:
            torch.onnx.export(
                module,
                (inputs,),
                str(path),
                dynamo=True,
                external_data=False,  # one file: the sha256 that is signed covers every weight
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
    except Exception as exc:
        raise GatewiseError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    logger.debug("torch.onnx.export said: %s", chatter.getvalue().strip())
    _strip_debug_metadata(path)
    stamp_input_spec(path, trained.spec)

    with torch.inference_mode():
        expected = module(inputs).reshape(-1).numpy()
    actual = OnnxScorer(path).predict_encoded(sample)
    if actual.shape != expected.shape:
        raise GatewiseError(f"{path}: ONNX output shape {list(actual.shape)} differs from torch's {list(expected.shape)}")
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
    if not difference <= PARITY_TOLERANCE:  # also catches NaN
        raise GatewiseError(f"{path}: ONNX Runtime differs from torch by {difference:.3g} (tolerance {PARITY_TOLERANCE})")
    logger.info("exported %s in %.2f s (parity %.2g)", path.name, time.perf_counter() - started, difference)
    return difference


def _strip_debug_metadata(path: Path) -> None:
    """Drop the exporter's per-node debug notes (source paths, stack traces, FX node text).

    They hold absolute paths of the machine that exported, so without this the same weights
    exported from two installs give two different files (and sha256s), and a signed artifact
    would disclose the operator's file layout. Scoring does not read them.
    """
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    kept = [prop for prop in model.graph.metadata_props if not prop.key.startswith("pkg.torch.")]
    del model.graph.metadata_props[:]
    model.graph.metadata_props.extend(kept)
    onnx.save(model, str(path))
