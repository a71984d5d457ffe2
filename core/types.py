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


def _runtime(name: str) -> Any:
    def version() -> str:
        from gatewise.provenance import runtime_versions

        return runtime_versions()[name]

    return field(default_factory=version)


@dataclass(frozen=True)
class PluginInfo:
    """Where a component came from, recorded with every candidate it produces.

    ``code_sha256`` hashes the component's own module source; ``distribution_sha256`` the whole
    installed distribution (gatewise.provenance.distribution_sha256); ``plugin_api`` is the plugin
    API it declares ("" when undeclared). The versions of gatewise, onnx and onnxruntime are those
    of the process that built the record (gatewise.provenance.runtime_versions).
    """

    name: str
    version: str
    distribution: str
    code_sha256: str
    distribution_sha256: str = ""
    plugin_api: str = ""
    gatewise_version: str = _runtime("gatewise")
    onnx_version: str = _runtime("onnx")
    onnxruntime_version: str = _runtime("onnxruntime")

    def record(self) -> dict[str, Any]:
        """The JSON-ready record signed wherever a component's work is recorded (candidates,
        run entries, compression steps, deployments): every field, so new provenance fields
        reach every signed record through this one method."""
        return dataclasses.asdict(self)

    @classmethod
    def chain(cls, name: str, infos: list[PluginInfo]) -> PluginInfo:
        """One record for a chain ``a+b``. A single step keeps its own record. Otherwise: names,
        versions, distributions and plugin APIs joined by '+' (distributions and APIs each once,
        in order); a sha256 over the steps' code hashes in order; the one distribution's digest
        when every step comes from one distribution, else a sha256 over each distribution's digest
        once, in order; the runtime versions each once (one process builds every step's record,
        so they are one value)."""
        if len(infos) == 1:
            return infos[0]

        def once(values: Any) -> str:
            return "+".join(dict.fromkeys(values))

        joined = "".join(i.code_sha256 for i in infos)
        digests = list(dict.fromkeys((i.distribution, i.distribution_sha256) for i in infos))
        dist_sha256 = digests[0][1] if len(digests) == 1 else hashlib.sha256("".join(d for _, d in digests).encode()).hexdigest()
        return cls(name=name, version="+".join(i.version for i in infos),
                   distribution=once(i.distribution for i in infos),
                   code_sha256=hashlib.sha256(joined.encode()).hexdigest(),
                   distribution_sha256=dist_sha256, plugin_api=once(i.plugin_api for i in infos),
                   gatewise_version=once(i.gatewise_version for i in infos), onnx_version=once(i.onnx_version for i in infos),
                   onnxruntime_version=once(i.onnxruntime_version for i in infos))


CandidateStatus = Literal["ok", "errored", "skipped"]  # skipped: a compressor that does not apply (its reason in error)


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
