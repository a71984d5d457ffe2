"""`gatewise monitor` on one real promoted registry: a drifted batch starts a retrain whose signed run
entry names the monitoring entry; a clean batch starts none; bad input is one line, exit 2, and
records nothing. The real CLI, Prefect flow, ONNX Runtime and SQLite file, in this process."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gatewise.cli import main
from gatewise.config import Settings
from test_schedule_support import drain_prefect_workers

pytestmark = pytest.mark.e2e

FAIRNESS_RELAXED = """
[gates.fairness]
max_demographic_parity_difference = 0.6
max_equalized_odds_difference = 0.6
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A promoted registry built once by `gatewise run` (the demo config: the default [monitor]
    thresholds, which are the drift gate's), and the batches."""
    import numpy as np
    from sklego.datasets import load_arrests

    root = tmp_path_factory.mktemp("monitor")
    config = root / "gatewise.toml"
    # Monitoring needs a live version, and the bundled data's disparity by colour blocks every model
    # under the default fairness limits (docs/gates.md): relaxed here, in the open, as the demo's
    # gatewise.toml does. No [monitor] section: the monitor's thresholds are the drift gate's.
    config.write_text(FAIRNESS_RELAXED)
    frame = load_arrests(as_frame=True)
    clean = frame.sample(n=2000, random_state=2).reset_index(drop=True)
    drifted = frame.sample(n=2000, random_state=1).reset_index(drop=True)
    drifted["age"] = drifted["age"] + 1.5 * frame["age"].std()  # more than a standard deviation
    flip = np.random.default_rng(0).random(len(drifted)) < 0.4  # a binary feature flipped in 40% of rows
    drifted.loc[flip, "citizen"] = np.where(drifted.loc[flip, "citizen"] == "Yes", "No", "Yes")
    clean.to_csv(root / "clean.csv", index=False)
    drifted.to_csv(root / "drifted.csv", index=False)
    frame.drop(columns=["age"]).to_csv(root / "no_age.csv", index=False)
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GATEWISE_HOME", str(home))
        patch.delenv("GATEWISE_REGISTRY_URL", raising=False)
        patch.delenv("PREFECT_API_URL", raising=False)
        assert main(["run", "--config", str(config), "--json"]) == 0
    return root


@pytest.fixture
def gatewise(workspace, monkeypatch, capsys):
    """Run the CLI in this process against the workspace's home; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("GATEWISE_HOME", str(workspace / "home"))
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.chdir(workspace)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return int(code), out, err

    return run


def _registry(workspace):
    from gatewise.registry import Registry

    return Registry.open(workspace / "home", create=False)


def _monitor(gatewise, workspace, *args: str) -> dict:
    code, out, err = gatewise("monitor", "--config", str(workspace / "gatewise.toml"), "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_clean_batch_signs_an_entry_and_starts_no_retrain(gatewise, workspace):
    from gatewise.registry.operations import monitoring_entries

    with _registry(workspace) as registry:
        versions_before = len(registry.versions("arrests"))
        live = registry.champion("arrests").version
    doc = _monitor(gatewise, workspace, "--current", str(workspace / "clean.csv"))
    assert doc["drifted"] is False and doc["retrain"] is None
    assert doc["version"] == live
    assert doc["report"]["drifted_columns"] == []
    assert doc["report"]["prediction_drift"]["value"] < doc["report"]["thresholds"]["max_prediction_drift"]
    with _registry(workspace) as registry:
        assert len(registry.versions("arrests")) == versions_before  # nothing trained
        newest = monitoring_entries(registry, "arrests", limit=1)[0]
    assert newest["entry"] == doc["entry"]
    assert newest["drifted"] is False and newest["version"] == live
    assert newest["report"]["data"]["current"] == doc["report"]["data"]["current"]


def test_drifted_batch_starts_a_retrain_that_names_its_trigger(gatewise, workspace):
    from gatewise.registry.operations import monitoring_entries, run_entry

    doc = _monitor(gatewise, workspace, "--current", str(workspace / "drifted.csv"))
    report = doc["report"]
    assert doc["drifted"] is True
    assert {"age", "citizen"} <= set(report["drifted_columns"])
    # The live model leans on citizen: its predicted probabilities moved past the gate's limit.
    limit = report["thresholds"]["max_prediction_drift"]
    assert limit == Settings().gates.drift.max_prediction_drift  # no [monitor] section: the gate's limit
    assert report["prediction_drift"]["value"] > limit
    assert "max_prediction_drift" in report["failed_checks"]
    assert any(reason.startswith("prediction drift") for reason in doc["reasons"])
    assert set(report["columns"]) == {"year", "age", "colour", "sex", "employed", "citizen", "checks"}
    retrain = doc["retrain"]
    assert retrain["how"] == "in_process" and retrain["status"] in ("promoted", "blocked")
    trigger = {"kind": "monitor", "entry": doc["entry"]}
    assert retrain["trigger"] == trigger
    with _registry(workspace) as registry:
        run = run_entry(registry, retrain["run_id"])
        signed = monitoring_entries(registry, "arrests", limit=1)[0]
    assert run["trigger"] == trigger  # the retrain's signed run entry names the monitoring entry
    assert signed["entry"] == doc["entry"] and signed["drifted"] is True
    # The drifted batch became the retrain's current data (the drift gate's input).
    assert run["data"]["current"] == report["data"]["current"]


def test_human_output_names_the_verdict(gatewise, workspace):
    code, out, err = gatewise("monitor", "--config", str(workspace / "gatewise.toml"), "--current", str(workspace / "clean.csv"))
    assert code == 0, err
    assert "no drift" in out and "no retrain started" in out
    assert "signed monitoring entry" in out and "age" in out


def test_from_serving_reads_every_sampled_file(gatewise, workspace):
    import pandas as pd

    folder = workspace / "home" / "serving" / "inputs" / "arrests"
    folder.mkdir(parents=True, exist_ok=True)
    rows = pd.read_csv(workspace / "clean.csv").drop(columns=["released"])
    rows.iloc[:1200].to_parquet(folder / "window-1.parquet", index=False)
    rows.iloc[1200:].to_parquet(folder / "window-2.parquet", index=False)
    try:
        doc = _monitor(gatewise, workspace, "--from-serving")
    finally:
        shutil.rmtree(folder)
    assert doc["report"]["current"] == {"source": "serving", "files": ["window-1.parquet", "window-2.parquet"], "rows": 2000}
    assert doc["drifted"] is False and doc["retrain"] is None


def test_monitor_reads_what_gatewise_serve_sampled(gatewise, workspace, tmp_path):
    """The loop as an operator runs it: `gatewise serve` with [serve] log_inputs answers requests,
    then `gatewise monitor --from-serving` judges the rows it logged."""
    import pandas as pd
    from test_serving_support import Server, serve_config

    rows = pd.read_csv(workspace / "clean.csv").drop(columns=["released"])
    folder = workspace / "home" / "serving" / "inputs" / "arrests"
    server = Server(workspace / "home", serve_config(tmp_path / "serve.toml", log_inputs=True), "--model", "arrests")
    try:
        server.wait_for(server.ready_version, what="/readyz")
        for start in range(0, len(rows), 250):
            body = {"rows": json.loads(rows.iloc[start:start + 250].to_json(orient="records"))}
            assert server.client.post("/v1/models/arrests/predict", json=body).status_code == 200
    finally:
        assert server.stop() == 0  # a graceful stop writes what is buffered
    try:
        doc = _monitor(gatewise, workspace, "--from-serving")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert doc["report"]["current"]["source"] == "serving" and doc["report"]["current"]["rows"] == len(rows)
    assert doc["drifted"] is False and doc["retrain"] is None


def test_signed_monitoring_entries_verify(gatewise, workspace):
    from gatewise.registry.operations import monitoring_entries

    with _registry(workspace) as registry:
        assert monitoring_entries(registry, "arrests")  # the tests above wrote some
    # `gatewise registry verify` as an auditor runs it: its own process, the same home.
    env = {**os.environ, "GATEWISE_HOME": str(workspace / "home")}
    env.pop("GATEWISE_REGISTRY_URL", None)
    done = subprocess.run([sys.executable, "-m", "gatewise.cli", "registry", "verify"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK")


def test_registry_monitoring_lists_signed_passes_and_the_runs_they_triggered(gatewise, workspace):
    code, out, err = gatewise("registry", "monitoring", "arrests", "--json", "--limit", "0")
    assert code == 0, err
    passes = json.loads(out)["passes"]
    drifted = [p for p in passes if p["drifted"]]
    assert drifted and all(len(p["triggered_runs"]) == 1 for p in drifted)
    assert all(p["triggered_runs"] == [] for p in passes if not p["drifted"])
    seqs = [p["entry"]["seq"] for p in passes]
    assert seqs == sorted(seqs, reverse=True)
    code, out, _ = gatewise("registry", "monitoring", "arrests")
    assert code == 0 and "DRIFT" in out and drifted[0]["triggered_runs"][0] in out
    code, _, err = gatewise("registry", "monitoring", "nosuch")
    assert code == 2 and "unknown model 'nosuch'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--current", "missing.csv"), "data file not found: missing.csv"),
        (("--current", "no_age.csv"), "lacks feature column(s): age"),
        (("--from-serving",), "no served inputs for model arrests"),
        (("--current", "clean.csv", "--model", "nosuch"), "unknown model 'nosuch'"),
        ((), "pass --current FILE or --from-serving"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_records_nothing(gatewise, workspace, args, message):
    with _registry(workspace) as registry:
        head = registry.head()
    code, out, err = gatewise("monitor", "--config", str(workspace / "gatewise.toml"), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    with _registry(workspace) as registry:
        assert registry.head() == head


def test_no_registry_or_no_live_version_is_exit_2(tmp_path, monkeypatch, capsys, workspace):
    from gatewise.registry import Registry

    monkeypatch.setenv("GATEWISE_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    assert main(["monitor", "--current", str(workspace / "clean.csv")]) == 2
    assert "no registry" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()  # nothing created
    # A model whose runs promoted nothing (here: a run entry alone) has nothing live to monitor.
    with Registry.open(tmp_path / "empty") as registry:
        registry.record_run("r1", "arrests", {}, "0" * 64, {}, [])
    assert main(["monitor", "--current", str(workspace / "clean.csv")]) == 2
    assert "model arrests has no production version to monitor" in capsys.readouterr().err


def test_unreachable_prefect_server_is_one_line_before_anything_is_recorded(gatewise, workspace, monkeypatch):
    with _registry(workspace) as registry:
        head = registry.head()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # the discard port: nothing listens
    code, _, err = gatewise("monitor", "--config", str(workspace / "gatewise.toml"), "--current", "clean.csv")
    assert code == 2
    assert "is not reachable" in err and len(err.strip().splitlines()) == 1
    with _registry(workspace) as registry:
        assert registry.head() == head


def test_swapped_artifact_bytes_are_refused(workspace, tmp_path):
    from gatewise.errors import RegistryError
    from gatewise.flows import monitor_steps as steps
    from gatewise.registry import Registry

    copy = tmp_path / "home"
    shutil.copytree(workspace / "home", copy)
    with Registry.open(copy, create=False) as registry:
        info = registry.champion("arrests")
        path = registry.artifact_path(info.version)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(RegistryError, match="refusing to score the live version: .*sha256"):
            steps.verified_scorer(registry, info)


# -- through a deployment on a real Prefect server --------------------------------------------------

SERVER_START_TIMEOUT_S = 150


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A real `prefect server start` on a free loopback port, stopped by its pid afterwards."""
    import socket
    import time

    import httpx

    prefect = Path(sys.executable).with_name("prefect")
    if not prefect.exists():
        pytest.skip(f"the prefect command is not installed beside {Path(sys.executable).name}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path_factory.mktemp("prefect")
    env = {**os.environ, "PREFECT_HOME": str(state), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (state / "server.log").open("w")
    server = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prefect server did not answer within {SERVER_START_TIMEOUT_S} s: "
                            + (state / "server.log").read_text()[-2000:])
            time.sleep(1)
        yield url
    finally:
        drain_prefect_workers()  # what this process sent the server arrives before it stops
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def test_drift_starts_the_retrain_deployment_with_its_trigger(gatewise, workspace, prefect_server, monkeypatch):
    """Where the retrain flow is deployed, the monitor hands the run to Prefect with the trigger,
    the home and the drifted batch; the deployment's flow records the trigger (flows/scheduled.py)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        from gatewise.flows.scheduled import retrain
    except ImportError as exc:
        pytest.skip(f"no deployable retrain flow to deploy: {exc}")
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        retrain.to_deployment(name="monitor-test", parameters={"home": "elsewhere"}).apply()
        doc = _monitor(gatewise, workspace, "--current", str(workspace / "drifted.csv"))
        started = doc["retrain"]
        assert doc["drifted"] is True
        assert started["how"] == "deployment" and started["deployment"] == "retrain/monitor-test"
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(started["flow_run_id"])
    assert flow_run.parameters["trigger"] == {"kind": "monitor", "entry": doc["entry"]}
    assert flow_run.parameters["home"] == str((workspace / "home").resolve())
    assert flow_run.parameters["current"] == str((workspace / "drifted.csv").resolve())
