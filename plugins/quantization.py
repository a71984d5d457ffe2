"""Built-in compressors: ``int8_dynamic`` and ``int8_static`` (QDQ), both with ONNX Runtime's quantizer.

Only the matrix products (Gemm / MatMul; static also Conv) are quantized. The rest of the graph is
the model's own input encoding (standardization, one-hot comparison), where 8 bits would erase
information: a year of 1997..2002 quantized over the input's full range falls into one or two
steps. A model with none of those nodes, or one already quantized, is skipped (``applies``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from gatewise.encoding import INPUT_NAME
from gatewise.errors import UsageError
from gatewise.hookspecs import Compressor, hookimpl
from gatewise.plugins.params import ComponentParams, parse_params
from gatewise.scoring import read_input_spec, stamp_input_spec

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

# Dynamic quantization rewrites Gemm as MatMul first; Conv is left out on purpose: ConvInteger
# ran 8-10x slower than FP32 on the CPUs we measured (LIBRARY-NOTES). A model with convolutions is
# still dynamically quantized where it has Gemm / MatMul; its Conv nodes stay FP32.
DYNAMIC_OP_TYPES = ["MatMul"]
STATIC_OP_TYPES = ["Gemm", "MatMul", "Conv"]
# Nodes that only a quantized model holds: quantizing it again would stack a second rounding on the first.
QUANTIZED_OP_TYPES = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
    "QLinearMatMul", "QLinearConv", "QGemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
})


def graph_op_types(model_path: Path) -> set[str]:
    """The operator types of the nodes of an ONNX file's main graph."""
    import onnx

    return {node.op_type for node in onnx.load(str(model_path), load_external_data=False).graph.node}


def quantization_applies(model_path: Path, quantizable: set[str]) -> str | None:
    """None when the model has a node of ``quantizable`` types and is not already quantized, else why not."""
    ops = graph_op_types(model_path)
    if ops & QUANTIZED_OP_TYPES:
        return f"the model is already quantized ({', '.join(sorted(ops & QUANTIZED_OP_TYPES))})"
    if not ops & quantizable:
        why = f"the model has no {' or '.join(sorted(quantizable))} node to quantize"
        if "Conv" in ops and "Conv" not in quantizable:
            why += " (convolutions are never dynamically quantized: ConvInteger is slower than FP32 on CPUs)"
        return why
    return None


class DynamicParams(ComponentParams):
    """Parameters of ``int8_dynamic`` (``[compress.params.int8_dynamic]``)."""

    per_channel: bool = Field(False, description="One scale per output channel of each weight instead of one per tensor.")
    reduce_range: bool = Field(
        False, description="7-bit weights, for CPUs without VNNI where 8-bit products can saturate."
    )


class StaticParams(ComponentParams):
    """Parameters of ``int8_static`` (``[compress.params.int8_static]``)."""

    per_channel: bool = Field(False, description="One scale per output channel of each weight instead of one per tensor.")
    calibration_rows: int = Field(2048, ge=16, le=1_000_000, description="Most calibration rows used to fix activation ranges.")
    batch_size: int = Field(256, ge=1, le=100_000, description="Rows per calibration batch.")


class Int8Dynamic:
    """Weights stored as INT8; activations quantized per batch at run time (no calibration).

    Note: the activation scale is computed from each batch, so a row's score can change slightly
    with the other rows scored alongside it.
    """

    name = "int8_dynamic"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(DynamicParams, params, f"compressor '{self.name}'")

    def applies(self, parent: Path, params: dict[str, Any]) -> str | None:
        return quantization_applies(Path(parent), {"Gemm", "MatMul"})

    def compress(self, parent: Path, output: Path, calibration: np.ndarray, params: dict[str, Any]) -> None:
        settings = parse_params(DynamicParams, params, f"compressor '{self.name}'")
        from onnxruntime.quantization import QuantType, quantize_dynamic

        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with _quiet_quantizer():
            quantize_dynamic(
                Path(parent),
                Path(output),
                op_types_to_quantize=DYNAMIC_OP_TYPES,
                per_channel=settings.per_channel,
                reduce_range=settings.reduce_range,
                weight_type=QuantType.QInt8,
            )
        _carry_input_spec(parent, output)


class Int8Static:
    """Weights and activations INT8 in QDQ format, activation ranges calibrated (min/max) on training rows."""

    name = "int8_static"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(StaticParams, params, f"compressor '{self.name}'")

    def applies(self, parent: Path, params: dict[str, Any]) -> str | None:
        return quantization_applies(Path(parent), set(STATIC_OP_TYPES))

    def compress(self, parent: Path, output: Path, calibration: np.ndarray, params: dict[str, Any]) -> None:
        settings = parse_params(StaticParams, params, f"compressor '{self.name}'")
        import numpy as np
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        rows = np.ascontiguousarray(calibration, dtype=np.float32)[: settings.calibration_rows]
        if rows.ndim != 2 or len(rows) == 0:
            raise UsageError(
                f"compressor '{self.name}' needs a non-empty [N, F] calibration matrix, got shape {list(rows.shape)}"
            )
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with _quiet_quantizer():
            quantize_static(
                Path(parent),
                Path(output),
                _CalibrationBatches(rows, settings.batch_size),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=STATIC_OP_TYPES,
                per_channel=settings.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        _carry_input_spec(parent, output)


class _CalibrationBatches:
    """Feeds the calibration matrix to ONNX Runtime's calibrator in fixed-size batches."""

    def __init__(self, rows: np.ndarray, batch_size: int) -> None:
        self._batches = iter([rows[start : start + batch_size] for start in range(0, len(rows), batch_size)])

    # ONNX Runtime's CalibrationDataReader protocol: one input dict per call, None when done.
    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def _carry_input_spec(parent: Path, output: Path) -> None:
    """The child must carry the parent's input contract, whether or not the quantizer kept it."""
    stamp_input_spec(Path(output), read_input_spec(Path(parent)))


class _QuantizerNotes(logging.Filter):
    """Drops the notes ONNX Runtime's quantizer logs straight to the root logger below ERROR.

    They ("consider pre-processing", "parameters for tensor not specified") come once per
    compression and say nothing an operator can act on; they stay visible at DEBUG here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        if record.levelno < logging.ERROR and "/onnxruntime/quantization/" in path:
            logger.debug("onnxruntime quantizer: %s", record.getMessage())
            return False
        return True


_NOTES_FILTER = _QuantizerNotes()
_notes_lock = threading.Lock()
_notes_users = 0


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    # A filter on the root *logger* sees only records logged to root itself, never records that
    # propagate from named loggers, so other code's logging is untouched. Counted, because
    # compressors may run in parallel threads.
    global _notes_users
    with _notes_lock:
        if _notes_users == 0:
            logging.getLogger().addFilter(_NOTES_FILTER)
        _notes_users += 1
    try:
        yield
    finally:
        with _notes_lock:
            _notes_users -= 1
            if _notes_users == 0:
                logging.getLogger().removeFilter(_NOTES_FILTER)


@hookimpl
def gatewise_compressors() -> list[Compressor]:
    return [Int8Dynamic(), Int8Static()]
