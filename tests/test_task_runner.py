"""[run] task_runner: the candidates' compressors and gates on Dask (prefect-dask), checked before
the run starts; one real run on a Dask cluster against a running Prefect server."""

from __future__ import annotations

import json
import sys

import pytest
from test_schedule_support import (
    DEMO_CONFIG,
    client,
    gatewise,
    prefect_server,  # noqa: F401 - the fixture
)

from gatewise.cli import main
from gatewise.config import parse_settings
from gatewise.errors import UsageError

FIVE_GATES = {"accuracy_regression", "fairness", "robustness", "drift", "leakage"}


def dask_config(tmp_path, address: str | None = None):
    """The demo config with [run] task_runner = "dask" (and an address when given)."""
    text = DEMO_CONFIG.read_text() + '\n[run]\ntask_runner = "dask"\n'
    if address:
        text += f'address = "{address}"\n'
    path = tmp_path / "gatewise.toml"
    path.write_text(text)
    return path


def test_unknown_task_runner_names_the_key():
    with pytest.raises(UsageError, match=r"'run.task_runner'.*'threads' or 'dask'"):
        parse_settings({"run": {"task_runner": "ray"}})


def test_missing_prefect_dask_is_one_line_with_the_install_command(tmp_path, home, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # as if the package were not installed
    code = main(["run", "--config", str(dask_config(tmp_path))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "pip install 'gatewise[dask]'" in err and "task_runner" in err
    assert not (home / "registry.db").exists() or _run_entries(home) == 0  # nothing recorded


def test_silent_dask_scheduler_is_one_line(tmp_path, home, capsys):
    from test_schedule_support import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    code = main(["run", "--config", str(dask_config(tmp_path, address))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and address in err and "no Dask scheduler answered" in err
    assert not (home / "registry.db").exists() or _run_entries(home) == 0


def _run_entries(home) -> int:
    import sqlite3

    with sqlite3.connect(home / "registry.db") as conn:
        return conn.execute("SELECT count(*) FROM ledger WHERE predicate_type LIKE '%/run/v1'").fetchone()[0]


@pytest.fixture(scope="module")
def dask_cluster():
    """A real Dask LocalCluster reachable over TCP: one in-process worker with two threads."""
    distributed = pytest.importorskip("distributed", reason="prefect-dask (gatewise[dask]) is not installed")
    pytest.importorskip("prefect_dask", reason="prefect-dask (gatewise[dask]) is not installed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://",
                                       host="127.0.0.1", dashboard_address=None)
    yield cluster
    cluster.close()


def test_run_on_a_dask_cluster_against_a_prefect_server(tmp_path, prefect_server, dask_cluster):
    """`gatewise run` with task_runner "dask" at an existing cluster's address, on a running Prefect
    server: the cluster runs every compressor and every candidate's gates, and the run registers,
    gates and promotes its candidates as the thread runner does."""
    home = tmp_path / "home"
    config = dask_config(tmp_path, dask_cluster.scheduler_address)
    done = gatewise(home, prefect_server, "run", "--config", str(config), "--json")
    assert done.returncode in (0, 3), done.stderr[-3000:]  # promoted, or blocked by a gate: both gated
    outcome = json.loads(done.stdout)

    from gatewise.config import load_settings

    candidates = outcome["candidates"]
    names = [c["name"] for c in candidates]
    assert names[0] == "parent" and set(load_settings(config).compress.compressors) <= set(names)
    for candidate in candidates:
        assert candidate["status"] == "ok" and candidate["version"], candidate
        assert set(candidate["gates"]) == FIVE_GATES
    passed = {c["version"] for c in candidates if c["passed"]}
    assert (outcome["promoted"] in passed) if passed else (outcome["promoted"] is None and done.returncode == 3)

    # The work happened on the cluster: two compressions, three candidates' gates.
    prefixes = dask_cluster.scheduler.task_prefixes
    assert prefixes["compress"].all_durations["compute"] > 0
    assert prefixes["gate_candidate"].all_durations["compute"] > 0
    # And on the configured Prefect server, not a temporary one.
    with client(prefect_server) as prefect:
        names = {run.name for run in prefect.read_task_runs(limit=200)}
    assert any(name.startswith("compress") for name in names) and any(name.startswith("gates") for name in names)
    verify = gatewise(home, None, "registry", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
