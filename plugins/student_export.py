"""What the retraining compressors (``prune_units``, ``distill``) share after training: export the
student to ONNX like a parent, carry the parent's lineage, and record the step."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from gatewise.lineage import TRAINING_KEY, append_compression_record, read_metadata, write_metadata


# The flow runs compressors in parallel threads, and torch is not safe there: torch.export keeps a
# process-wide annotation dict that torch's own optimizer calls (zero_grad) also edit, so a
# fine-tune in one thread broke an export in another (KeyError: 'custom'). The retraining
# compressors hold this lock for all their torch work; ONNX Runtime's quantizers still run alongside.
# The flow now runs each compressor in a process of its own (gatewise.flows.isolation), so across
# compressors the lock guards nothing; it stays, uncontended, for callers that run two in one process.
TORCH_LOCK = threading.RLock()


def mlp_parent_applies(parent: Path) -> str | None:
    """None when ``parent`` is an ONNX export of the ``mlp`` trainer, which is what pruning and
    distillation rebuild and retrain; otherwise why not (the candidate is then skipped)."""
    from gatewise.plugins.mlp_module import module_from_onnx

    with TORCH_LOCK:
        try:
            module_from_onnx(Path(parent))
        except ValueError as exc:
            return str(exc)
    return None


def layer_widths(module: Any) -> list[int]:
    from torch import nn

    return [m.out_features for m in module.net if isinstance(m, nn.Linear)][:-1]


def export_student(student: Any, spec: Any, calibration: Any, parent: Path, output: Path, detail: dict[str, Any]) -> None:
    from gatewise.export import export_onnx
    from gatewise.hookspecs import TrainedModel

    output.parent.mkdir(parents=True, exist_ok=True)
    with TORCH_LOCK:
        export_onnx(TrainedModel(module=student, spec=spec), calibration[:256], output)
    training = read_metadata(parent, TRAINING_KEY)
    if training is not None:  # the teacher's recipe stays part of the student's lineage
        write_metadata(output, TRAINING_KEY, training)
    append_compression_record(output, parent, detail)
