"""infra/stack.sh on a real PostgreSQL: the Prefect server keeps its state there, a worker polls the
work pool, the registry gets its own schema, `gatewise schedule --work-pool` deploys onto it, and
`stop` leaves no process behind. Runs where GATEWISE_TEST_POSTGRES_URL names a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_schedule_support import ROOT, client, free_port, gatewise, wait_for

POSTGRES_ENV = "GATEWISE_TEST_POSTGRES_URL"
STACK = ROOT / "infra" / "stack.sh"

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url():
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: the PostgreSQL stack is not tested")
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest  # the stack takes a plain URL and picks each client's driver


def sql(database_url, statement, *params):
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def stack(env, *args, timeout=420):
    return subprocess.run(["bash", str(STACK), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_stack_runs_prefect_workers_and_registry_on_postgres(tmp_path, database_url):
    schema = f"gw_stack_{uuid.uuid4().hex[:8]}"
    pool = f"gw-stack-{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = {
        **os.environ,
        "GATEWISE_STACK_DATABASE_URL": database_url,
        "GATEWISE_STACK_DIR": str(tmp_path / "stack"),
        "GATEWISE_STACK_PREFECT_PORT": str(port),
        "GATEWISE_STACK_POOL": pool,
        "GATEWISE_STACK_WORKERS": "1",
        "GATEWISE_STACK_SERVE_REPLICAS": "1",
        "GATEWISE_STACK_REGISTRY_SCHEMA": schema,
        "GATEWISE_STACK_BIN": str(Path(sys.executable).parent),
        "GATEWISE_HOME": str(tmp_path / "home"),
    }
    for name in ("PREFECT_API_URL", "GATEWISE_REGISTRY_URL", "PREFECT_HOME"):
        env.pop(name, None)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        started = stack(env, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"export PREFECT_API_URL={api_url}" in started.stdout
        assert "serve replicas: not started, arrests has no production version yet" in started.stdout

        # Prefect's state is in PostgreSQL: the pool this stack created is a row there.
        assert sql(database_url, "SELECT name FROM work_pool WHERE name = %s", pool) == [(pool,)]
        # The registry has its own schema on the same database, with its ledger.
        assert sql(database_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                   "AND table_name = 'ledger'", schema) == [("ledger",)]
        with client(api_url) as prefect:
            wait_for(lambda: prefect.read_workers_for_work_pool(pool), 120, f"a worker polling {pool}", every_s=2)

        exports = dict(line.removeprefix("export ").split("=", 1) for line in stack(env, "env").stdout.splitlines())
        registry_url = exports["GATEWISE_REGISTRY_URL"].strip("'")
        name = f"stack-{uuid.uuid4().hex[:6]}"
        done = gatewise(tmp_path / "home", api_url, "schedule", "--interval", "3600", "--name", name, "--work-pool", pool,
                        "--json", timeout=180, GATEWISE_REGISTRY_URL=registry_url)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["work_pool"] == pool
        assert sql(database_url, "SELECT count(*) FROM deployment WHERE name = %s", name) == [(1,)]
        status = stack(env, "status")
        assert status.returncode == 0 and "prefect-server: running" in status.stdout and "worker-1: running" in status.stdout
        assert gatewise(tmp_path / "home", api_url, "schedule", "rm", name).returncode == 0
        subprocess.run([str(Path(sys.executable).parent / "prefect"), "work-pool", "delete", pool],
                       env={**env, "PREFECT_API_URL": api_url}, input="y\n", capture_output=True, text=True, timeout=60)
    finally:
        pids = [int(p.read_text()) for p in (tmp_path / "stack" / "pids").glob("*.pid")]
        stopped = stack(env, "stop", timeout=180)
        sql(database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped prefect-server" in stopped.stdout
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert stack(env, "status").returncode == 3
