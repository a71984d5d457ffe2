"""Loading entry-point plugins: a broken one is named and skipped, one can be disabled, autoloading
can be turned off, and a run that names a plugin which did not load stops in pre-flight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_plugins_support import install_plugin

GOOD = '''
from gatewise.hookspecs import hookimpl


class Copy:
    name = "copy_model"

    def compress(self, parent, output, calibration, params):
        import shutil

        shutil.copyfile(parent, output)


@hookimpl
def gatewise_compressors():
    return [Copy()]
'''

PROBE = """
import json
from gatewise.plugin_manager import load_plugins
plugins = load_plugins(tuple(json.loads(__import__('sys').argv[1])))
print(json.dumps({"compressors": plugins.names("compressor"),
                  "failures": [[f.distribution, f.entry_point, f.error] for f in plugins.failures]}))
"""


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    site = tmp_path / "site"
    if not site.exists():
        install_plugin(site, "good_plugin", "good-plugin", GOOD)
        install_plugin(site, "broken_plugin", "broken-plugin", "import a_module_that_is_not_installed\n")
    env = {**os.environ, "GATEWISE_HOME": str(tmp_path / "home"), **extra,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return env


def probe(tmp_path: Path, disable: list[str] = [], **extra: str) -> dict:  # noqa: B006 - read only
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(disable)], env=environment(tmp_path, **extra),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {**json.loads(done.stdout), "stderr": done.stderr}


def test_a_plugin_that_fails_to_import_is_named_and_skipped_while_the_others_load(tmp_path):
    loaded = probe(tmp_path)
    assert "copy_model" in loaded["compressors"] and "int8_dynamic" in loaded["compressors"]
    assert loaded["failures"] == [["broken-plugin", "broken_plugin", "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'"]]
    assert "plugin 'broken_plugin' of distribution 'broken-plugin' failed to load" in loaded["stderr"]


def test_a_disabled_plugin_is_not_loaded_by_entry_point_or_distribution_name(tmp_path):
    loaded = probe(tmp_path, ["broken_plugin", "good-plugin"])
    assert loaded["failures"] == [] and "copy_model" not in loaded["compressors"]


def test_the_environment_variable_turns_entry_point_loading_off(tmp_path):
    loaded = probe(tmp_path, GATEWISE_DISABLE_PLUGIN_AUTOLOAD="1")
    assert loaded["failures"] == [] and "copy_model" not in loaded["compressors"]
    assert "int8_dynamic" in loaded["compressors"]  # the built-ins stay


def run(tmp_path: Path, config: str, **extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "gatewise.toml"
    path.write_text(config)
    return subprocess.run([sys.executable, "-m", "gatewise.cli", "run", "--config", str(path)],
                          env=environment(tmp_path, **extra), capture_output=True, text=True, timeout=300)


def test_a_run_naming_a_plugin_that_did_not_load_stops_in_preflight_with_one_line(tmp_path):
    done = run(tmp_path, '[compress]\ncompressors = ["broken_model"]\n')
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "unknown compressor 'broken_model'" in last
    assert "plugin 'broken_plugin' of distribution 'broken-plugin' failed to load: ModuleNotFoundError" in last
    assert "Traceback" not in done.stderr and not (tmp_path / "home" / "registry.db").exists()


def test_a_run_naming_a_disabled_plugin_says_it_is_disabled(tmp_path):
    done = run(tmp_path, '[plugins]\ndisable = ["good_plugin"]\n[compress]\ncompressors = ["copy_model"]\n')
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "unknown compressor 'copy_model'" in last and "disabled plugins: good_plugin" in last
