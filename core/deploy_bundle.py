"""The layout of a deploy bundle: written by the `bundle` deployer, checked by `gatewise deploy verify`.

    model.onnx                          the promoted ONNX bytes, whose sha256 the signed entries name
    contract.json                       the input contract (a copy of the ONNX file's metadata)
    entries/<seq>-<type>.dsse.json      each signed entry: its DSSE envelope as the ledger stores it
    keys.json                           the public keys that signed them, by key id
    manifest.json                       model, version, sha256, and the sha256 and size of every file

The writer (a plugin) and the checker (gatewise.registry.release) share these names only; neither
imports the other.
"""

from __future__ import annotations

import json
import re
from typing import Any

FORMAT = "gatewise-deploy-bundle/v1"
CONTRACT_FORMAT = "gatewise-input-contract/v1"
MODEL, CONTRACT, KEYS, MANIFEST, ENTRIES = "model.onnx", "contract.json", "keys.json", "manifest.json", "entries"
ENTRY_SUFFIX = ".dsse.json"


def folder_name(version: str) -> str:
    """``arrests:v3`` -> ``arrests-v3``: the bundle's folder inside the deployer's ``dir``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", version).strip("-.") or "model"


def entry_file(seq: int, predicate_type: str) -> str:
    """``entries/00000012-promotion-v1.dsse.json``: the seq and type, for people; the checker trusts
    only what is signed inside."""
    parts = [p for p in str(predicate_type).split("/") if p][-2:]
    kind = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-") or "entry"
    return f"{ENTRIES}/{int(seq):08d}-{kind}{ENTRY_SUFFIX}"


def contract_document(spec_json: str, input_name: str, output_name: str) -> dict[str, Any]:
    """contract.json: the InputSpec (columns, medians for missing numbers, vocabularies) and the
    ONNX input and output names; a device encodes its rows with it exactly as the gates did."""
    return {"format": CONTRACT_FORMAT, "input": input_name, "output": output_name, "spec": json.loads(spec_json)}
