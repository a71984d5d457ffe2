"""Built-in compressor ``graph_optimize``: fold the input standardization into the first Gemm, then
save ONNX Runtime's offline-optimized graph.

A tabular MLP this small spends most of a batch-1 call in per-node overhead, not in arithmetic:
removing the Slice, Sub and Div in front of the first layer and letting ONNX Runtime fuse
Gemm+Relu pays where 8-bit arithmetic does not. The result computes the same function in FP32;
the compressor checks that on the calibration rows and refuses a file that drifts past
``max_abs_error``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from gatewise.encoding import INPUT_NAME
from gatewise.errors import GatewiseError, UsageError
from gatewise.hookspecs import Compressor, hookimpl
from gatewise.lineage import append_compression_record
from gatewise.plugins.params import ComponentParams, parse_params
from gatewise.scoring import read_input_spec, stamp_input_spec

if TYPE_CHECKING:
    import numpy as np
    import onnx

class GraphOptimizeParams(ComponentParams):
    """Parameters of ``graph_optimize`` (``[compress.params.graph_optimize]``)."""

    level: Literal["basic", "extended"] = Field(
        "extended",
        description="ONNX Runtime offline optimization level. Higher levels ('all', 'layout') are not offered: "
        "they may embed rewrites for this machine's CPU in the file.",
    )
    fold_standardization: bool = Field(True, description="Fold the model's (x - mean) / std into the first Gemm's weights and bias.")
    max_abs_error: float = Field(1e-5, gt=0, le=1e-2, description="Largest |score - parent score| allowed on the calibration rows.")


class GraphOptimize:
    """The parent's function, with fewer nodes: same input, same output, FP32 throughout."""

    name = "graph_optimize"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(GraphOptimizeParams, params, f"compressor '{self.name}'")

    def applies(self, parent: Path, params: dict[str, Any]) -> str | None:
        """None unless the output would be the parent again: nothing to fold and no node to remove
        (a parent that is already an optimized graph, say)."""
        settings = parse_params(GraphOptimizeParams, params, f"compressor '{self.name}'")
        import tempfile

        import onnx

        if settings.fold_standardization and fold_standardization(onnx.load(str(parent))):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            optimized = Path(tmp) / "optimized.onnx"
            _save_optimized(Path(parent), optimized, settings.level)
            before, after = (len(onnx.load(str(path), load_external_data=False).graph.node) for path in (parent, optimized))
        if after < before:
            return None
        return (f"nothing to gain: no input standardization to fold, and ONNX Runtime's {settings.level} "
                f"optimization removes none of the model's {before} nodes")

    def compress(self, parent: Path, output: Path, calibration: np.ndarray, params: dict[str, Any]) -> None:
        settings = parse_params(GraphOptimizeParams, params, f"compressor '{self.name}'")
        import numpy as np
        import onnx

        rows = np.ascontiguousarray(calibration, dtype=np.float32)
        if rows.ndim != 2 or len(rows) == 0:
            raise UsageError(f"compressor '{self.name}' needs a non-empty [N, F] calibration matrix, got shape {list(rows.shape)}")
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        model = onnx.load(str(parent))
        folded = "none"
        if settings.fold_standardization:
            # Centring in float32 after folding can cost precision when a column's mean is large
            # against its spread (a year of 2000 +- 1.4): then only the division is folded.
            for mode in ("mean_and_std", "std"):
                candidate = onnx.load(str(parent))
                if fold_standardization(candidate, center=mode == "mean_and_std"):
                    staged = output.with_suffix(".folded.onnx")
                    onnx.save(candidate, str(staged))
                    if _max_abs_difference(parent, staged, rows) <= settings.max_abs_error:
                        model, folded = candidate, mode
                        break
        staged = output.with_suffix(".staged.onnx")
        onnx.save(model, str(staged))
        _save_optimized(staged, output, settings.level)
        for leftover in (staged, output.with_suffix(".folded.onnx")):
            leftover.unlink(missing_ok=True)
        error = _max_abs_difference(parent, output, rows)
        if not error <= settings.max_abs_error:  # also catches NaN
            output.unlink(missing_ok=True)
            raise GatewiseError(f"optimized graph differs from its parent by {error:.3g} (max_abs_error {settings.max_abs_error})")
        import onnxruntime as ort

        stamp_input_spec(output, read_input_spec(Path(parent)))
        append_compression_record(
            output, parent,
            {"compressor": self.name, "folded": folded, "ort_level": settings.level,
             "onnxruntime": ort.__version__, "max_abs_error_calibration": float(error)},
        )


def fold_standardization(model: onnx.ModelProto, center: bool = True) -> bool:
    """Rewrite ``Gemm(Concat(Div(Sub(Slice(x), mean), std), rest))``, or ``Gemm(Div(Sub(x, mean), std))``
    when every column is numeric, in place so the Gemm reads x.

    The first Gemm's columns for the standardized inputs are divided by ``std``; the Slice is
    replaced by the whole input, with zero weights for the columns it dropped. With ``center``
    the bias also absorbs ``-W' @ mean`` (no Sub left); without, one Sub of the mean (zero-padded)
    stays in front, which is exact where the folded bias would cancel large terms in float32. Returns False (model untouched) when the
    graph is not of that shape, so any other parent passes through to ONNX Runtime's optimizer.
    """
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def array(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]).astype(np.float64) if name in inits else None

    for div in [n for n in graph.node if n.op_type == "Div"]:
        sub = producers.get(div.input[0])
        std = array(div.input[1])
        if sub is None or sub.op_type != "Sub" or std is None or len(consumers.get(div.output[0], [])) != 1:
            continue
        mean = array(sub.input[1])
        if mean is None or len(consumers.get(sub.output[0], [])) != 1:
            continue
        n = int(std.size)
        follower = consumers[div.output[0]][0]
        slice_ = producers.get(sub.input[0])
        if sub.input[0] == INPUT_NAME and follower.op_type == "Gemm" and follower.input[0] == div.output[0]:
            # Every input column is numeric: Gemm(Div(Sub(x, mean), std)), no Slice and no Concat.
            gemm, width, concat = follower, (n, n), None
        else:
            concat = follower
            if slice_ is None or slice_.op_type != "Slice" or concat.op_type != "Concat":
                continue
            if _attribute(concat, "axis") not in (1, -1) or concat.input[0] != div.output[0]:
                continue
            width = _slice_prefix(slice_, inits, graph)
            gemms = consumers.get(concat.output[0], [])
            if width is None or len(gemms) != 1:
                continue
            gemm = gemms[0]
        if width[0] != n or mean.size != n or gemm.op_type != "Gemm" or len(gemm.input) < 3:
            continue
        if _attribute(gemm, "transA", 0) != 0 or _attribute(gemm, "transB", 0) != 1:
            continue
        if _attribute(gemm, "alpha", 1.0) != 1.0 or _attribute(gemm, "beta", 1.0) != 1.0:
            continue
        weight, bias = array(gemm.input[1]), array(gemm.input[2])
        if weight is None or bias is None or bias.shape != (weight.shape[0],) or weight.shape[1] < n:
            continue
        std, mean = std.reshape(-1), mean.reshape(-1)
        numeric = weight[:, :n] / std
        # The whole input replaces the Slice; the columns it dropped get zero weight.
        dropped = np.zeros((weight.shape[0], width[1] - n))
        new_weight = np.concatenate([numeric, dropped, weight[:, n:]], axis=1)
        reader = gemm if concat is None else concat  # the node that read the standardized columns
        if center:
            new_bias = bias - numeric @ mean
            reader.input[0] = INPUT_NAME
            graph.node.remove(sub)
        else:
            # (x - mean) stays, exact in float32, as one Sub over the whole input (zero for the
            # columns the Slice dropped); only the division moves into the weights.
            new_bias = bias
            if concat is not None:
                padded = np.concatenate([mean, np.zeros(width[1] - n)]).astype(np.float32)
                sub.input[0] = INPUT_NAME
                _replace_initializer(graph, sub, 1, padded, "padded")
            reader.input[0] = sub.output[0]
        graph.node.remove(div)
        if concat is not None and not [c for c in consumers.get(slice_.output[0], []) if c is not sub]:
            graph.node.remove(slice_)
        _replace_initializer(graph, gemm, 1, new_weight.astype(np.float32), "folded_weight")
        _replace_initializer(graph, gemm, 2, new_bias.astype(np.float32), "folded_bias")
        _drop_unused_initializers(graph)
        del graph.value_info[:]  # recorded intermediate shapes (the Concat's width) no longer hold
        return True
    return False


def _attribute(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _slice_prefix(node: Any, inits: dict[str, Any], graph: Any) -> tuple[int, int] | None:
    """(columns kept, input width) when ``node`` keeps the first columns of the graph input, else None."""
    from onnx import numpy_helper

    if node.input[0] != INPUT_NAME or len(node.input) < 4:
        return None
    values = []
    for name in list(node.input[1:5]) + [""] * (5 - len(node.input)):
        if not name:
            values.append(None)
        elif name in inits:
            values.append(numpy_helper.to_array(inits[name]).reshape(-1).tolist())
        else:
            return None
    starts, ends, axes, steps = values
    if starts != [0] or axes not in ([1], [-1]) or steps not in (None, [1]) or ends is None or len(ends) != 1:
        return None
    inputs = {i.name: i for i in graph.input}
    dims = inputs[INPUT_NAME].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value"):
        return None
    width = int(dims[1].dim_value)
    return (min(int(ends[0]), width), width) if int(ends[0]) > 0 else None


def _replace_initializer(graph: Any, node: Any, index: int, value: Any, suffix: str) -> None:
    from onnx import numpy_helper

    name = f"{node.input[index]}_{suffix}"
    graph.initializer.append(numpy_helper.from_array(value, name))
    node.input[index] = name


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def _save_optimized(source: Path, target: Path, level: str) -> None:
    import onnxruntime as ort

    from gatewise.scoring import session_options

    options = session_options()
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    if not target.exists():
        raise GatewiseError("ONNX Runtime wrote no optimized model")


def _max_abs_difference(parent: Path, child: Path, rows: np.ndarray) -> float:
    import numpy as np
    import onnxruntime as ort

    from gatewise.scoring import session_options

    def scores(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        return session.run(None, {INPUT_NAME: rows})[0].astype(np.float64).reshape(-1)

    return float(np.max(np.abs(scores(Path(parent)) - scores(Path(child)))))


@hookimpl
def gatewise_compressors() -> list[Compressor]:
    return [GraphOptimize()]
