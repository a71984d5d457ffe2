"""Example third-party plugin: ``prune_magnitude`` zeroes the smallest weights of an ONNX model.

It shows the whole plugin contract in one module: a compressor with a ``name``, ``check_params``
and ``compress``, returned from the ``gatewise_compressors`` hook, and exposed through the
``gatewise`` entry-point group in pyproject.toml. gatewise re-gates what it writes like any other
candidate: pruning too hard fails the accuracy gate against the parent, and nothing ships.
Its contract tests ship inside the package (``gatewise_prune.tests``): ``pytest --pyargs
gatewise_prune`` runs them against the installed plugin with gatewise's pytest kit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gatewise.errors import UsageError
from gatewise.hookspecs import hookimpl

PRUNABLE_OPS = {"MatMul": 1, "Gemm": 1}  # op type -> index of its weight input
DEFAULT_SPARSITY = 0.3


class MagnitudePruning:
    """Zero the ``sparsity`` share of smallest-magnitude weights in each MatMul/Gemm weight matrix.

    Unstructured sparsity keeps the file dense: it does not shrink the file or speed up ONNX
    Runtime on a CPU by itself; it is a step before sparse storage or fine-tuning.
    """

    name = "prune_magnitude"

    def check_params(self, params: dict[str, Any]) -> None:
        """Refuse an unknown key or a sparsity outside [0, 1), naming it; gatewise calls it in pre-flight."""
        unknown = set(params) - {"sparsity"}
        if unknown:
            raise UsageError(f"compressor '{self.name}': unknown parameter '{sorted(unknown)[0]}' (known: sparsity)")
        sparsity = params.get("sparsity", DEFAULT_SPARSITY)
        if not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
            raise UsageError(f"compressor '{self.name}': sparsity must be a number in [0, 1), got {sparsity!r}")

    def compress(self, parent: Path, output: Path, calibration: Any, params: dict[str, Any]) -> None:
        import numpy as np
        import onnx
        from onnx import numpy_helper

        self.check_params(params)
        sparsity = float(params.get("sparsity", DEFAULT_SPARSITY))
        model = onnx.load(str(parent))
        weights = {init.name: init for init in model.graph.initializer}
        for node in model.graph.node:
            index = PRUNABLE_OPS.get(node.op_type)
            if index is None or len(node.input) <= index or node.input[index] not in weights:
                continue
            init = weights[node.input[index]]
            values = numpy_helper.to_array(init).copy()
            if values.ndim != 2 or values.dtype != np.float32:
                continue
            cutoff = np.quantile(np.abs(values), sparsity)
            values[np.abs(values) < cutoff] = 0.0
            init.CopyFrom(numpy_helper.from_array(values, init.name))
        onnx.save(model, str(output))  # metadata, and so the input contract, is kept


@hookimpl
def gatewise_compressors() -> list[MagnitudePruning]:
    return [MagnitudePruning()]
