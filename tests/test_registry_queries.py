"""Auditor queries: gate results filtered by model, gate, verdict and time; CSV; a version's lineage."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from test_registry_support import EVIDENCE, PLUGIN, Backend, backend, candidate, populated, verdicts  # noqa: F401

from gatewise.cli import main
from gatewise.errors import UsageError
from gatewise.registry import queries as q
from gatewise.types import Candidate, GateResult


def busy(backend: Backend, tmp_path):  # noqa: F811
    """Two models, a three-level lineage, failures, a plugin gate and a data-gate rejection."""
    registry, versions = populated(backend, tmp_path)  # arrests:v1 (fairness fails), v2 promoted, v3 errored
    registry.record_run("run-2", "credit", {"seed": 1}, "b" * 64, {"dataset": "f" * 64, "train": "4" * 64}, [])
    base = registry.register_candidate("run-2", "credit", candidate(tmp_path / "in2", "parent"))
    child = registry.register_candidate("run-2", "credit", candidate(tmp_path / "in2", "int8", parent="parent"))
    grandchild = registry.register_candidate("run-2", "credit", candidate(tmp_path / "in2", "fp16", parent="int8"))
    registry.record_gate_results(base, verdicts(failing="drift"), EVIDENCE)
    registry.record_gate_results(child, verdicts(failing="leakage"), {**EVIDENCE, "champion_version": "arrests:v2"})
    registry.record_gate_results(grandchild, [GateResult("calibration", False, 0.2, 0.1, "calibration off")], EVIDENCE)
    registry.record_run("run-3", "credit", {"seed": 2}, "c" * 64, {"dataset": "9" * 64}, [])
    registry.record_data_rejection("run-3", "credit", GateResult("data_validation", False, 0.5, 1.0, "3 expectations failed"))
    return registry, {"parent": versions["parent"], "promoted": versions["child"], "errored": versions["errored"],
                      "base": base, "child": child, "grandchild": grandchild}


def test_listing_is_newest_first_and_filters_combine(backend, tmp_path):  # noqa: F811
    registry, v = busy(backend, tmp_path)
    everything = q.gate_results(registry).records
    assert len(everything) == 5 + 5 + 5 + 5 + 1 + 1  # four gated versions' verdicts, a plugin gate, a data rejection
    assert [r.seq for r in everything] == sorted((r.seq for r in everything), reverse=True)
    assert everything[0].kind == "data" and everything[0].version is None and everything[0].gate == "data_validation"

    failed = q.gate_results(registry, q.GateFilter(passed=False)).records
    assert [(r.version, r.gate) for r in failed] == [
        (None, "data_validation"), (v["grandchild"], "calibration"), (v["child"], "leakage"),
        (v["base"], "drift"), (v["parent"], "fairness"),
    ]
    assert all(not r.passed for r in failed)

    credit_failed = q.gate_results(registry, q.GateFilter(model="credit", passed=False)).records
    assert [r.gate for r in credit_failed] == ["data_validation", "calibration", "leakage", "drift"]
    drift = q.gate_results(registry, q.GateFilter(gate="drift")).records
    assert [(r.version, r.passed) for r in drift] == [(v["child"], True), (v["base"], False), (v["promoted"], True), (v["parent"], True)]
    assert [r.version for r in q.gate_results(registry, q.GateFilter(model="arrests", gate="fairness", passed=False)).records] == [v["parent"]]

    record = drift[1]
    assert record.value == 0.91 and record.threshold == 0.8 and record.policy_digest == "d" * 64
    assert record.run_id == "run-2" and record.model == "credit" and len(record.entry_digest) == 64
    assert backend.sql("SELECT digest FROM ledger WHERE seq = ?", record.seq)[0][0] == record.entry_digest


def test_since_and_until_bound_the_recorded_time(backend, tmp_path):  # noqa: F811
    registry, _ = busy(backend, tmp_path)
    everything = q.gate_results(registry).records
    middle = everything[len(everything) // 2]
    when = q.parse_when(middle.time)
    newer = q.gate_results(registry, q.GateFilter(since=when)).records
    older = q.gate_results(registry, q.GateFilter(until=when)).records
    assert newer[-1].seq == middle.seq  # --since is inclusive
    assert all(r.time >= middle.time for r in newer) and all(r.time < middle.time for r in older)
    assert len(newer) + len(older) == len(everything)
    window = q.gate_results(registry, q.GateFilter(since=when, until=when + timedelta(microseconds=1))).records
    assert [r.seq for r in window] == [middle.seq]
    assert q.gate_results(registry, q.GateFilter(since=datetime.now(timezone.utc) + timedelta(days=1))).records == []


def test_limit_keeps_the_newest_and_says_it_truncated(backend, tmp_path):  # noqa: F811
    registry, _ = busy(backend, tmp_path)
    everything = q.gate_results(registry).records
    page = q.gate_results(registry, q.GateFilter(), limit=3)
    assert page.records == everything[:3] and page.truncated
    assert not q.gate_results(registry, q.GateFilter(), limit=len(everything)).truncated
    assert list(q.iter_gate_results(registry)) == everything
    with pytest.raises(UsageError, match="bad limit 0"):
        q.gate_results(registry, limit=0)


def test_unknown_gate_or_model_names_the_known_ones(backend, tmp_path):  # noqa: F811
    registry, _ = busy(backend, tmp_path)
    with pytest.raises(UsageError) as raised:
        q.gate_results(registry, q.GateFilter(gate="fairnes"))
    assert str(raised.value) == (
        "unknown gate 'fairnes' (known: accuracy_regression, calibration, data_validation, drift, fairness, leakage, robustness)"
    )
    with pytest.raises(UsageError, match=r"^unknown model 'nope' \(known: arrests, credit\)$"):
        q.gate_results(registry, q.GateFilter(model="nope"))
    assert q.gate_results(registry, q.GateFilter(gate="calibration", passed=True)).records == []  # known, nothing matches


def test_a_mandatory_gate_with_no_results_yet_is_known(backend):  # noqa: F811
    registry = backend.open()
    assert q.gate_results(registry, q.GateFilter(gate="leakage")).records == []
    assert q.known_gates(registry) == ["accuracy_regression", "drift", "fairness", "leakage", "robustness"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", "2026-11-20T00:00:00.000000Z"),
        ("2026-11-20T10:30", "2026-11-20T10:30:00.000000Z"),
        ("2026-11-20T10:30:00Z", "2026-11-20T10:30:00.000000Z"),
        ("2026-11-20T12:30:00+02:00", "2026-11-20T10:30:00.000000Z"),
        ("2026-11-20T10:30:00.123456Z", "2026-11-20T10:30:00.123456Z"),
    ],
)
def test_dates_are_read_as_utc(text, expected):
    assert q.stored_time(q.parse_when(text)) == expected


def test_a_bad_date_names_the_option():
    with pytest.raises(UsageError, match=r"^bad date '2026-11-31' for --until: use YYYY-MM-DD"):
        q.parse_when("2026-11-31", "--until")


def test_lineage_of_a_version(backend, tmp_path):  # noqa: F811
    registry, v = busy(backend, tmp_path)
    lineage = q.lineage(registry, v["grandchild"])
    assert lineage.parent == v["child"] and lineage.ancestors == [v["child"], v["base"]]
    assert lineage.run_id == "run-2" and lineage.candidate == "fp16"
    assert lineage.settings_digest == "b" * 64 and lineage.settings == {"seed": 1}
    assert lineage.data == {"dataset": "f" * 64, "train": "4" * 64}
    assert lineage.policy_digests == ["d" * 64]
    assert lineage.plugin == PLUGIN.record()  # the whole signed plugin record
    run_seq = backend.sql("SELECT entry_seq, entry_digest FROM runs WHERE run_id = 'run-2'")[0]
    assert lineage.run_entry == {"seq": run_seq[0], "digest": run_seq[1]}
    assert q.lineage(registry, v["child"]).champion_versions == ["arrests:v2"]
    assert q.lineage(registry, v["base"]).ancestors == []


def test_show_adds_the_lineage_to_what_the_registry_shows(backend, tmp_path):  # noqa: F811
    registry, v = busy(backend, tmp_path)
    shown = q.show(registry, v["child"])
    assert shown["version"] == v["child"] and len(shown["gate_results"]) == 5
    assert shown["lineage"]["parent"] == v["base"] and shown["lineage"]["policy_digests"] == ["d" * 64]
    json.dumps(shown)  # JSON-ready


# -- through the CLI ----------------------------------------------------------------------------


@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("GATEWISE_HOME", str(home))
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    registry, versions = busy(Backend(home, None), tmp_path)
    assert registry.verify().ok  # read commands stay quiet on a verified registry
    registry.close()
    return home, versions


def test_gates_command_prints_a_table(cli_home, capsys):
    assert main(["registry", "gates", "--failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIME", "(UTC)", "VERSION", "GATE", "VERDICT", "VALUE", "THRESHOLD", "ENTRY", "DIGEST", "WAIVER"]
    assert len(lines) == 1 + 5 and all("FAIL" in line for line in lines[1:])
    assert "credit (data)" in lines[1] and "data_validation" in lines[1]
    assert lines[2].index("calibration") == lines[0].index("GATE")


def test_gates_command_json_and_limit(cli_home, capsys):
    assert main(["registry", "gates", "--model", "arrests", "--gate", "fairness", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["passed"]) for r in listed] == [("arrests:v2", True), ("arrests:v1", False)]
    assert set(listed[0]) == {"seq", "time", "model", "version", "run_id", "kind", "gate", "passed", "value", "threshold",
                              "policy_digest", "entry_digest", "summary", "waiver"}
    assert main(["registry", "gates", "--limit", "2", "--json"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 2
    assert captured.err == "gatewise: showing the newest 2 results; --limit N for more, --limit 0 for all\n"


def test_gates_csv_export_has_the_documented_columns(cli_home, tmp_path, capsys):
    target = tmp_path / "gates.csv"
    assert main(["registry", "gates", "--csv", str(target)]) == 0
    assert capsys.readouterr().out == f"wrote 22 gate result(s) to {target}\n"
    rows = list(csv.DictReader(target.open()))
    assert tuple(rows[0]) == q.CSV_COLUMNS
    assert len(rows) == 22
    rejected = rows[0]
    assert rejected["version"] == "" and rejected["kind"] == "data" and rejected["passed"] == "false"
    assert rejected["value"] == "0.5" and rejected["policy_digest"] == ""
    assert {r["passed"] for r in rows} == {"true", "false"}
    assert not list(tmp_path.glob(".gates.csv.*"))  # the temporary file was renamed into place

    assert main(["registry", "gates", "--gate", "drift", "--failed", "--format", "csv"]) == 0
    streamed = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert streamed[0] == list(q.CSV_COLUMNS) and [r[6] for r in streamed[1:]] == ["drift"]


def test_gates_csv_of_a_bad_filter_writes_no_file(cli_home, tmp_path, capsys):
    target = tmp_path / "gates.csv"
    assert main(["registry", "gates", "--gate", "nope", "--csv", str(target)]) == 2
    assert capsys.readouterr().err.startswith("gatewise: error: unknown gate 'nope'")
    assert not target.exists() and not list(tmp_path.glob(".gates.csv.*"))


def test_show_command_prints_the_lineage(cli_home, capsys):
    _, v = cli_home
    assert main(["registry", "show", v["grandchild"]]) == 0
    out = capsys.readouterr().out
    block = out[out.index("lineage\n"):]
    assert "  run        run-2 (entry " in block
    assert f"  settings   sha256 {'b' * 64}" in block and f"  policy     sha256 {'d' * 64}" in block
    assert f"  data       dataset  {'f' * 64}" in block and f"             train    {'4' * 64}" in block
    assert f"  plugin     int8_dynamic 0.1.0 from gatewise, code sha256 {'c' * 64}" in block
    assert f"  ancestors  {v['child']} <- {v['base']}" in block
    assert main(["registry", "show", v["grandchild"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lineage"]["ancestors"] == [v["child"], v["base"]]


# -- the indexes that keep listings fast ----------------------------------------------------------

FILTERS = [
    q.GateFilter(),
    q.GateFilter(gate="drift"),
    q.GateFilter(passed=False),
    q.GateFilter(model="m", gate="drift", passed=False),
    q.GateFilter(model="m", since=datetime(2026, 1, 1, tzinfo=timezone.utc)),
    q.GateFilter(gate="drift", passed=False, since=datetime(2026, 1, 1, tzinfo=timezone.utc), until=datetime(2027, 1, 1)),
    q.GateFilter(model="m", passed=False, since=datetime(2026, 1, 1, tzinfo=timezone.utc)),
]


@pytest.mark.parametrize("where", FILTERS, ids=lambda w: ",".join(k for k, val in vars(w).items() if val is not None) or "none")
def test_every_listing_walks_an_index_without_scanning_the_table(home, where):
    from gatewise.registry import Registry
    from sqlalchemy.dialects import sqlite

    Registry.open(home).close()
    sql = str(q.gate_query(where, 1001).compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(home / "registry.db") as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
    reads = [step for step in plan if "gate_results" in step]
    # Each read is an index search (the listing indexes, or the primary key for the chosen rows);
    # nothing scans the table, and the only sorts are of the at most 2 x 1001 keys the branches chose.
    assert reads and all(step.startswith("SEARCH gate_results USING ") and " INDEX " in step for step in reads), plan
    assert any("ix_gate_results_" in step for step in reads), plan
    assert sum("B-TREE" in step for step in plan) <= (0 if where.passed is not None else 2), plan


def test_an_older_registry_gets_the_new_indexes_when_opened_for_writing(home):
    from gatewise.registry import Registry

    Registry.open(home).close()
    db = home / "registry.db"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX ix_gate_results_gate_time")

    def indexes() -> set[str]:
        with sqlite3.connect(db) as conn:
            return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}

    Registry.open(home, create=False).close()
    assert "ix_gate_results_gate_time" not in indexes()  # a read-only open changes nothing
    Registry.open(home).close()
    assert "ix_gate_results_gate_time" in indexes()


def test_errored_candidate_without_gates_has_a_lineage_too(backend, tmp_path):  # noqa: F811
    registry, v = populated(backend, tmp_path)
    lineage = q.lineage(registry, v["errored"])
    assert lineage.parent == v["parent"] and lineage.policy_digests == [] and lineage.run_id == "run-1"
    registry.record_run("run-x", "arrests", {}, "e" * 64, {}, [])
    orphan = registry.register_candidate("run-x", "arrests", Candidate("lone", PLUGIN, "errored", error="boom"))
    assert q.lineage(registry, orphan).ancestors == []
