"""Builds the pluggy manager: built-in plugins first, then entry points of the group 'gatewise'."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pluggy

from gatewise import __version__, hookspecs
from gatewise.errors import GatewiseError, UsageError
from gatewise.types import PluginInfo

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

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
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
            raise UsageError(f"unknown {kind.replace('_', ' ')} '{name}' (known: {known})") from None
        return registered


def build_plugin_manager(load_entrypoints: bool = True, blocked: tuple[str, ...] = ()) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs.GatewiseSpecs)
    for name in blocked:
        manager.set_blocked(name)
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    if load_entrypoints:
        try:
            manager.load_setuptools_entrypoints(hookspecs.PROJECT)
        except Exception as exc:
            raise GatewiseError(f"a plugin of entry-point group 'gatewise' failed to load: {exc}") from exc
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise GatewiseError(f"plugin '{exc.plugin}' implements an unknown hook: {exc}") from exc
    return manager


@lru_cache(maxsize=1)
def load_plugins() -> Plugins:
    return Plugins(build_plugin_manager())
