"""Bad input through the real `gatewise` command: one clear stderr line, a non-zero exit, nothing written.

Each case runs `python -m gatewise.cli` in a subprocess with GATEWISE_HOME in tmp_path, and
compares every file (and, on PostgreSQL, the ledger and the schema's tables) before and after.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_registry_support import Backend, backend, populated  # noqa: F401  (backend is a fixture)

UNREACHABLE = "postgresql+psycopg://gatewise@127.0.0.1:1/registry"  # nothing listens on port 1
UNRESOLVABLE = "postgresql+psycopg://gatewise@no-such-host.invalid:5432/registry"
READ_COMMANDS = [  # each opens the registry its own way: versions, gate listing with a CSV export, verify
    ["registry", "show", "arrests:v1"],
    ["registry", "gates", "--failed", "--csv", "gates.csv"],
    ["registry", "verify"],
]


def gatewise(home: Path, *args: str, url: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GATEWISE_REGISTRY_URL", "GATEWISE_DEBUG")}
    env["GATEWISE_HOME"] = str(home)
    if url is not None:
        env["GATEWISE_REGISTRY_URL"] = url
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=env, cwd=cwd or home.parent,
                          capture_output=True, text=True, timeout=60)


def files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the sha256 of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gatewise: error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


# -- a registry URL that cannot be reached ------------------------------------------------------


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_unreachable_url_is_one_line_and_creates_nothing(tmp_path, command):
    home = tmp_path / "home"
    result = gatewise(home, *command, url=UNREACHABLE, cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith("gatewise: error: cannot reach the registry at postgresql+psycopg://gatewise@127.0.0.1:1/registry")
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no home, no keys, no CSV


def test_unresolvable_host_given_with_url_option(tmp_path):
    home = tmp_path / "home"
    result = gatewise(home, "registry", "gates", "--url", UNRESOLVABLE, cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith("gatewise: error: cannot reach the registry at postgresql+psycopg://gatewise@no-such-host.invalid")
    assert list(tmp_path.iterdir()) == []


def test_unsupported_url_scheme_is_one_line(tmp_path):
    result = gatewise(tmp_path / "home", "registry", "ls", url="mysql://root@127.0.0.1/registry", cwd=tmp_path)
    assert result.returncode == 2
    assert "unsupported registry URL mysql://root@127.0.0.1/registry" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


# -- a corrupt database file --------------------------------------------------------------------


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_garbage_database_file_is_one_line_and_left_alone(tmp_path, command):
    home = tmp_path / "home"
    home.mkdir()
    (home / "registry.db").write_bytes(b"this is not a database " * 400)
    before = files(tmp_path)
    result = gatewise(home, *command, cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "registry database" in line and "registry.db is corrupt or not a SQLite database" in line
    assert files(tmp_path) == before  # the file is unchanged; no -wal, -shm, key or CSV appeared


def test_truncated_database_file_is_one_line_and_left_alone(tmp_path):
    home = tmp_path / "home"
    registry, _ = populated(Backend(home, None), tmp_path / "made")
    for _ in range(40):  # grow the file past its first pages, so that truncation loses table pages
        registry.record_gate_results("arrests:v1", [], {})
    registry.close()
    db = home / "registry.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    before = files(home)
    result = gatewise(home, "registry", "verify", cwd=tmp_path)
    assert result.returncode != 0
    line = one_error_line(result)
    assert f"registry database {db}" in line
    assert files(home) == before


# -- an unknown version name, gate, model or date -----------------------------------------------


@pytest.fixture
def filled(backend, tmp_path):  # noqa: F811 - the fixture named backend
    registry, _ = populated(backend, tmp_path / "made")
    registry.close()
    return backend


def state(backend: Backend) -> object:  # noqa: F811
    """Everything a command could have written: the home's files and, on PostgreSQL, the database."""
    found: dict[str, object] = {"files": files(backend.home.parent)}
    if backend.url is not None:
        found["ledger"] = backend.sql("SELECT COUNT(*), MAX(seq) FROM ledger")
        found["tables"] = backend.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
        )
        found["models"] = backend.sql("SELECT name, production_version, production_seq FROM models ORDER BY name")
    return found


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["registry", "show", "arrests:v9"], "gatewise: error: unknown version 'arrests:v9' (known: arrests:v3, arrests:v2, arrests:v1)"),
        (["registry", "gates", "--gate", "fairnes"],
         "gatewise: error: unknown gate 'fairnes' (known: accuracy_regression, drift, fairness, leakage, robustness)"),
        (["registry", "gates", "--model", "arrest", "--csv", "out.csv"], "gatewise: error: unknown model 'arrest' (known: arrests)"),
        (["registry", "gates", "--until", "2026-02-30", "--format", "csv"],
         "gatewise: error: bad date '2026-02-30' for --until: use YYYY-MM-DD or an ISO-8601 time such as 2026-11-20T10:00Z"),
    ],
    ids=["version", "gate", "model", "date"],
)
def test_unknown_names_are_one_line_exit_2_and_change_nothing(filled, args, expected):
    before = state(filled)
    result = gatewise(filled.home, *args, url=filled.url)
    assert result.returncode == 2
    assert one_error_line(result) == expected
    assert result.stdout == ""
    assert state(filled) == before
