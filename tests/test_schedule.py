"""`gatewise schedule` against a real Prefect server: a served deployment and a process work pool
with a real worker each run the retrain flow on a short interval, and the signed run entry of each
run names the deployment and the Prefect flow run that started it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid

import pytest
from test_schedule_support import (
    DEMO_CONFIG,
    client,
    flow_runs,
    gatewise,
    gatewise_env,
    prefect_bin,
    prefect_server,  # noqa: F401 - the fixture
    stop,
    wait_for,
)

RUN_TIMEOUT_S = 300  # one full pipeline in a worker on a busy 2-core machine


def signed_run_entry(home, run_id):
    from gatewise.registry import Registry
    from gatewise.registry.operations import run_entry

    registry = Registry.open(home, None, create=False)
    try:
        return run_entry(registry, run_id)
    finally:
        registry.close()


def ledger_run_ids(home):
    """The run ids of the registry's run entries, oldest first, read from the ledger file itself."""
    import sqlite3

    with sqlite3.connect(home / "registry.db") as conn:
        return [ref for (ref,) in conn.execute("SELECT ref FROM ledger WHERE predicate_type LIKE '%/run/v1' ORDER BY seq")]


def missing_label_data(tmp_path):
    """The bundled data with ten labels blanked: the data gate rejects it in seconds, nothing trains."""
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True)
    frame.loc[:9, "released"] = None
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    return path


# -- bad input: one line, exit 2 ----------------------------------------------------------------


def test_no_server_configured_says_how_to_start_one(tmp_path):
    done = gatewise(tmp_path / "home", None, "schedule", "--cron", "0 3 * * *")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "prefect server start" in lines[0] and "export PREFECT_API_URL=" in lines[0]
    assert not (tmp_path / "home").exists()  # nothing created


def test_unreachable_server_is_one_line(tmp_path):
    from test_schedule_support import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    done = gatewise(tmp_path / "home", url, "schedule", "ls")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and url in done.stderr and "prefect server start" in done.stderr


def test_run_with_an_unreachable_configured_server_is_one_line(tmp_path):
    """A configured server that does not answer stops `gatewise run` before it starts: no silent
    fall-back to a temporary server, nothing recorded."""
    from test_schedule_support import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    home = tmp_path / "home"
    done = gatewise(home, url, "run", "--config", str(DEMO_CONFIG), timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and url in done.stderr and "unset PREFECT_API_URL" in done.stderr
    assert not (home / "registry.db").exists()


def test_bad_schedule_options_are_one_line(tmp_path, prefect_server):
    home = tmp_path / "home"
    cases = [
        (("schedule", "--cron", "61 * * * *"), "not a valid cron expression"),
        (("schedule",), "give exactly one of --cron EXPR and --interval SECONDS"),
        (("schedule", "--interval", "0"), "--interval must be a positive number"),
        (("schedule", "--interval", "60", "--name", "a/b"), "must be a plain name"),
        (("schedule", "--interval", "60", "--work-pool", "no-such-pool"), "prefect work-pool create no-such-pool"),
        (("schedule", "--interval", "60", "--monitor"), "--monitor needs --current FILE or --from-serving"),
        (("schedule", "--interval", "60", "--data", str(tmp_path / "absent.csv")), "absent.csv"),
        (("schedule", "rm", "no-such-schedule"), "no schedule named 'no-such-schedule'"),
        (("schedule", "rm"), "needs the NAME"),
    ]
    for args, message in cases:
        done = gatewise(home, prefect_server, *args, timeout=120)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


# -- a served deployment -------------------------------------------------------------------------


def test_served_schedule_runs_and_records_its_trigger(tmp_path, prefect_server):
    """Served from the command itself: a run is due every 10 s; the data gate rejects the data, so
    each run takes seconds, yet each signs a run entry that names the deployment and flow run."""
    home = tmp_path / "home"
    data = missing_label_data(tmp_path)
    name = f"served-{uuid.uuid4().hex[:6]}"
    serving = subprocess.Popen(
        [sys.executable, "-m", "gatewise.cli", "schedule", "--interval", "10", "--name", name, "--data", str(data),
         "--label", "released", "--positive", "Yes", "--sensitive", "colour,sex", "--config", str(DEMO_CONFIG)],
        env=gatewise_env(home, prefect_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        finished = wait_for(lambda: [r for r in flow_runs(prefect_server, name) if r.state and r.state.is_completed()],
                            RUN_TIMEOUT_S, f"a completed run of the served deployment retrain/{name}")
        listing = gatewise(home, prefect_server, "schedule", "ls", "--json")
        assert listing.returncode == 0, listing.stderr
        mine = [s for s in json.loads(listing.stdout)["schedules"] if s["name"] == f"retrain/{name}"]
        assert mine and mine[0]["runs_on"] == "served" and mine[0]["parameters"]["data"] == str(data)
    finally:
        serving.send_signal(signal.SIGINT)  # Ctrl-C: stop serving
        try:
            out, err = serving.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stop(serving)
            out, err = serving.communicate()
    assert serving.returncode == 0, err[-2000:]
    assert f"serving retrain/{name}" in out and f"stopped serving retrain/{name}" in out

    completed_ids = {str(r.id) for r in finished}
    triggers = [signed_run_entry(home, run_id)["trigger"] for run_id in ledger_run_ids(home)]
    assert triggers, "no signed run entry"
    assert all(t["kind"] == "schedule" and t["deployment"] == name for t in triggers), triggers
    assert completed_ids & {t["flow_run_id"] for t in triggers}  # the entry names the Prefect run
    assert gatewise(home, None, "registry", "verify").returncode == 0

    removed = gatewise(home, prefect_server, "schedule", "rm", name)
    assert removed.returncode == 0 and f"removed retrain/{name}" in removed.stdout
    listing = gatewise(home, prefect_server, "schedule", "ls", "--json")
    assert f"retrain/{name}" not in [s["name"] for s in json.loads(listing.stdout)["schedules"]]


# -- a process work pool with a real worker ------------------------------------------------------


@pytest.fixture(scope="module")
def work_pool(prefect_server, tmp_path_factory):
    """A process work pool on the server and one `prefect worker` polling it every 2 s."""
    pool = f"gw-{uuid.uuid4().hex[:6]}"
    env = gatewise_env(tmp_path_factory.mktemp("worker"), prefect_server, PREFECT_WORKER_QUERY_SECONDS="2")
    created = subprocess.run([prefect_bin(), "work-pool", "create", pool, "--type", "process"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout + created.stderr
    log = open(tmp_path_factory.mktemp("worker-log") / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen([prefect_bin(), "worker", "start", "--pool", pool], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    yield pool
    stop(worker)
    log.close()


def test_work_pool_schedule_runs_the_pipeline_and_registers_a_version(tmp_path, prefect_server, work_pool):
    """Done-when of the operations issue: a worker runs the scheduled retrain flow (deployed from
    source) and the run registers and promotes a version whose signed run entry names its trigger."""
    home = tmp_path / "home"
    name = f"pooled-{uuid.uuid4().hex[:6]}"
    done = gatewise(home, prefect_server, "schedule", "--interval", "15", "--name", name, "--work-pool", work_pool,
                    "--config", str(DEMO_CONFIG), "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["schedule"] == f"retrain/{name}" and created["work_pool"] == work_pool
    assert created["parameters"]["home"] == str(home.resolve())

    started = wait_for(lambda: [r for r in flow_runs(prefect_server, name) if r.state and r.state.is_running()],
                       RUN_TIMEOUT_S, f"the worker to start a run of retrain/{name}")
    with client(prefect_server) as prefect:
        prefect.pause_deployment(created["id"])  # one full pipeline is enough on two cores
    run = started[-1]
    final = wait_for(lambda: _final_state(prefect_server, run.id), RUN_TIMEOUT_S, f"flow run {run.id} to finish", every_s=2)
    assert final.is_completed(), f"{final.name}: {final.message}"

    from gatewise.registry import Registry

    registry = Registry.open(home, None, create=False)
    try:
        versions = registry.versions("arrests")
    finally:
        registry.close()
    assert versions, "the scheduled run registered no version"
    assert all(v.run_id == versions[0].run_id for v in versions)  # one run: the scheduled one
    entry = signed_run_entry(home, versions[0].run_id)
    assert entry["trigger"] == {"kind": "schedule", "deployment": name, "flow_run_id": str(run.id)}

    listing = gatewise(home, prefect_server, "schedule", "ls", "--json")
    mine = [s for s in json.loads(listing.stdout)["schedules"] if s["name"] == f"retrain/{name}"]
    assert mine and mine[0]["runs_on"] == f"work pool {work_pool}" and mine[0]["paused"] is True
    assert gatewise(home, prefect_server, "schedule", "rm", f"retrain/{name}").returncode == 0


def _final_state(api_url, flow_run_id):
    with client(api_url) as prefect:
        state = prefect.read_flow_run(flow_run_id).state
    return state if state is not None and state.is_final() else None


def test_monitor_schedule_is_registered_for_the_pool(tmp_path, prefect_server, work_pool):
    import importlib.util

    if importlib.util.find_spec("gatewise.flows.monitor") is None:
        pytest.skip("the monitor flow (gatewise.flows.monitor) is not in this checkout yet")
    home = tmp_path / "home"
    current = tmp_path / "current.csv"
    current.write_text("age,sex\n30,Male\n")
    name = f"watch-{uuid.uuid4().hex[:6]}"
    done = gatewise(home, prefect_server, "schedule", "--monitor", "--cron", "*/15 * * * *", "--current", str(current),
                    "--name", name, "--work-pool", work_pool, "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    listing = json.loads(gatewise(home, prefect_server, "schedule", "ls", "--json").stdout)["schedules"]
    mine = next(s for s in listing if s["name"] == f"monitor/{name}")
    assert mine["schedule"] == "cron */15 * * * *" and mine["runs_on"] == f"work pool {work_pool}"
    assert mine["parameters"]["current"] == str(current.resolve()) and mine["parameters"]["from_serving"] is False
    assert gatewise(home, prefect_server, "schedule", "rm", name).returncode == 0
