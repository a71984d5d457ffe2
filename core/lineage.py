"""How a model file was made, written into its own ONNX metadata: the trainer's record and each
compression step. The metadata is part of the bytes whose sha256 is signed, so this lineage is
signed with the model and travels with it to every deployment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TRAINING_KEY = "gatewise.training"  # one JSON object: the trainer's record (recipe, epochs, best epoch, ...)
COMPRESSION_KEY = "gatewise.compression"  # a JSON list, one object per compression step, oldest first


def read_metadata(path: Path, key: str) -> Any:
    """The JSON value stored under ``key`` in the ONNX file's metadata, or None."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == key:
            return json.loads(prop.value)
    return None


def write_metadata(path: Path, key: str, value: Any) -> None:
    """Store ``value`` as canonical JSON under ``key`` in the ONNX file's metadata (in place)."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=key, value=json.dumps(value, sort_keys=True, separators=(",", ":")))
    onnx.save(model, str(path))


def read_compression_record(path: Path) -> list[dict[str, Any]]:
    """The compression steps recorded in an ONNX file, oldest first ([] for an uncompressed parent)."""
    return list(read_metadata(Path(path), COMPRESSION_KEY) or [])


def append_compression_record(output: Path, parent: Path, step: dict[str, Any]) -> None:
    """Record in ``output`` the steps that made ``parent`` plus ``step``: a chain reads in order."""
    write_metadata(Path(output), COMPRESSION_KEY, read_compression_record(Path(parent)) + [step])
