"""What the retraining compressors (``prune_units``, ``distill``) share after training: export the
student to ONNX like a parent, carry the parent's lineage, and record the step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gatewise.lineage import TRAINING_KEY, append_compression_record, read_metadata, write_metadata


def layer_widths(module: Any) -> list[int]:
    from torch import nn

    return [m.out_features for m in module.net if isinstance(m, nn.Linear)][:-1]


def export_student(student: Any, spec: Any, calibration: Any, parent: Path, output: Path, detail: dict[str, Any]) -> None:
    from gatewise.export import export_onnx
    from gatewise.hookspecs import TrainedModel

    output.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(TrainedModel(module=student, spec=spec), calibration[:256], output)
    training = read_metadata(parent, TRAINING_KEY)
    if training is not None:  # the teacher's recipe stays part of the student's lineage
        write_metadata(output, TRAINING_KEY, training)
    append_compression_record(output, parent, detail)
