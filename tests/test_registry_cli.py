"""`gatewise registry ls | show | verify`: tables, JSON, exit codes, and reads that create nothing."""

from __future__ import annotations

import json

import pytest
from test_registry_support import Backend, populated

from gatewise.cli import main


@pytest.fixture
def filled(home, tmp_path):
    backend = Backend(home, None)
    registry, versions = populated(backend, tmp_path)
    registry.close()
    return backend, versions


def test_ls_prints_an_aligned_table(filled, capsys):
    assert main(["registry", "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "STATUS", "ALIAS", "PLUGIN", "PARENT", "SHA256", "CREATED", "(UTC)"]
    assert lines[2].startswith("arrests:v2") and "production" in lines[2]
    assert lines[3].startswith("arrests:v3") and "errored" in lines[3]
    assert lines[1].index("ok") == lines[0].index("STATUS")


def test_ls_and_show_json(filled, capsys):
    assert main(["registry", "ls", "--json", "--model", "arrests"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in listing] == ["arrests:v1", "arrests:v2", "arrests:v3"]
    assert listing[1]["production"] is True and listing[2]["error"] == "ValueError: bad graph"
    assert main(["registry", "show", "arrests:v2", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["parent"] == "arrests:v1" and len(shown["gate_results"]) == 5


def test_show_prints_fields_and_gate_table(filled, capsys):
    assert main(["registry", "show", "arrests:v1"]) == 0
    out = capsys.readouterr().out
    assert "status      ok" in out
    assert "fairness" in out and "FAIL" in out


def test_unknown_version_is_one_line_exit_2(filled, capsys):
    assert main(["registry", "show", "arrests:v9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gatewise: error: unknown version 'arrests:v9' (known: arrests:v3, arrests:v2, arrests:v1)"]


def test_verify_ok_and_tampered(filled, capsys):
    backend, versions = filled
    assert main(["registry", "verify"]) == 0
    assert capsys.readouterr().out.startswith("OK: 16 entries")
    backend.sql("UPDATE gate_results SET passed = 1 WHERE version = ? AND gate = 'fairness'", versions["parent"])
    backend.sql("UPDATE gate_results SET value = 0.5 WHERE version = ? AND gate = 'drift'", versions["child"])
    assert main(["registry", "verify"]) == 4
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gate_results row entry_seq=7 (arrests:v1 fairness): field passed")
    assert lines[1].startswith("gate_results row entry_seq=14 (arrests:v2 drift): field value")
    assert lines[2].startswith("FAILED: 2 problem(s)")
    assert main(["registry", "verify", "--json"]) == 4
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and [p["seq"] for p in report["problems"]] == [7, 14]


@pytest.mark.parametrize("command", [["ls"], ["show", "arrests:v1"], ["verify"]])
def test_reads_on_an_empty_home_create_nothing(home, capsys, command):
    assert main(["registry", *command]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gatewise: error: no registry at {home.resolve() / 'registry.db'}: run `gatewise run` first"
    assert not home.exists()


def test_corrupt_database_is_one_line(home, capsys):
    home.mkdir()
    (home / "registry.db").write_bytes(b"garbage" * 500)
    assert main(["registry", "ls"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "corrupt or not a SQLite database" in line
