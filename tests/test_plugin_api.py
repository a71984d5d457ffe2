"""The versioned plugin API, through the real CLI with throwaway plugin packages: an incompatible
plugin and a component missing its method are refused with one line, `gatewise plugins ls` lists
what loaded and what did not, and each candidate's signed record carries its provenance."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from test_plugin_loading import GOOD
from test_plugins_support import install_plugin
from test_registry_support import candidate

from gatewise import PLUGIN_API_VERSION, __version__
from gatewise.cli import main
from gatewise.plugin_manager import load_plugins
from gatewise.provenance import distribution_sha256, runtime_versions

FUTURE = 'GATEWISE_PLUGIN_API = "2.0"\n' + GOOD.replace("copy_model", "future_model")
DECLARED = 'GATEWISE_PLUGIN_API = "1.0"\n' + GOOD.replace("copy_model", "copy_declared")
HALF = '''
from gatewise.hookspecs import hookimpl


class Half:
    name = "half_model"

    def check_params(self, params):
        pass


@hookimpl
def gatewise_compressors():
    return [Half()]
'''


def environment(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    if not site.exists():
        install_plugin(site, "future_plugin", "future-plugin", FUTURE)
        install_plugin(site, "declared_plugin", "declared-plugin", DECLARED)
        install_plugin(site, "half_plugin", "half-plugin", HALF)
    env = {**os.environ, "GATEWISE_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    env.pop("GATEWISE_REGISTRY_URL", None)
    env.pop("GATEWISE_DISABLE_PLUGIN_AUTOLOAD", None)
    return env


def gatewise(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=environment(tmp_path),
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


REFUSED = (f"plugin 'future_plugin' of distribution 'future-plugin' is refused: it needs plugin API 2.0, and gatewise "
           f"{__version__} provides {PLUGIN_API_VERSION} (the major must be equal and the minor at most gatewise's)")
HALF_REFUSED = ("compressor 'half_model' of plugin 'half_plugin' (distribution 'half-plugin') is refused: "
                "it has no callable 'compress' (a compressor must define compress)")


def test_plugins_ls_lists_builtins_an_installed_plugin_and_the_load_errors(tmp_path):
    done = gatewise(tmp_path, "plugins", "ls", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    listed = json.loads(done.stdout)
    assert (listed["gatewise"], listed["plugin_api"], listed["autoload"]) == (__version__, PLUGIN_API_VERSION, True)
    by_name = {c["name"]: c for c in listed["components"]}
    builtin = by_name["int8_dynamic"]
    assert (builtin["kind"], builtin["distribution"], builtin["plugin_api"], builtin["entry_point"]) == \
           ("compressor", "gatewise", PLUGIN_API_VERSION, None)
    assert builtin["plugin"] == "gatewise.plugins.quantization" and builtin["module_file"].endswith("quantization.py")
    installed = by_name["copy_declared"]
    assert {k: installed[k] for k in ("kind", "version", "distribution", "plugin_api", "entry_point")} == {
        "kind": "compressor", "version": "0.1", "distribution": "declared-plugin", "plugin_api": "1.0",
        "entry_point": "declared_plugin = declared_plugin"}
    assert Path(installed["module_file"]) == tmp_path / "site" / "declared_plugin.py"
    assert re.fullmatch(r"[0-9a-f]{64}", installed["distribution_sha256"])
    assert "future_model" not in by_name and "half_model" not in by_name
    errors = {e["entry_point"]: e for e in listed["load_errors"]}
    assert errors["future_plugin"]["reason"] == "api" and errors["future_plugin"]["message"] == REFUSED
    assert (errors["half_plugin"]["reason"], errors["half_plugin"]["component"]) == ("method", "half_model")
    assert errors["half_plugin"]["message"] == HALF_REFUSED
    assert f"{REFUSED}; skipped" in done.stderr  # the warning at load

    (tmp_path / "gatewise.toml").write_text('[plugins]\ndisable = ["declared-plugin"]\n')
    done = gatewise(tmp_path, "plugins", "ls")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.splitlines()[0] == f"gatewise {__version__}, plugin API {PLUGIN_API_VERSION}"
    assert re.search(r"^int8_dynamic +compressor +\S+ +gatewise +1\.0 +built-in gatewise\.plugins\.quantization$", out, re.M)
    assert "copy_declared" not in out
    assert f"not loaded:\n  {REFUSED}\n  {HALF_REFUSED}\n" in out or f"not loaded:\n  {HALF_REFUSED}\n  {REFUSED}\n" in out
    assert "disabled by [plugins] disable:\n  plugin 'declared_plugin' of distribution 'declared-plugin'" in out


def test_a_run_naming_a_refused_plugin_or_component_stops_in_preflight_with_its_line(tmp_path):
    for name, line in (("future_model", REFUSED), ("half_model", HALF_REFUSED)):
        (tmp_path / "gatewise.toml").write_text(f'[compress]\ncompressors = ["{name}"]\n')
        done = gatewise(tmp_path, "run", "--config", str(tmp_path / "gatewise.toml"))
        assert done.returncode == 2, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert f"unknown compressor '{name}'" in last and line in last
        assert "Traceback" not in done.stderr and not (tmp_path / "home" / "registry.db").exists()


def test_a_candidates_signed_record_and_registry_show_carry_its_provenance(home, tmp_path, capsys):
    from gatewise.registry import Registry
    from gatewise.registry.signed import SignedLedger

    info = load_plugins().get("compressor", "int8_dynamic").info
    registry = Registry.open(home)
    registry.record_run("run-1", "arrests", {"seed": 42}, "a" * 64, {"dataset": "e" * 64}, [info.record()])
    made = candidate(tmp_path / "in", "int8_dynamic")
    version = registry.register_candidate("run-1", "arrests", replace(made, plugin=info))
    with registry.reading() as conn:
        signed = SignedLedger(conn).candidate(version).predicate["plugin"]
    registry.close()
    versions = runtime_versions()
    assert signed == info.record()
    assert signed["distribution_sha256"] == distribution_sha256("gatewise") and len(signed["distribution_sha256"]) == 64
    assert (signed["plugin_api"], signed["gatewise_version"], signed["onnx_version"], signed["onnxruntime_version"]) == \
           (PLUGIN_API_VERSION, versions["gatewise"], versions["onnx"], versions["onnxruntime"])

    assert main(["registry", "show", version]) == 0
    out = capsys.readouterr().out
    assert f"  dist       sha256 {signed['distribution_sha256']} (every file of gatewise), plugin API {PLUGIN_API_VERSION}" in out
    assert f"  runtime    gatewise {versions['gatewise']}, onnx {versions['onnx']}, onnxruntime {versions['onnxruntime']}" in out
    assert main(["registry", "show", version, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plugin"] == signed
    assert main(["registry", "verify"]) == 0
