"""Plugin discovery: built-ins through the same hooks as third parties, clear errors on conflicts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatewise import hookspecs
from gatewise.errors import GatewiseError, UsageError
from gatewise.hookspecs import Compressor, DataSource, Trainer, hookimpl
from gatewise.plugin_manager import Plugins, build_plugin_manager

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def builtins() -> Plugins:
    """The built-in plugins alone: installed third-party plugins (the example one) left out."""
    return Plugins(build_plugin_manager(load_entrypoints=False))


def test_builtins_are_found_by_name_through_the_hooks():
    plugins = builtins()
    assert plugins.names("data_source") == ["arrests", "file"]
    assert plugins.names("trainer") == ["mlp", "mlp_search"]
    assert plugins.names("compressor") == ["distill", "graph_optimize", "int8_dynamic", "int8_static", "prune_units"]


@pytest.mark.parametrize(
    ("kind", "protocol"), [("data_source", DataSource), ("trainer", Trainer), ("compressor", Compressor)]
)
def test_builtins_satisfy_their_protocol_and_record_their_origin(kind, protocol):
    plugins = builtins()
    for name in plugins.names(kind):
        registered = plugins.get(kind, name)
        assert isinstance(registered.component, protocol)
        assert registered.info.name == name
        assert registered.info.distribution == "gatewise"
        assert re.fullmatch(r"[0-9a-f]{64}", registered.info.code_sha256)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UsageError, match=r"unknown compressor 'int4' \(known: distill, graph_optimize, int8_dynamic, int8_static, prune_units\)"):
        builtins().get("compressor", "int4")


class _Copycat:
    name = "int8_dynamic"

    def compress(self, parent, output, calibration, params):  # pragma: no cover - never run
        raise AssertionError


class _CopycatPlugin:
    @hookimpl
    def gatewise_compressors(self):
        return [_Copycat()]


def test_a_second_plugin_with_a_taken_name_is_refused_naming_both():
    manager = build_plugin_manager(load_entrypoints=False)
    manager.register(_CopycatPlugin(), name="copycat")
    with pytest.raises(GatewiseError, match="compressor 'int8_dynamic' is provided twice: by 'gatewise' and by plugin 'copycat'"):
        Plugins(manager)


class _Nameless:
    @hookimpl
    def gatewise_trainers(self):
        return [object()]


def test_a_component_without_a_name_is_refused():
    manager = build_plugin_manager(load_entrypoints=False)
    manager.register(_Nameless(), name="nameless")
    with pytest.raises(GatewiseError, match=r"plugin 'nameless': a trainer .* has no 'name'"):
        Plugins(manager)


def test_every_hook_and_builtin_is_documented():
    text = DOCS.read_text()
    hooks = [name for name in vars(hookspecs.GatewiseSpecs) if name.startswith("gatewise_")]
    assert hooks, "no hookspecs found"
    for name in hooks:
        assert f"`{name}`" in text, f"hook {name} is missing from docs/plugins.md"
    plugins = builtins()
    for kind in ("data_source", "trainer", "compressor"):
        for name in plugins.names(kind):
            assert f"`{name}`" in text, f"built-in {kind} {name} is missing from docs/plugins.md"


def test_every_builtin_parameter_is_documented():
    from gatewise.plugins.mlp_trainer import MLPParams
    from gatewise.plugins.quantization import DynamicParams, StaticParams

    text = DOCS.read_text()
    for model in (MLPParams, DynamicParams, StaticParams):
        for name in model.model_fields:
            assert f"`{name}`" in text, f"{model.__name__}.{name} is missing from docs/plugins.md"
