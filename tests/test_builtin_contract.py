"""gatewise's own compressors pass the same contract kit that third-party authors use
(gatewise.testing.CompressorContract), on one reference parent trained once per session."""

from __future__ import annotations

from gatewise.plugin_manager import load_plugins
from gatewise.testing import CompressorContract

BUILTIN = ("distill", "graph_optimize", "int8_dynamic", "int8_static", "prune_units")


def builtin(name: str):
    return load_plugins().get("compressor", name).component


def test_every_builtin_compressor_is_held_to_the_contract():
    plugins = load_plugins()
    shipped = {name for name in plugins.names("compressor") if plugins.get("compressor", name).info.distribution == "gatewise"}
    assert shipped == set(BUILTIN)


class TestInt8Dynamic(CompressorContract):
    compressor = builtin("int8_dynamic")


class TestInt8Static(CompressorContract):
    compressor = builtin("int8_static")


class TestGraphOptimize(CompressorContract):
    compressor = builtin("graph_optimize")


class TestPruneUnits(CompressorContract):
    compressor = builtin("prune_units")


class TestDistill(CompressorContract):
    compressor = builtin("distill")
