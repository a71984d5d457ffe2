"""Each compressor runs in a process of its own: one that hangs is cut at its timeout, one that
crashes, kills its process or hands back a model that does not fit its parent is an errored
candidate with the reason (and the traceback), and the others go on."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path

import onnx
import pytest

from gatewise.config import parse_settings
from gatewise.flows.steps import EXPORT_PLUGIN, compress, compress_timeout
from gatewise.plugin_manager import Registered, load_plugins
from gatewise.types import Candidate, PluginInfo, sha256_file
from test_plugins_support import crafted_parent, install_plugin


class Hangs:
    name = "hangs"

    def compress(self, parent, output, calibration, params):
        time.sleep(600)


def explode_deep_inside():
    raise RuntimeError("boom in a helper")


class Crashes:
    name = "crashes"

    def compress(self, parent, output, calibration, params):
        explode_deep_inside()


class KillsItsProcess:
    name = "kills"

    def compress(self, parent, output, calibration, params):
        os._exit(9)


class RenamesTheInput:
    name = "renames"

    def compress(self, parent, output, calibration, params):
        model = onnx.load(str(parent))
        old = model.graph.input[0].name
        model.graph.input[0].name = "renamed"
        for node in model.graph.node:
            node.input[:] = ["renamed" if i == old else i for i in node.input]
        onnx.save(model, str(output))


class WritesGarbage:
    name = "garbage"

    def compress(self, parent, output, calibration, params):
        output.write_bytes(b"not an onnx model")


class Copies:
    name = "copies"

    def compress(self, parent, output, calibration, params):
        shutil.copyfile(parent, output)


class DoesNotApply:
    name = "unfit"

    def applies(self, parent, params):
        return f"needs a Conv layer; {parent.name} has none"

    def compress(self, parent, output, calibration, params):
        raise AssertionError("never run")


class AnswersBadly:
    name = "bad_answer"

    def applies(self, parent, params):
        return False

    def compress(self, parent, output, calibration, params):
        shutil.copyfile(parent, output)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return crafted_parent(tmp_path_factory.mktemp("isolation"), {"hidden": [8], "epochs": 2, "validation_fraction": 0})


@pytest.fixture
def registered(monkeypatch):
    components = load_plugins()._components["compressor"]
    for component in (Hangs(), Crashes(), KillsItsProcess(), RenamesTheInput(), WritesGarbage(), Copies(),
                      DoesNotApply(), AnswersBadly()):
        info = PluginInfo(component.name, "1.0", "thirdparty", "0" * 64)
        monkeypatch.setitem(components, component.name, Registered(component, info))


def run(parent, tmp_path, name, **compress_settings):
    settings = parse_settings({"compress": {"compressors": [name], **compress_settings}})
    candidate = Candidate(name="parent", plugin=EXPORT_PLUGIN, status="ok", onnx_path=parent.path, sha256=sha256_file(parent.path))
    return compress(settings, name, candidate, parent.calibration, tmp_path)


def test_a_hanging_compressor_is_killed_at_its_timeout_and_leaves_no_process(parent, tmp_path, registered):
    started = time.monotonic()
    child = run(parent, tmp_path, "hangs", timeouts={"hangs": 3})
    assert child.status == "errored" and child.error.startswith("timed out after 3 s")
    assert time.monotonic() - started < 60
    assert multiprocessing.active_children() == []


def test_a_compressor_started_after_the_interrupting_signal_is_killed_at_once(parent, tmp_path, registered, monkeypatch):
    """The signal's stop_all can miss a process that is starting: it kills itself on seeing the signal."""
    from gatewise.flows import interruption

    monkeypatch.setattr(interruption, "received", lambda: "SIGTERM")
    child = run(parent, tmp_path, "hangs", timeouts={"hangs": 300})
    assert child.status == "errored" and "died with exit code -9" in child.error
    assert multiprocessing.active_children() == []


def test_a_crashing_compressor_keeps_its_traceback(parent, tmp_path, registered):
    child = run(parent, tmp_path, "crashes")
    first, *trace = child.error.splitlines()
    assert first == "RuntimeError: boom in a helper"
    assert any("explode_deep_inside" in line for line in trace) and trace[0].startswith("Traceback")


def test_a_compressor_that_kills_its_process_is_errored(parent, tmp_path, registered):
    child = run(parent, tmp_path, "kills")
    assert child.status == "errored" and child.error == "its process died with exit code 9 before it finished"


def test_an_invalid_model_or_a_changed_signature_is_errored(parent, tmp_path, registered):
    garbage = run(parent, tmp_path, "garbage")
    assert garbage.status == "errored" and garbage.error.startswith("GatewiseError: invalid ONNX model")
    renamed = run(parent, tmp_path, "renames")
    assert renamed.status == "errored" and "the model's signature changed" in renamed.error and "renamed" in renamed.error


def test_a_chain_runs_in_one_process_and_its_steps_timeouts_add_up(parent, tmp_path, registered):
    child = run(parent, tmp_path, "copies+int8_dynamic")
    assert child.status == "ok", child.error
    settings = parse_settings({"compress": {"compressors": ["copies+hangs"], "timeout_s": 10, "timeouts": {"hangs": 2}}})
    assert compress_timeout(settings, "copies+hangs") == 12
    settings = parse_settings({"compress": {"compressors": ["copies+hangs"], "timeouts": {"copies+hangs": 5}}})
    assert compress_timeout(settings, "copies+hangs") == 5


def test_a_compressor_that_does_not_apply_skips_its_whole_chain_with_the_reason(parent, tmp_path, registered):
    alone = run(parent, tmp_path, "unfit")
    assert (alone.status, alone.error) == ("skipped", "needs a Conv layer; parent.onnx has none")
    chain = run(parent, tmp_path, "copies+unfit")  # judged on the step before's output
    assert (chain.status, chain.error) == ("skipped", "unfit: needs a Conv layer; step1-copies.onnx has none")
    bad = run(parent, tmp_path, "bad_answer")
    assert bad.status == "errored" and "bad_answer.applies() returned False" in bad.error


THIRD_PARTY = '''
import os
import time

from gatewise.hookspecs import hookimpl


def explode_deep_inside():
    raise RuntimeError("boom in a helper")


class Hangs:
    name = "hangs"

    def compress(self, parent, output, calibration, params):
        with open(os.environ["HANG_PID_FILE"], "w") as pid:
            pid.write(str(os.getpid()))
        time.sleep(600)


class Crashes:
    name = "crashes"

    def compress(self, parent, output, calibration, params):
        explode_deep_inside()


class Unfit:
    name = "unfit"

    def applies(self, parent, params):
        return "no Conv layer to fuse in this model"

    def compress(self, parent, output, calibration, params):
        raise AssertionError("a compressor that does not apply is never run")


@hookimpl
def gatewise_compressors():
    return [Hangs(), Crashes(), Unfit()]
'''

RUN_CONFIG = """
[compress]
compressors = ["hangs", "crashes", "int8_dynamic", "unfit"]
timeouts = { hangs = 5 }

[gates.fairness]
max_demographic_parity_difference = 0.45
max_equalized_odds_difference = 0.45
"""


def install_third_party(tmp_path, source: str = THIRD_PARTY, config: str = RUN_CONFIG) -> tuple[dict[str, str], Path, Path]:
    """The plugin package ``source`` installed (a module and its dist-info on PYTHONPATH), as the
    distribution gatewise-unruly; returns the environment of a run, its gatewise.toml and the file
    where a hanging compressor writes its pid."""
    python_path = install_plugin(tmp_path / "site", "gatewise_unruly", "gatewise-unruly", source, entry_point="unruly")
    toml = tmp_path / "gatewise.toml"
    toml.write_text(config)
    pid_file = tmp_path / "hang.pid"
    env = {**os.environ, "GATEWISE_HOME": str(tmp_path / "home"), "HANG_PID_FILE": str(pid_file), **python_path}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return env, toml, pid_file


def test_through_the_cli_a_hanging_and_a_crashing_plugin_are_recorded_an_unfit_one_skipped_while_the_others_are_gated_and_one_promoted(tmp_path):
    import json
    import subprocess
    import sys

    env, config, pid_file = install_third_party(tmp_path)
    done = subprocess.run([sys.executable, "-m", "gatewise.cli", "run", "--config", str(config), "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    candidates = {c["name"]: c for c in document["candidates"]}
    assert candidates["hangs"]["status"] == "errored" and candidates["hangs"]["error"].startswith("timed out after 5 s")
    assert candidates["crashes"]["status"] == "errored" and "explode_deep_inside" in candidates["crashes"]["error"]
    assert candidates["crashes"]["distribution"] == "gatewise-unruly"
    assert candidates["int8_dynamic"]["passed"] and candidates["parent"]["passed"] and document["promoted"]
    # Not applicable: no version, no gates, its reason in the output and in the signed outcome.
    assert "unfit" not in candidates
    assert [(s["name"], s["reason"], s["distribution"]) for s in document["skipped"]] == [
        ("unfit", "no Conv layer to fuse in this model", "gatewise-unruly")]
    text = subprocess.run([sys.executable, "-m", "gatewise.cli", "registry", "show", document["promoted"], "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    outcome = json.loads(text.stdout)["run"]["outcome"]
    assert (outcome["outcome"], outcome["promoted"]) == ("promoted", document["promoted"])
    assert [(s["candidate"], s["reason"]) for s in outcome["skipped"]] == [("unfit", "no Conv layer to fuse in this model")]
    hung = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped: no orphan left behind
        os.kill(hung, 0)
    shown = subprocess.run([sys.executable, "-m", "gatewise.cli", "registry", "show", candidates["crashes"]["version"]],
                           env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "errored (RuntimeError: boom in a helper)" in shown.stdout and "explode_deep_inside" in shown.stdout
    assert f"{document['run']['id']} (promoted)" in shown.stdout  # how its run ended, signed
    verify = subprocess.run([sys.executable, "-m", "gatewise.cli", "registry", "verify"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
