"""The plugin contract: every hook through which gatewise gets its components.

Plugins are ordinary Python packages that expose a module (or object) under the entry-point
group ``gatewise``; gatewise's own components register through these same hooks. Each hook
returns a list of components; configuration picks one by its ``name``. A component name may be
provided once: two plugins offering the same name is an error at load time, naming both.

A trainer, compressor or deployer may also define ``check_params(params) -> None``, raising
``gatewise.errors.UsageError`` for an unknown or bad parameter: gatewise calls it before the run
starts, so a typo in gatewise.toml stops the run with one line instead of becoming an errored
candidate.

Every hook here is called once per process, when the plugin manager is first built, and has no
arguments. If a hook implementation raises, loading stops with an error that names the plugin.
What happens when a *component* raises later depends on its role and is said on each hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from gatewise.encoding import InputSpec

PROJECT = "gatewise"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, eq=False)
class SourceTable:
    """What a data source returns: a raw table and the defaults of its schema."""

    name: str
    frame: pd.DataFrame
    label: str
    positive: str
    sensitive: tuple[str, ...] = ()


@runtime_checkable
class DataSource(Protocol):
    name: str

    def load(self, path: Path | None) -> SourceTable:
        """Read the table. ``path`` is the --data file, or None for a source with bundled data."""


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A torch module mapping the encoded float matrix [N, F] to P(positive) [N]."""

    module: Any  # torch.nn.Module; typed loosely so that importing this module stays light
    spec: InputSpec
    # What the trainer did, JSON-ready (resolved parameters, epochs run, best epoch, ...): gatewise
    # writes it into the parent ONNX file's metadata (key ``gatewise.training``), so it is signed.
    record: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Trainer(Protocol):
    name: str

    def train(self, train: pd.DataFrame, label: np.ndarray, spec: InputSpec, params: dict[str, Any]) -> TrainedModel:
        """Fit a model on the training split only. ``label`` holds 0/1 per row."""


@runtime_checkable
class Compressor(Protocol):
    name: str

    def compress(self, parent: Path, output: Path, calibration: np.ndarray, params: dict[str, Any]) -> None:
        """Write a compressed ONNX model to ``output``, derived from the ONNX file ``parent``.

        ``calibration`` is a float32 sample of encoded training rows, for static quantization.
        The output must read the same input and produce the same output as the parent.
        """


@dataclass(frozen=True)
class SignedEntry:
    """One ledger entry exactly as stored: its position, digest, type and DSSE envelope text."""

    seq: int
    digest: str  # sha256 of the envelope's payload
    predicate_type: str
    envelope: str  # the DSSE envelope JSON, byte for byte as the ledger holds it


@dataclass(frozen=True)
class Release:
    """A promoted version as deployers receive it; gatewise checked everything here before the call.

    ``sha256`` is the one the signed candidate entry names, and ``artifact`` holds those bytes
    (read-only: copy them, never move or edit them). ``entries`` are the signed entries that make
    the version live, in ledger order: the key entries, the candidate entry, the gate results and
    waivers the promotion cites, the promotion and, if the version is live through a rollback,
    that rollback. ``public_keys`` maps each key id in them to its raw Ed25519 key, base64.
    """

    model: str
    version: str
    sha256: str
    artifact: Path
    size_bytes: int
    input_contract: dict[str, Any]  # the InputSpec stamped into the ONNX metadata, as JSON
    entries: tuple[SignedEntry, ...]
    public_keys: dict[str, str]
    registry: str  # where the registry lives (URL with any password hidden), for messages


@dataclass(frozen=True)
class Deployed:
    """What a deployer reports: where the version went, and facts worth signing (JSON-ready)."""

    target: str  # a stable name of the destination: "local", a folder, a device group, a URL
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Deployer(Protocol):
    name: str

    def deploy(self, release: Release, params: dict[str, Any]) -> Deployed:
        """Hand ``release`` to the target; return where it went. Raise on any failure."""


class GatewiseSpecs:
    @hookspec
    def gatewise_data_sources(self) -> list[DataSource]:
        """Return the data sources this plugin provides.

        Called once when the plugin manager is built; every result is collected. A source is
        chosen by ``[data] source`` in gatewise.toml, or is the built-in ``file`` source when
        ``--data`` is given. When ``load`` raises, the run stops before anything is trained and
        the error is reported as bad input (exit 2) if it is a ``UsageError``, else exit 1.
        """

    @hookspec
    def gatewise_trainers(self) -> list[Trainer]:
        """Return the trainers this plugin provides.

        Called once when the plugin manager is built; every result is collected. A trainer is
        chosen by ``[train] trainer`` and given ``[train] params``. When ``train`` raises, the run
        stops: without a parent model there is no candidate to gate.
        """

    @hookspec
    def gatewise_compressors(self) -> list[Compressor]:
        """Return the compressors this plugin provides.

        Called once when the plugin manager is built; every result is collected. Each name in
        ``[compress] compressors`` runs on the exported parent. Producers are isolated: when
        ``compress`` raises or writes a model that ONNX Runtime cannot run with the parent's
        input, that candidate is recorded as ``errored`` with the error, and the run goes on.
        """

    @hookspec
    def gatewise_deployers(self) -> list[Deployer]:
        """Return the deployers this plugin provides.

        Called once when the plugin manager is built; every result is collected. After a run
        promotes a version (and on `gatewise deploy VERSION --target NAME`), each name in
        ``[deploy] deployers`` gets a ``Release`` and ``[deploy.params.NAME]``, in the order
        listed; a deployer that defines ``check_params`` has it called before the run starts.
        ``deploy`` must return a ``Deployed``. Every call becomes a signed deployment entry with
        the deployer's name, version and distribution. When ``deploy`` raises (or returns
        something else), the deployment is recorded as ``failed`` with the error, the next
        deployer still runs, and the promotion stands: a deployer never undoes a promotion.
        """
