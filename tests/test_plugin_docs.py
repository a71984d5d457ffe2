"""docs/plugins.md stays in step with the contract: every hook, every Protocol method with its
signature, the table of required and optional methods, the plugin API rule, every built-in."""

from __future__ import annotations

import inspect
from pathlib import Path

from gatewise import PLUGIN_API_VERSION, hookspecs
from gatewise.hookspecs import COMPONENT_KINDS
from gatewise.plugin_manager import Plugins, build_plugin_manager

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def protocol_methods(protocol: type) -> dict[str, str]:
    """Each method a Protocol defines, with the signature line docs/plugins.md must show."""
    methods = {}
    for name, function in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(function):
            continue
        signature = inspect.signature(function)
        params = ", ".join(p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {p.annotation}"
                           for p in signature.parameters.values())
        methods[name] = f"def {name}({params}) -> {signature.return_annotation}"
    return methods


def test_every_hook_is_documented():
    text = DOCS.read_text()
    hooks = [name for name in vars(hookspecs.GatewiseSpecs) if name.startswith("gatewise_")]
    assert sorted(hooks) == sorted(kind.hook for kind in COMPONENT_KINDS), "COMPONENT_KINDS must name every hook"
    missing = [name for name in hooks if f"`{name}`" not in text]
    assert not missing, f"hooks missing from docs/plugins.md: {', '.join(missing)}"


def test_every_protocol_method_is_documented_with_its_signature():
    text = DOCS.read_text()
    missing = [f"{kind.protocol.__name__}.{line}" for kind in COMPONENT_KINDS
               for line in protocol_methods(kind.protocol).values() if line not in text]
    assert not missing, "Protocol methods missing from docs/plugins.md (or shown with another signature): " + "; ".join(missing)


def test_the_method_table_is_the_protocols():
    """COMPONENT_KINDS (what the loader refuses by) lists exactly each Protocol's methods, and the
    docs' table says the same."""
    text = DOCS.read_text()
    for kind in COMPONENT_KINDS:
        assert sorted(kind.required + kind.optional) == sorted(protocol_methods(kind.protocol)), kind.kind
        row = next((line for line in text.splitlines() if line.startswith(f"| {kind.kind.replace('_', ' ')} | `{kind.hook}`")), None)
        assert row is not None, f"docs/plugins.md has no method-table row for {kind.kind}"
        required, optional = (cell.strip() for cell in row.strip("|").split("|")[2:4])
        assert required == ", ".join(f"`{m}`" for m in kind.required), f"{kind.kind}: required methods differ: {required}"
        assert optional == ", ".join(f"`{m}`" for m in kind.optional), f"{kind.kind}: optional methods differ: {optional}"


def test_the_plugin_api_and_the_benchmark_are_documented():
    text = DOCS.read_text()
    assert f'GATEWISE_PLUGIN_API = "{PLUGIN_API_VERSION}"' in text and hookspecs.API_ATTRIBUTE == "GATEWISE_PLUGIN_API"
    assert "the major must be equal, and the plugin's minor at most gatewise's" in text
    from gatewise.benchmark import THREADS
    from gatewise.config import CompressSettings

    assert f"`intra_op_num_threads = {THREADS}`" in text and "ORT_ENABLE_ALL" in text
    defaults = ", ".join(f'"{name}"' for name in CompressSettings().compressors)
    assert f"default is `[{defaults}]`" in text, "the default [compress] compressors changed: update docs/plugins.md"
    assert "Listing compressors replaces the defaults" in text
    assert "(plugin-testing.md)" in text


def test_every_builtin_and_its_parameters_are_documented():
    from gatewise.plugins.mlp_trainer import MLPParams
    from gatewise.plugins.quantization import DynamicParams, StaticParams

    text = DOCS.read_text()
    plugins = Plugins(build_plugin_manager(load_entrypoints=False))
    for kind in ("data_source", "trainer", "compressor"):
        for name in plugins.names(kind):
            assert f"`{name}`" in text, f"built-in {kind} {name} is missing from docs/plugins.md"
    for model in (MLPParams, DynamicParams, StaticParams):
        for name in model.model_fields:
            assert f"`{name}`" in text, f"{model.__name__}.{name} is missing from docs/plugins.md"
