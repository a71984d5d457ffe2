"""Built-in compressor ``prune_units``: structured pruning of hidden units, then a short fine-tune.

The pruned model is really narrower (fewer rows in each weight matrix), not a sparse copy: the
file shrinks and every Gemm does less work. The fine-tune fits the narrow model to the parent's
logits on the calibration rows (training rows only), so no label and no test row is needed. A
parent that is not an export of the ``mlp`` trainer is skipped, with the reason (``applies``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from gatewise.hookspecs import Compressor, hookimpl
from gatewise.plugins.params import FineTuneEpochs, FineTuneParams, parse_params

if TYPE_CHECKING:
    import numpy as np


class PruneParams(FineTuneParams):
    """Parameters of ``prune_units`` (``[compress.params.prune_units]``); ``epochs`` 0 skips the fine-tune."""

    keep: float = Field(0.5, gt=0, le=1, description="Share of each hidden layer's units kept (at least one).")
    epochs: Annotated[FineTuneEpochs, Field(le=1000)] = 20


class PruneUnits:
    name = "prune_units"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(PruneParams, params, f"compressor '{self.name}'")

    def applies(self, parent: Path, params: dict[str, Any]) -> str | None:
        from gatewise.plugins.student_export import mlp_parent_applies

        return mlp_parent_applies(Path(parent))

    def compress(self, parent: Path, output: Path, calibration: np.ndarray, params: dict[str, Any]) -> None:
        settings = parse_params(PruneParams, params, f"compressor '{self.name}'")
        from gatewise.plugins.mlp_module import fit_to_teacher, module_from_onnx, prune_hidden_units, teacher_logits
        from gatewise.plugins.student_export import TORCH_LOCK, export_student, layer_widths

        with TORCH_LOCK:  # torch is not thread-safe across fine-tune and export (student_export)
            teacher, spec = module_from_onnx(Path(parent))
            cardinalities = tuple(len(v) for _, v in spec.categorical)
            student = prune_hidden_units(teacher, cardinalities, calibration, settings.keep)
            detail = {"compressor": self.name, "keep": settings.keep,
                      "hidden_before": layer_widths(teacher), "hidden_after": layer_widths(student)}
            if settings.epochs:
                detail["fine_tune"] = fit_to_teacher(student, calibration, teacher_logits(teacher, calibration),
                                                     settings.epochs, settings.lr, settings.batch_size, settings.seed)
            export_student(student, spec, calibration, Path(parent), Path(output), detail)


@hookimpl
def gatewise_compressors() -> list[Compressor]:
    return [PruneUnits()]
