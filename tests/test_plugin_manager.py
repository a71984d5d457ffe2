"""Plugin discovery: built-ins through the same hooks as third parties, clear errors on conflicts,
components missing a required method refused by name, and the provenance each one records."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from gatewise import PLUGIN_API_VERSION
from gatewise.errors import GatewiseError, UsageError
from gatewise.hookspecs import COMPONENT_KINDS, hookimpl
from gatewise.plugin_manager import Plugins, api_refusal, build_plugin_manager, missing_method
from gatewise.provenance import GATEWISE_PACKAGES, files_sha256, runtime_versions
from gatewise.types import PluginInfo

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins.md"


def builtins() -> Plugins:
    """The built-in plugins alone: installed third-party plugins (the example one) left out."""
    return Plugins(build_plugin_manager(load_entrypoints=False))


def test_builtins_are_found_by_name_through_the_hooks():
    plugins = builtins()
    assert plugins.names("data_source") == ["arrests", "file"]
    assert plugins.names("trainer") == ["mlp", "mlp_search"]
    assert plugins.names("compressor") == ["distill", "graph_optimize", "int8_dynamic", "int8_static", "prune_units"]


@pytest.mark.parametrize("kind", [k.kind for k in COMPONENT_KINDS])
def test_builtins_satisfy_their_contract_and_record_their_origin(kind):
    plugins = builtins()
    versions = runtime_versions()
    for name in plugins.names(kind):
        registered = plugins.get(kind, name)
        assert missing_method(kind, registered.component) is None
        info = registered.info
        assert (info.name, info.distribution, info.plugin_api) == (name, "gatewise", PLUGIN_API_VERSION)
        assert re.fullmatch(r"[0-9a-f]{64}", info.code_sha256) and re.fullmatch(r"[0-9a-f]{64}", info.distribution_sha256)
        assert (info.gatewise_version, info.onnx_version, info.onnxruntime_version) == \
               (versions["gatewise"], metadata.version("onnx"), metadata.version("onnxruntime"))


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


class _Half:
    name = "half_model"
    check_params = None  # an optional method that is there but cannot be called


class _NoCompress:
    name = "no_compress"

    def check_params(self, params):  # pragma: no cover - never run
        pass


class _Minimal:
    """Only the required method: check_params and applies are optional."""

    name = "minimal"

    def compress(self, parent, output, calibration, params):  # pragma: no cover - never run
        raise AssertionError


class _HalfPlugin:
    @hookimpl
    def gatewise_compressors(self):
        return [_Half(), _NoCompress(), _Minimal()]

    @hookimpl
    def gatewise_deployers(self):
        return [_Minimal()]  # a compressor offered as a deployer: no 'deploy'


def test_a_component_missing_a_required_method_is_refused_by_name_and_kind_and_the_rest_loads():
    manager = build_plugin_manager(load_entrypoints=False)
    manager.register(_HalfPlugin(), name="half")
    plugins = Plugins(manager)
    assert "minimal" in plugins.names("compressor") and "int8_dynamic" in plugins.names("compressor")
    assert "no_compress" not in plugins.names("compressor") and plugins.names("deployer") == ["bundle", "local"]
    refused = {(f.kind, f.component): f.describe() for f in plugins.failures}
    assert refused[("compressor", "no_compress")] == (
        "compressor 'no_compress' of plugin 'half' (distribution 'gatewise') is refused: it has no callable 'compress' "
        "(a compressor must define compress)")
    assert refused[("compressor", "half_model")].endswith("is refused: it has no callable 'compress' (a compressor must define compress)")
    assert refused[("deployer", "minimal")].endswith("it has no callable 'deploy' (a deployer must define deploy)")
    with pytest.raises(UsageError, match=r"unknown compressor 'no_compress' \(known: .*\); compressor 'no_compress' of plugin 'half'"):
        plugins.get("compressor", "no_compress")


def test_an_optional_method_that_is_not_callable_is_refused():
    class Odd(_Minimal):
        applies = "yes"

    assert missing_method("compressor", Odd()) == "its 'applies' is not callable"
    assert missing_method("compressor", _Minimal()) is None


@pytest.mark.parametrize(("declared", "refused"), [
    (None, False), ("1.0", False), (PLUGIN_API_VERSION, False), ("1.9", True), ("2.0", True), ("0.9", True),
    ("one", True), (1.0, False),
])
def test_the_plugin_api_rule_major_equal_minor_at_most_ours(declared, refused):
    assert PLUGIN_API_VERSION == "1.0"  # the rule below is written for 1.0; bump these cases with it
    why = api_refusal(declared)
    assert (why is not None) == refused
    if refused and declared != "one":
        assert f"it needs plugin API {declared}, and gatewise" in why and "provides 1.0" in why


def test_a_chain_record_combines_its_steps():
    a = PluginInfo("a", "1", "dist-a", "1" * 64, distribution_sha256="a" * 64, plugin_api="1.0")
    b = PluginInfo("b", "2", "dist-a", "2" * 64, distribution_sha256="a" * 64, plugin_api="1.0")
    c = PluginInfo("c", "3", "dist-c", "3" * 64, distribution_sha256="c" * 64, plugin_api="undeclared")
    same = PluginInfo.chain("a+b", [a, b])
    assert (same.distribution, same.distribution_sha256, same.plugin_api) == ("dist-a", "a" * 64, "1.0")
    mixed = PluginInfo.chain("a+b+c", [a, b, c])
    assert (mixed.version, mixed.distribution, mixed.plugin_api) == ("1+2+3", "dist-a+dist-c", "1.0+undeclared")
    assert mixed.distribution_sha256 not in ("a" * 64, "c" * 64) and len(mixed.distribution_sha256) == 64
    assert mixed.gatewise_version == a.gatewise_version and mixed.onnxruntime_version == runtime_versions()["onnxruntime"]
    assert set(mixed.record()) == set(a.record())


def test_gatewise_packages_are_those_pyproject_installs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert sorted(GATEWISE_PACKAGES) == sorted(pyproject["tool"]["setuptools"]["packages"])


def test_the_distribution_digest_covers_every_recorded_file_read_from_disk(tmp_path):
    """A wheel-installed distribution: its RECORD's files, by content; compiled files and the
    installer's notes do not count."""
    site = tmp_path / "site"
    info = site / "acme-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "acme").mkdir()
    (site / "acme" / "__init__.py").write_text("X = 1\n")
    (site / "acme" / "data.bin").write_bytes(b"weights")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme\nVersion: 1.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("acme/__init__.py,,\nacme/data.bin,,\nacme/__pycache__/x.cpython-311.pyc,,\n"
                                 "acme-1.0.dist-info/METADATA,,\nacme-1.0.dist-info/INSTALLER,,\n"
                                 "acme-1.0.dist-info/RECORD,,\n../../bin/acme,,\n")
    dist = metadata.PathDistribution(info)
    first = files_sha256(dist)
    (info / "INSTALLER").write_text("uv\n")
    (site / "acme" / "__pycache__").mkdir()
    (site / "acme" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert files_sha256(dist) == first
    (site / "acme" / "data.bin").write_bytes(b"other weights")  # not a .py file, still in the digest
    assert files_sha256(dist) != first
    (site / "acme" / "data.bin").unlink()
    assert files_sha256(dist) not in (first, "")
