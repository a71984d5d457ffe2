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

from gatewise import PLUGIN_API_VERSION, __version__, hookspecs
from gatewise.errors import GatewiseError, UsageError
from gatewise.provenance import distribution_sha256
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

KINDS = {kind.kind: kind.hook for kind in hookspecs.COMPONENT_KINDS}


@dataclass(frozen=True)
class LoadFailure:
    """A plugin, or one component of it, that was not loaded: its import failed ("import"), it needs
    another plugin API ("api"), or a component lacks a required method ("method")."""

    distribution: str
    entry_point: str
    error: str
    reason: str = "import"
    kind: str | None = None  # for a refused component: its kind and name
    component: str | None = None

    def describe(self) -> str:
        if self.reason == "method":
            return (f"{self.kind} '{self.component}' of plugin '{self.entry_point}' (distribution "
                    f"'{self.distribution}') is refused: {self.error}")
        verb = "is refused" if self.reason == "api" else "failed to load"
        return f"plugin '{self.entry_point}' of distribution '{self.distribution}' {verb}: {self.error}"


@dataclass(frozen=True)
class Skipped:
    """An entry point that was found but not loaded, because ``[plugins] disable`` names it."""

    distribution: str
    entry_point: str


def api_refusal(declared: Any) -> str | None:
    """Why a plugin declaring ``GATEWISE_PLUGIN_API = declared`` cannot load, or None when it can:
    the majors must be equal and its minor at most gatewise's. Nothing declared (None) loads."""
    if declared is None:
        return None
    provided = tuple(int(part) for part in PLUGIN_API_VERSION.split("."))
    try:
        major, minor = (int(part) for part in str(declared).split("."))
    except ValueError:
        return f"its {hookspecs.API_ATTRIBUTE} = {declared!r} is not \"MAJOR.MINOR\" (gatewise {__version__} provides {PLUGIN_API_VERSION})"
    if major == provided[0] and minor <= provided[1]:
        return None
    return (f"it needs plugin API {major}.{minor}, and gatewise {__version__} provides {PLUGIN_API_VERSION} "
            "(the major must be equal and the minor at most gatewise's)")


def missing_method(kind: str, component: Any) -> str | None:
    """Why ``component`` cannot serve as a ``kind``: a required method absent or not callable, or an
    optional one present but not callable (COMPONENT_KINDS); None when it can."""
    table = next(k for k in hookspecs.COMPONENT_KINDS if k.kind == kind)
    for method in table.required:
        if not callable(getattr(component, method, None)):
            return f"it has no callable '{method}' (a {kind.replace('_', ' ')} must define {', '.join(table.required)})"
    for method in table.optional:
        if hasattr(component, method) and not callable(getattr(component, method)):
            return f"its '{method}' is not callable"
    return None


@dataclass(frozen=True)
class Registered:
    component: Any
    info: PluginInfo
    plugin: Any = None  # the plugin object (module) that provided it


def _code_sha256(component: Any) -> str:
    try:
        source = inspect.getsource(inspect.getmodule(type(component)) or type(component))
    except (OSError, TypeError):
        source = repr(type(component))
    return hashlib.sha256(source.encode()).hexdigest()


class Plugins:
    """The loaded plugins and the components they provide, by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, failures: tuple[LoadFailure, ...] = (), disabled: tuple[str, ...] = (),
                 skipped: tuple[Skipped, ...] = ()) -> None:
        self.manager = manager
        self.disabled = disabled
        self.skipped = skipped
        self._dists = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
        self._components: dict[str, dict[str, Registered]] = {}
        refused: list[LoadFailure] = []
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
                    why = missing_method(kind, component)
                    if why is not None:
                        refusal = LoadFailure(self.distribution(impl.plugin)[0], impl.plugin_name, why, "method", kind, name)
                        log.warning("%s; skipped", refusal.describe())
                        refused.append(refusal)
                        continue
                    if name in found:
                        raise GatewiseError(
                            f"{kind} '{name}' is provided twice: by '{found[name].info.distribution}' and by plugin '{impl.plugin_name}'"
                        )
                    found[name] = Registered(component, self._info(impl.plugin, component), impl.plugin)
            self._components[kind] = found
        self.failures = (*failures, *refused)

    def distribution(self, plugin: Any) -> tuple[str, str]:
        """(name, version) of the distribution a plugin came from; gatewise's for the built-ins."""
        dist = self._dists.get(id(plugin))
        return (dist.project_name, dist.version) if dist else ("gatewise", __version__)

    def entry_point(self, plugin: Any) -> str | None:
        """``name = value`` of the entry point a plugin was loaded from; None for one registered
        directly (the built-ins)."""
        dist = self._dists.get(id(plugin))
        name = self.manager.get_name(plugin)
        for entry in dist.entry_points if dist else ():
            if entry.group == hookspecs.PROJECT and entry.name == name:
                return f"{entry.name} = {entry.value}"
        return None

    def plugin_api(self, plugin: Any) -> str:
        """The plugin API a plugin declares; the built-ins are gatewise's own; "undeclared" for an
        entry-point plugin that declares none (it loads: see gatewise.PLUGIN_API_VERSION)."""
        declared = getattr(plugin, hookspecs.API_ATTRIBUTE, None)
        if declared is None and id(plugin) not in self._dists:
            return PLUGIN_API_VERSION
        return "undeclared" if declared is None else str(declared)

    def components(self, kind: str) -> list[Registered]:
        """Every loaded component of ``kind``, by name."""
        return [self._components[kind][name] for name in self.names(kind)]

    def _info(self, plugin: Any, component: Any) -> PluginInfo:
        distribution, version = self.distribution(plugin)
        return PluginInfo(component.name, version, distribution, _code_sha256(component), plugin_api=self.plugin_api(plugin),
                          distribution_sha256=distribution_sha256(distribution))

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def get(self, kind: str, name: str) -> Registered:
        try:
            registered = self._components[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            own = [f for f in self.failures if f.kind == kind and f.component == name]
            why = "".join(f"; {failure.describe()}" for failure in own or self.failures)
            if self.disabled:
                why += f"; disabled plugins: {', '.join(self.disabled)}"
            elif os.environ.get(AUTOLOAD_ENV):
                why += f"; entry-point plugins are off ({AUTOLOAD_ENV} is set)"
            raise UsageError(f"unknown {kind.replace('_', ' ')} '{name}' (known: {known}){why}") from None
        return registered


def build_plugin_manager(load_entrypoints: bool = True, blocked: tuple[str, ...] = ()) -> pluggy.PluginManager:
    return _build(load_entrypoints, blocked)[0]


def _build(load_entrypoints: bool, blocked: tuple[str, ...]) -> tuple[pluggy.PluginManager, list[LoadFailure], list[Skipped]]:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs.GatewiseSpecs)
    for name in blocked:
        manager.set_blocked(name)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    failures: list[LoadFailure] = []
    skipped: list[Skipped] = []
    if load_entrypoints and not os.environ.get(AUTOLOAD_ENV):
        failures, skipped = _load_entrypoints(manager, set(blocked))
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise GatewiseError(f"plugin '{exc.plugin}' implements an unknown hook: {exc}") from exc
    return manager, failures, skipped


def _load_entrypoints(manager: pluggy.PluginManager, blocked: set[str]) -> tuple[list[LoadFailure], list[Skipped]]:
    """Load each entry point of the group on its own (pluggy's loader, one name at a time), so one
    that fails to import, or needs another plugin API, is named and skipped instead of stopping
    every run. The API is checked after the import and before pluggy registers the plugin."""
    from importlib.metadata import distributions

    failures: list[LoadFailure] = []
    skipped: list[Skipped] = []
    for dist in distributions():
        distribution = dist.metadata["name"] or "?"
        for entry in dist.entry_points:
            if entry.group != hookspecs.PROJECT or manager.get_plugin(entry.name):
                continue
            if distribution in blocked or entry.name in blocked:
                skipped.append(Skipped(distribution, entry.name))
                continue
            try:
                refusal = api_refusal(getattr(entry.load(), hookspecs.API_ATTRIBUTE, None))
                failure = LoadFailure(distribution, entry.name, refusal, "api") if refusal else None
                if failure is None:
                    manager.load_setuptools_entrypoints(hookspecs.PROJECT, name=entry.name)
            except Exception as exc:  # noqa: BLE001 - a broken plugin is skipped, not fatal
                failure = LoadFailure(distribution, entry.name, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            if failure is not None:
                log.warning("%s; skipped (disable it with [plugins] disable = [\"%s\"])", failure.describe(), entry.name)
                failures.append(failure)
    return failures, skipped


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
    manager, failures, skipped = _build(True, disable)
    return Plugins(manager, tuple(failures), disable, tuple(skipped))
