"""Values passed between pipeline stages: frozen dataclasses, never loose dicts."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pandas loads only where frames are used
    import pandas as pd


@dataclass(frozen=True)
class Schema:
    """Which columns a dataset has and what they mean.

    ``positive`` is the label value treated as class 1; labels are compared as strings so that
    ``Yes``, ``1`` and ``1.0`` read from CSV, parquet or a bundled frame behave alike.
    """

    label: str
    positive: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    sensitive: tuple[str, ...] = ()
    # Declared row id and time columns: never features; the leakage gate checks them.
    id_column: str | None = None
    time_column: str | None = None

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded table and its schema. ``fingerprint`` is the sha256 of its canonical row hashes."""

    name: str
    frame: pd.DataFrame
    schema: Schema
    fingerprint: str


@dataclass(frozen=True, eq=False)
class Split:
    """The deterministic train/test split of one run, with a fingerprint of each part."""

    train: pd.DataFrame
    test: pd.DataFrame
    seed: int
    train_fingerprint: str
    test_fingerprint: str


@dataclass(frozen=True)
class PluginInfo:
    """Where a component came from, recorded with every candidate it produces."""

    name: str
    version: str
    distribution: str
    code_sha256: str

    def record(self) -> dict[str, Any]:
        """The JSON-ready record signed wherever a component's work is recorded (candidates,
        run entries, compression steps, deployments): every field, so new provenance fields
        reach every signed record through this one method."""
        return dataclasses.asdict(self)

    @classmethod
    def chain(cls, name: str, infos: list[PluginInfo]) -> PluginInfo:
        """One record for a chain ``a+b``: names, versions and distributions joined by '+', and a
        sha256 over the steps' code hashes in order. A single step keeps its own record."""
        if len(infos) == 1:
            return infos[0]
        joined = "".join(i.code_sha256 for i in infos)
        return cls(name=name, version="+".join(i.version for i in infos),
                   distribution="+".join(dict.fromkeys(i.distribution for i in infos)),
                   code_sha256=hashlib.sha256(joined.encode()).hexdigest())


CandidateStatus = Literal["ok", "errored"]


@dataclass(frozen=True)
class Candidate:
    """One ONNX model that may ship: the exported parent or a compressed child of it."""

    name: str
    plugin: PluginInfo
    status: CandidateStatus
    onnx_path: Path | None = None
    sha256: str | None = None
    parent: str | None = None  # name of the candidate it was derived from
    error: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate on one candidate, with the evidence behind it.

    ``value`` is the headline measurement compared with ``threshold``; ``details`` holds every
    other number (per-group metrics, confidence intervals, sample sizes) as JSON-ready values.
    """

    gate: str
    passed: bool
    value: float | None
    threshold: float | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
