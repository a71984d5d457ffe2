"""Typed settings read from one gatewise.toml; an unknown key or a bad value names itself."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, ValidationError, model_validator

from gatewise.errors import UsageError
from gatewise.policy import GatePolicy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Strict):
    source: str = Field("arrests", description="Data source plugin used when no --data file is given.")
    path: Path | None = Field(None, description="CSV or parquet file to train on (the 'file' source).")
    label: str | None = Field(None, description="Label column; the source's default when unset.")
    positive: str | None = Field(None, description="Label value that counts as the positive class.")
    sensitive: tuple[str, ...] | None = Field(None, description="Sensitive columns the fairness gate groups by.")
    current: Path | None = Field(None, description="Current (production) data the drift gate compares with training data; the test split when unset.")
    id_column: str | None = Field(None, description="Row id column (--id): not a feature; the leakage gate fails when it orders or predicts the label.")
    time_column: str | None = Field(None, description="Time column (--time): not a feature; the leakage gate fails when the split puts test rows before training rows.")
    model_name: str | None = Field(None, description="Registry model name; the dataset's name when unset.")


class SplitSettings(_Strict):
    seed: int = Field(42, description="Seed of the deterministic train/test split.")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="Share of rows held out for the gates.")
    kind: Literal["random", "time"] = Field("random", description="'random' (stratified by the label) or 'time' (--split time: the latest rows by [data] time_column are the test split).")


class TrainSettings(_Strict):
    trainer: str = Field("mlp", description="Trainer plugin by name.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters passed to the trainer (see its documentation).")


SEARCH_TRAINER = "mlp_search"  # the built-in trainer that reads [search]


class SearchSettings(_Strict):
    """The hyper-parameter search's budget, read by the ``mlp_search`` trainer (docs/optimization.md)."""

    trials: int = Field(12, ge=1, le=10_000, description="Most trials.")
    timeout_s: float = Field(60.0, gt=0, le=86_400, description="Wall-time budget of the search in seconds; no trial starts after it (those running finish).")
    parallel: int = Field(1, ge=1, le=64, description="Most trials running at once, each a task on the flow's task runner (one torch thread each). 1 (one after another) is reproducible, and on the threads runner no slower: the small MLP's fit holds the GIL (docs/optimization.md); more pays on a runner whose workers are processes.")
    seed: int = Field(0, ge=0, description="Seed of the TPE sampler and of every trial's fit.")
    startup_trials: int = Field(4, ge=0, le=1000, description="Trials sampled at random before TPE, and before the median pruner may prune.")
    epochs: int = Field(30, ge=1, le=10_000, description="Most epochs per trial (early stopping and the pruner end most sooner).")


class CompressSettings(_Strict):
    compressors: tuple[str, ...] = Field(("graph_optimize", "int8_dynamic", "int8_static", "distill+graph_optimize"), description="Compressor plugins to run on the exported parent, by name.")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Parameters per compressor name.")
    timeout_s: PositiveFloat = Field(300.0, description="Seconds one compressor may run in its own process before it is killed and its candidate recorded as errored; a chain 'a+b' gets the sum of its steps' limits.")
    timeouts: dict[str, PositiveFloat] = Field(default_factory=dict, description="Per-compressor (or per-chain entry) overrides of timeout_s, in seconds.")


class PluginSettings(_Strict):
    disable: tuple[str, ...] = Field((), description="Entry-point plugins not to load, by entry-point or distribution name (like pytest's -p no:NAME); $GATEWISE_DISABLE_PLUGIN_AUTOLOAD=1 loads none.")


class SelectSettings(_Strict):
    objective: Literal["latency", "throughput", "size", "weighted"] = Field("latency", description="What picks the winner among candidates that passed every gate: batch-1 p50 latency, large-batch throughput, file size, or a weighted sum of the three as ratios to the parent (docs/optimization.md).")
    weights: dict[Literal["latency", "throughput", "size"], NonNegativeFloat] = Field(default_factory=lambda: {"latency": 1.0, "size": 0.5}, description="Weights of the 'weighted' objective: each figure's ratio to the parent's is multiplied by its weight.")
    tie_tolerance: float = Field(0.05, ge=0, le=1, description="Relative difference under which two figures are a tie (noise); a tie goes to the smaller file, and a child is 'slower than its parent' only beyond it.")
    large_batch: int = Field(256, ge=2, le=65536, description="Rows per call of the large-batch latency and throughput measurement.")


class RegistrySettings(_Strict):
    url: str | None = Field(None, description="SQLAlchemy URL of the registry; a SQLite file under the gatewise home when unset. The --url flag and then $GATEWISE_REGISTRY_URL override it (resolve_registry_url).")


class RunSettings(_Strict):
    task_runner: Literal["threads", "dask"] = Field("threads", description="Prefect task runner for the candidates' compressors and gates: 'threads' (in this process) or 'dask' (prefect-dask; pip install 'gatewise[dask]').")
    address: str | None = Field(None, description="Address of an existing Dask scheduler (tcp://host:8786) for task_runner 'dask'; a local cluster when unset.")


class DeploySettings(_Strict):
    deployers: tuple[str, ...] = Field(("local",), description="Deployer plugins that receive each promoted version, by name.")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Parameters per deployer name.")


class ServeSettings(_Strict):
    max_batch: int = Field(32, ge=1, description="Most rows the server scores in one micro-batch.")
    max_wait_ms: float = Field(2.0, ge=0, description="Longest a request waits for others to join its micro-batch, in milliseconds.")
    poll_s: float = Field(1.0, gt=0, description="How often the server checks the ledger head for a new promotion or rollback, in seconds.")
    log_inputs: bool = Field(False, description="Sample request rows to a local Parquet window for `gatewise monitor --from-serving`.")


class MonitorSettings(_Strict):
    max_drifted_share: float | None = Field(None, ge=0, le=1, description="Drifted-column share that triggers a retrain; the drift gate's limit ([gates.drift]) when unset.")
    max_weighted_drift: float | None = Field(None, ge=0, description="Importance-weighted column drift of the live model that triggers a retrain; the drift gate's limit when unset.")
    max_prediction_drift: float | None = Field(None, ge=0, description="Drift of the live model's predicted probabilities (reference vs current) that triggers a retrain; the drift gate's limit when unset.")


class Settings(_Strict):
    data: DataSettings = Field(default_factory=DataSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    compress: CompressSettings = Field(default_factory=CompressSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    select: SelectSettings = Field(default_factory=SelectSettings)
    gates: GatePolicy = Field(default_factory=GatePolicy)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    run: RunSettings = Field(default_factory=RunSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)

    @model_validator(mode="wrap")
    @classmethod
    def _fold_search(cls, data: Any, handler: Any) -> Settings:
        """[search] is handed to the ``mlp_search`` trainer inside its [train] params.

        The trainer receives only its params, so the budget is folded in here, once: the signed
        settings then show it in both places. A budget key also set in [train] params must agree
        with [search] (as in a recorded settings dump), else the run would use a budget other than
        the one [search] names.
        """
        settings = handler(data)
        search = settings.search.model_dump()
        if settings.train.trainer != SEARCH_TRAINER:
            if settings.search != SearchSettings():
                raise ValueError(f"[search] is read by the '{SEARCH_TRAINER}' trainer only; [train] trainer is '{settings.train.trainer}'")
            return settings
        for key, value in search.items():
            if key in settings.train.params and settings.train.params[key] != value:
                raise ValueError(
                    f"[train] params '{key}' = {settings.train.params[key]!r} conflicts with [search] {key} = {value!r}: "
                    "set the search budget in [search] only"
                )
        train = settings.train.model_copy(update={"params": {**settings.train.params, **search}})
        return settings.model_copy(update={"train": train})

    def digest(self) -> str:
        """sha256 of the canonical JSON of these settings, recorded with every run."""
        return _canonical_digest(self.model_dump(mode="json"))

    def gates_digest(self) -> str:
        """sha256 of the gate policy alone, recorded with every gate result."""
        return _canonical_digest(self.gates.model_dump(mode="json"))


def _canonical_digest(document: Any) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_settings(raw: dict[str, Any], origin: str = "settings") -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise UsageError(f"{origin}: unknown key '{key}'") from None
        if not key and first["type"] == "value_error":  # a rule across sections (Settings._fold_search)
            raise UsageError(f"{origin}: {first['ctx']['error']}") from None
        raise UsageError(f"{origin}: bad value for '{key}': {first['msg']}") from None


def load_settings(path: Path | None) -> Settings:
    """Read gatewise.toml; with no path, ./gatewise.toml if present, else the defaults."""
    if path is None:
        default = Path("gatewise.toml")
        if not default.exists():
            return Settings()
        path = default
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    return parse_settings(raw, origin=str(path))


REGISTRY_URL_ENV = "GATEWISE_REGISTRY_URL"


def resolve_registry_url(flag: str | None = None, settings: Settings | None = None, config: Path | None = None) -> str | None:
    """Which registry a command opens; every command asks here, so all follow one order.

    The ``--url`` flag, then ``$GATEWISE_REGISTRY_URL``, then ``[registry] url`` of gatewise.toml
    (``settings`` when the caller has them, else read from ``config`` or ./gatewise.toml, and only
    when the two before are unset, so a broken gatewise.toml does not stop a command given --url).
    None means the SQLite file in the gatewise home, ``<home>/registry.db``, which
    ``Registry.open(home, None)`` opens. An empty flag or variable counts as unset.
    """
    if flag:
        return flag
    env = os.environ.get(REGISTRY_URL_ENV)
    if env:
        return env
    if settings is None:
        settings = load_settings(config)
    return settings.registry.url
