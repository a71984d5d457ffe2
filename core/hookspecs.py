"""The plugin contract: every hook through which gatewise gets its components.

Plugins are ordinary Python packages that expose a module (or object) under the entry-point
group ``gatewise``; gatewise's own components register through these same hooks. Each hook
returns a list of components; configuration picks one by its ``name``. A component name may be
provided once: two plugins offering the same name is an error at load time, naming both.

Each kind of component is a ``Protocol`` below; ``COMPONENT_KINDS`` is the one table of the methods
each kind must define (``required``) and may define (``optional``). A component missing a required
method is refused at load time, by name. A plugin declares the plugin API it was written for with a
module-level (or object) attribute ``GATEWISE_PLUGIN_API = "MAJOR.MINOR"``; see
``gatewise.PLUGIN_API_VERSION`` for the rule.

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
    """Reads a table: chosen by ``[data] source``, or the built-in ``file`` source with ``--data``."""

    name: str

    def load(self, path: Path | None) -> SourceTable:
        """Read the raw table. Required.

        :param path: the ``--data`` file, or None for a source that brings its own data.
        :returns: a ``SourceTable``: the frame and the defaults of its schema.
        :raises UsageError: for a problem the user can fix (exit 2); anything else is exit 1.
        """


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
    """Fits the parent model: chosen by ``[train] trainer``."""

    name: str

    def train(self, train: pd.DataFrame, label: np.ndarray, spec: InputSpec, params: dict[str, Any]) -> TrainedModel:
        """Fit a model on the training split only. Required.

        :param train: the training split, raw columns (the test split is held out for the gates).
        :param label: 0/1 per row of ``train`` (1 = the positive value).
        :param spec: the input contract, fitted on ``train``; ``spec.encode(frame)`` gives [N, F] float32.
        :param params: ``[train] params`` from gatewise.toml.
        :returns: a ``TrainedModel`` whose module maps [N, F] float32 to P(positive) [N].
        :raises: anything: the run stops (without a parent there is nothing to gate).
        """

    def check_params(self, params: dict[str, Any]) -> None:
        """Validate ``[train] params`` before the run starts. Optional.

        :param params: ``[train] params`` from gatewise.toml.
        :raises UsageError: naming an unknown or bad parameter; the run stops in pre-flight with that line.
        """


@runtime_checkable
class Compressor(Protocol):
    """Derives a candidate from the parent ONNX model: each name in ``[compress] compressors``."""

    name: str

    def compress(self, parent: Path, output: Path, calibration: np.ndarray, params: dict[str, Any]) -> None:
        """Write a compressed ONNX model to ``output``, derived from the ONNX file ``parent``. Required.

        Runs in a process of its own, under ``[compress] timeout_s``.

        :param parent: the exported FP32 ONNX file (self-contained); read-only.
        :param output: where to write the one self-contained ONNX file; gatewise chooses it.
        :param calibration: a float32 sample [N, F] of encoded training rows, for calibration.
        :param params: ``[compress.params.<name>]`` from gatewise.toml (empty when absent).
        :returns: None; the output must read the same input and give the same output as the parent.
        :raises: anything: the candidate is recorded as ``errored`` with the traceback; the run goes on.
        """

    def check_params(self, params: dict[str, Any]) -> None:
        """Validate ``[compress.params.<name>]`` before the run starts. Optional.

        :param params: ``[compress.params.<name>]`` from gatewise.toml (empty when absent).
        :raises UsageError: naming an unknown or bad parameter; the run stops in pre-flight with that line.
        """

    def applies(self, parent: Path, params: dict[str, Any]) -> str | None:
        """Say whether this compressor fits the parent model, before ``compress`` is called. Optional.

        :param parent: the exported FP32 ONNX file; read-only.
        :param params: ``[compress.params.<name>]`` from gatewise.toml (empty when absent).
        :returns: None when it applies; otherwise the reason it does not (one line). A compressor
            that does not apply is recorded as ``skipped`` with that reason in the signed run outcome,
            and makes no version. Absent: it always applies.
        :raises: anything: the candidate is recorded as ``errored``, as when ``compress`` raises.
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
    """Hands a promoted version to a target: each name in ``[deploy] deployers``."""

    name: str

    def deploy(self, release: Release, params: dict[str, Any]) -> Deployed:
        """Hand ``release`` to the target. Required.

        :param release: the live version, checked by gatewise; its ``artifact`` is read-only.
        :param params: ``[deploy.params.<name>]`` from gatewise.toml (empty when absent).
        :returns: a ``Deployed`` naming where the version went.
        :raises: anything, on any failure: a signed deployment entry records ``failed``; the promotion stands.
        """

    def check_params(self, params: dict[str, Any]) -> None:
        """Validate ``[deploy.params.<name>]`` before the run (or `gatewise deploy`) starts. Optional.

        :param params: ``[deploy.params.<name>]`` from gatewise.toml (empty when absent).
        :raises UsageError: naming an unknown or bad parameter; the run stops in pre-flight with that line.
        """


class GatewiseSpecs:
    """Every hook: called once per process when the plugin manager is built, with no arguments;
    every plugin's results are collected (no first-result-wins)."""

    @hookspec
    def gatewise_data_sources(self) -> list[DataSource]:
        """Return the data sources this plugin provides.

        A source is chosen by ``[data] source`` in gatewise.toml, or is the built-in ``file``
        source when ``--data`` is given.

        :returns: a list of ``DataSource`` components, each with a unique ``name``.
        :raises: loading stops with an error naming the plugin. When ``load`` raises later, the run
            stops before anything is trained: exit 2 for a ``UsageError``, else exit 1.
        """

    @hookspec
    def gatewise_trainers(self) -> list[Trainer]:
        """Return the trainers this plugin provides.

        A trainer is chosen by ``[train] trainer`` and given ``[train] params``; its
        ``check_params``, when defined, is called in pre-flight.

        :returns: a list of ``Trainer`` components, each with a unique ``name``.
        :raises: loading stops with an error naming the plugin. When ``train`` raises later, the
            run stops: without a parent model there is no candidate to gate.
        """

    @hookspec
    def gatewise_compressors(self) -> list[Compressor]:
        """Return the compressors this plugin provides.

        Each name in ``[compress] compressors`` runs on the exported parent, each in a process of
        its own under ``[compress] timeout_s``; its ``check_params`` is called in pre-flight and
        its ``applies`` (when defined) before ``compress``.

        :returns: a list of ``Compressor`` components, each with a unique ``name``.
        :raises: loading stops with an error naming the plugin. Producers are isolated: when
            ``compress`` raises, times out, dies or writes a model that ONNX Runtime cannot run
            with the parent's input and output, that candidate is recorded as ``errored`` with the
            error, and the run goes on; when ``applies`` gives a reason, it is ``skipped``.
        """

    @hookspec
    def gatewise_deployers(self) -> list[Deployer]:
        """Return the deployers this plugin provides.

        After a run promotes a version (and on `gatewise deploy VERSION --target NAME`), each name
        in ``[deploy] deployers`` gets a ``Release`` and ``[deploy.params.NAME]``, in the order
        listed; its ``check_params``, when defined, is called before the run starts. Every call
        becomes a signed deployment entry with the deployer's name, version and distribution.

        :returns: a list of ``Deployer`` components, each with a unique ``name``.
        :raises: loading stops with an error naming the plugin. When ``deploy`` raises (or returns
            something other than a ``Deployed``), the deployment is recorded as ``failed`` with
            the error, the next deployer still runs, and the promotion stands.
        """


@dataclass(frozen=True)
class ComponentKind:
    """One kind of component: the hook that provides it, its Protocol, and the methods a component
    of that kind must define (refused at load time without them) and may define."""

    kind: str
    hook: str
    protocol: type
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


# The one table of required and optional methods per kind (the plugin manager refuses by it; a
# test keeps it equal to the Protocols' methods, and docs/plugins.md lists each).
COMPONENT_KINDS: tuple[ComponentKind, ...] = (
    ComponentKind("data_source", "gatewise_data_sources", DataSource, required=("load",)),
    ComponentKind("trainer", "gatewise_trainers", Trainer, required=("train",), optional=("check_params",)),
    ComponentKind("compressor", "gatewise_compressors", Compressor, required=("compress",), optional=("check_params", "applies")),
    ComponentKind("deployer", "gatewise_deployers", Deployer, required=("deploy",), optional=("check_params",)),
)

# The attribute of a plugin (its entry-point module or object) that declares the plugin API it
# needs, "MAJOR.MINOR"; compared with gatewise.PLUGIN_API_VERSION at load time.
API_ATTRIBUTE = "GATEWISE_PLUGIN_API"
