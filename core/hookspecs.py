"""The plugin contract: every hook through which gatewise gets its components.

Plugins are ordinary Python packages that expose a module (or object) under the entry-point
group ``gatewise``; gatewise's own components register through these same hooks. Each hook
returns a list of components; configuration picks one by its ``name``. A component name may be
provided once: two plugins offering the same name is an error at load time, naming both.

A trainer or compressor may also define ``check_params(params) -> None``, raising
``gatewise.errors.UsageError`` for an unknown or bad parameter: gatewise calls it before the run
starts, so a typo in gatewise.toml stops the run with one line instead of becoming an errored
candidate.

Every hook here is called once per process, when the plugin manager is first built, and has no
arguments. If a hook implementation raises, loading stops with an error that names the plugin.
What happens when a *component* raises later depends on its role and is said on each hook.
"""

from __future__ import annotations

from dataclasses import dataclass
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
