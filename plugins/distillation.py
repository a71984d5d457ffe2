"""Built-in compressor ``distill``: knowledge distillation into a smaller student MLP.

The parent is the teacher; the student (``hidden`` widths, narrower than the parent's) learns the
teacher's logits on the calibration rows, which are training rows: no label and no test row is
needed. The student keeps the parent's input contract and encoding layers. A parent that is not
an export of the ``mlp`` trainer is skipped, with the reason (``applies``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from gatewise.hookspecs import Compressor, hookimpl
from gatewise.plugins.params import FineTuneEpochs, FineTuneParams, PeakLearningRate, parse_params

if TYPE_CHECKING:
    import numpy as np


class DistillParams(FineTuneParams):
    """Parameters of ``distill`` (``[compress.params.distill]``)."""

    hidden: tuple[Annotated[int, Field(gt=0, le=4096)], ...] = Field((16,), max_length=8, description="Width of each hidden layer of the student.")
    epochs: Annotated[FineTuneEpochs, Field(ge=1)] = 60  # a student that never trains is no candidate
    lr: PeakLearningRate = 1e-2


class Distill:
    name = "distill"

    def check_params(self, params: dict[str, Any]) -> None:
        parse_params(DistillParams, params, f"compressor '{self.name}'")

    def applies(self, parent: Path, params: dict[str, Any]) -> str | None:
        from gatewise.plugins.student_export import mlp_parent_applies

        return mlp_parent_applies(Path(parent))

    def compress(self, parent: Path, output: Path, calibration: np.ndarray, params: dict[str, Any]) -> None:
        settings = parse_params(DistillParams, params, f"compressor '{self.name}'")
        import torch

        from gatewise.plugins.mlp_module import TabularMLP, fit_to_teacher, module_from_onnx, teacher_logits
        from gatewise.plugins.student_export import TORCH_LOCK, export_student, layer_widths

        with TORCH_LOCK:  # torch is not thread-safe across fine-tune and export (student_export)
            teacher, spec = module_from_onnx(Path(parent))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                student = TabularMLP(teacher.mean.double(), teacher.std.double(),
                                     tuple(len(v) for _, v in spec.categorical), settings.hidden)
            detail = {"compressor": self.name, "hidden_teacher": layer_widths(teacher), "hidden_student": list(settings.hidden)}
            detail["training"] = fit_to_teacher(student, calibration, teacher_logits(teacher, calibration),
                                                settings.epochs, settings.lr, settings.batch_size, settings.seed)
            export_student(student, spec, calibration, Path(parent), Path(output), detail)


@hookimpl
def gatewise_compressors() -> list[Compressor]:
    return [Distill()]
