"""Builds the pluggy manager: built-in plugins first, then entry points of the group 'gatewise'."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pluggy

from gatewise import __version__, hookspecs
from gatewise.errors import GatewiseError, UsageError
from gatewise.types import PluginInfo

log = logging.getLogger(__name__)

# Like PYTEST_DISABLE_PLUGIN_AUTOLOAD: set, no entry point of the group 'gatewise' is loaded.
AUTOLOAD_ENV = "GATEWISE_DISABLE_PLUGIN_AUTOLOAD"

# Listed by module name and imported on demand, as pytest lists its default plugins.
BUILTIN_PLUGINS = (
    "gatewise.plugins.data_sources",
    "gatewise.plugins.mlp_trainer",
    "gatewise.plugins.search",
    "gatewise.plugins.quantization",
    "gatewise.plugins.graph_optimize",
    "gatewise.plugins.pruning",
    "gatewise.plugins.distillation",
    "gatewise.plugins.deployers",
)

KINDS = {
    "data_source": "gatewise_data_sources",
    "trainer": "gatewise_trainers",
    "compressor": "gatewise_compressors",
    "deployer": "gatewise_deployers",
}


@dataclass(frozen=True)
class LoadFailure:
    """An entry-point plugin that was skipped because importing it failed."""

    distribution: str
    entry_point: str
    error: str

    def describe(self) -> str:
        return f"plugin '{self.entry_point}' of distribution '{self.distribution}' failed to load: {self.error}"


@dataclass(frozen=True)
class Registered:
    component: Any
    info: PluginInfo


def _code_sha256(component: Any) -> str:
    try:
        source = inspect.getsource(inspect.getmodule(type(component)) or type(component))
    except (OSError, TypeError):
        source = repr(type(component))
    return hashlib.sha256(source.encode()).hexdigest()


class Plugins:
    """The loaded plugins and the components they provide, by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, failures: tuple[LoadFailure, ...] = (), disabled: tuple[str, ...] = ()) -> None:
        self.manager = manager
        self.failures = failures
        self.disabled = disabled
        self._dists = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
        self._components: dict[str, dict[str, Registered]] = {}
        for kind, hook_name in KINDS.items():
            found: dict[str, Registered] = {}
            hook = getattr(manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                try:
                    provided = impl.function() or []
                except Exception as exc:  # a plugin that crashes at load names itself
                    raise GatewiseError(f"plugin '{impl.plugin_name}' failed in {hook_name}: {exc}") from exc
                for component in provided:
                    name = getattr(component, "name", None)
                    if not isinstance(name, str) or not name:
                        raise GatewiseError(f"plugin '{impl.plugin_name}': a {kind} from {hook_name} has no 'name'")
                    if name in found:
                        raise GatewiseError(
                            f"{kind} '{name}' is provided twice: by '{found[name].info.distribution}' and by plugin '{impl.plugin_name}'"
                        )
                    found[name] = Registered(component, self._info(impl.plugin, component))
            self._components[kind] = found

    def _info(self, plugin: Any, component: Any) -> PluginInfo:
        dist = self._dists.get(id(plugin))
        distribution, version = (dist.project_name, dist.version) if dist else ("gatewise", __version__)
        return PluginInfo(component.name, version, distribution, _code_sha256(component))

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def get(self, kind: str, name: str) -> Registered:
        try:
            registered = self._components[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            why = "".join(f"; {failure.describe()}" for failure in self.failures)
            if self.disabled:
                why += f"; disabled plugins: {', '.join(self.disabled)}"
            elif os.environ.get(AUTOLOAD_ENV):
                why += f"; entry-point plugins are off ({AUTOLOAD_ENV} is set)"
            raise UsageError(f"unknown {kind.replace('_', ' ')} '{name}' (known: {known}){why}") from None
        return registered


def build_plugin_manager(load_entrypoints: bool = True, blocked: tuple[str, ...] = ()) -> pluggy.PluginManager:
    return _build(load_entrypoints, blocked)[0]


def _build(load_entrypoints: bool, blocked: tuple[str, ...]) -> tuple[pluggy.PluginManager, tuple[LoadFailure, ...]]:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs.GatewiseSpecs)
    for name in blocked:
        manager.set_blocked(name)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    failures: list[LoadFailure] = []
    if load_entrypoints and not os.environ.get(AUTOLOAD_ENV):
        failures = _load_entrypoints(manager, set(blocked))
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise GatewiseError(f"plugin '{exc.plugin}' implements an unknown hook: {exc}") from exc
    return manager, tuple(failures)


def _load_entrypoints(manager: pluggy.PluginManager, blocked: set[str]) -> list[LoadFailure]:
    """Load each entry point of the group on its own (pluggy's loader, one name at a time), so one
    that fails to import is named and skipped instead of stopping every run."""
    from importlib.metadata import distributions

    failures: list[LoadFailure] = []
    for dist in distributions():
        distribution = dist.metadata["name"] or "?"
        if distribution in blocked:
            continue
        for entry in dist.entry_points:
            if entry.group != hookspecs.PROJECT or entry.name in blocked or manager.get_plugin(entry.name):
                continue
            try:
                manager.load_setuptools_entrypoints(hookspecs.PROJECT, name=entry.name)
            except Exception as exc:  # noqa: BLE001 - a broken plugin is skipped, not fatal
                failure = LoadFailure(distribution, entry.name, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                log.warning("%s; skipped (disable it with [plugins] disable = [\"%s\"])", failure.describe(), entry.name)
                failures.append(failure)
    return failures


_active_disable: tuple[str, ...] = ()


def load_plugins(disable: tuple[str, ...] | None = None) -> Plugins:
    """The loaded plugins. ``disable`` ([plugins] disable: entry-point or distribution names) is
    remembered: later calls without it see the same plugins."""
    global _active_disable
    if disable is not None and tuple(disable) != _active_disable:
        _active_disable = tuple(disable)
        _load.cache_clear()
    return _load(_active_disable)


@lru_cache(maxsize=1)
def _load(disable: tuple[str, ...]) -> Plugins:
    manager, failures = _build(True, disable)
    return Plugins(manager, failures, disable)
