"""`gatewise registry waivers`, the waiver column of `registry gates` (table and CSV), and the whole
story in `registry show`, through the real CLI on a real SQLite registry with two approvers."""

from __future__ import annotations

import csv
import io
import json

import pytest
from test_registry_support import EVIDENCE, Backend, candidate, verdicts

from gatewise.cli import main


@pytest.fixture
def decided(home, tmp_path):
    """v1 promoted by the pipeline; v2 promoted by ada over a failed fairness; v3 promoted by bo over
    failed drift; then a rollback to v2 by ada."""
    registry = Backend(home, None).open()
    registry.introduce_approver("ada")
    registry.introduce_approver("bo")
    registry.record_run("run-1", "arrests", {}, "a" * 64, {"dataset": "e" * 64}, [])
    v1 = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "v1", content=b"one" * 50))
    registry.record_gate_results(v1, verdicts(), EVIDENCE)
    registry.promote(v1)
    v2 = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "v2", content=b"two" * 50))
    registry.record_gate_results(v2, verdicts(failing="fairness"), EVIDENCE)
    registry.approve_promotion(v2, approver="ada", reason="disparity of the data itself", waive=["fairness"])
    v3 = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "v3", content=b"three" * 50))
    registry.record_gate_results(v3, verdicts(failing="drift"), EVIDENCE)
    registry.approve_promotion(v3, approver="bo", reason="seasonal drift", waive=["drift"])
    registry.rollback("arrests", reason="complaints", approver="ada")
    registry.close()
    return v1, v2, v3


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_waivers_by_approver_lists_exactly_theirs(decided, capsys):
    _, v2, v3 = decided
    code, out, _ = cli(capsys, "registry", "waivers", "--approver", "ada", "--json")
    listed = json.loads(out)
    assert code == 0 and [(w["version"], w["approver"], [g["gate"] for g in w["gates"]]) for w in listed] == [(v2, "ada", ["fairness"])]
    assert listed[0]["reason"] == "disparity of the data itself" and listed[0]["promoted_by"]
    code, out, _ = cli(capsys, "registry", "waivers")
    assert code == 0 and "ada" in out and "bo" in out and "seasonal drift" in out
    code, out, _ = cli(capsys, "registry", "waivers", "--approver", "bo", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["version"], r["gates"].split("@")[0], r["approver"]) for r in rows] == [(v3, "drift", "bo")]
    code, out, _ = cli(capsys, "registry", "waivers", "--since", "2999-01-01")
    assert code == 0 and "no waivers match" in out


def test_waivers_bad_filters_are_one_line(decided, capsys):
    code, _, err = cli(capsys, "registry", "waivers", "--approver", "intruder")
    assert code == 2 and err.strip() == "gatewise: error: unknown approver 'intruder' (approvers with keys: ada, bo)"
    code, _, err = cli(capsys, "registry", "waivers", "--model", "nope")
    assert code == 2 and "unknown model 'nope'" in err
    code, _, err = cli(capsys, "registry", "waivers", "--until", "yesterday")
    assert code == 2 and "bad date 'yesterday'" in err


def test_gates_shows_the_waiver_of_a_failed_result(decided, capsys, tmp_path):
    _, v2, _ = decided
    code, out, _ = cli(capsys, "registry", "gates", "--failed")
    assert code == 0 and "WAIVER" in out.splitlines()[0]
    fairness = next(line for line in out.splitlines() if v2 in line and "fairness" in line)
    assert "by ada" in fairness
    code, _, _ = cli(capsys, "registry", "gates", "--csv", str(tmp_path / "gates.csv"))
    rows = list(csv.DictReader((tmp_path / "gates.csv").open()))
    waived = [r for r in rows if r["waiver"]]
    assert {(r["version"], r["gate"]) for r in waived} == {(v2, "fairness"), (decided[2], "drift")}
    assert all(r["passed"] == "false" for r in waived)


def test_show_tells_the_whole_story(decided, capsys):
    _, v2, v3 = decided
    code, out, _ = cli(capsys, "registry", "show", v2)
    assert code == 0
    assert "production" in out
    assert "in production from" in out and f"(promotion to {v3}" in out and "until now" in out  # replaced, then restored
    assert "by approver ada: disparity of the data itself" in out and "waives the failed fairness" in out
    assert "rollback at" in out and "by approver ada: complaints" in out
    code, out, _ = cli(capsys, "registry", "show", v2, "--json")
    shown = json.loads(out)
    assert [p["until"] is None for p in shown["in_production"]] == [False, True]
    assert shown["promotions"][0]["approver"] == "ada" and shown["promotions"][0]["waivers"]


def test_one_time_format_everywhere(decided, capsys):
    import re

    utc = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
    for args in (("registry", "ls", "--json"), ("registry", "show", decided[1], "--json"), ("registry", "waivers", "--json"),
                 ("registry", "history", "arrests", "--json"), ("registry", "gates", "--json")):
        code, out, _ = cli(capsys, *args)
        assert code == 0
        assert "+00:00" not in out, args
        times = re.findall(r'"(?:created|time|from|until)": "([^"]+)"', out)
        assert times and all(utc.fullmatch(t) for t in times), (args, times[:3])
