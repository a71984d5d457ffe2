"""`gatewise registry history MODEL`: who promoted, waived and rolled back what, when, on which evidence."""

from __future__ import annotations

import json

import pytest
from test_registry_support import Backend, backend, populated  # noqa: F401  (backend is a fixture)

from gatewise.errors import RegistryError


def _decided(backend, tmp_path):
    """Pipeline promotes v2; reviewer promotes v1 waiving its failed fairness; the pipeline rolls back to v2."""
    registry, v = populated(backend, tmp_path)
    reviewer, _, _ = registry.introduce_approver("reviewer")
    waived = registry.approve_promotion(v["parent"], approver="reviewer", reason="gap accepted by the board", waive=["fairness"])
    back = registry.rollback("arrests", reason="latency regression")
    return registry, v, reviewer, waived, back


def test_history_shows_every_decision_with_signer_and_evidence(backend, tmp_path):
    registry, v, reviewer, waived, back = _decided(backend, tmp_path)
    pipeline = registry.pipeline_key.keyid
    history = registry.history("arrests")
    json.dumps(history)  # JSON-ready
    assert history["production"] == v["child"]
    events = history["events"]
    assert [(e["event"], e["version"]) for e in events] == [
        ("promotion", v["child"]), ("waiver", v["parent"]), ("promotion", v["parent"]), ("rollback", v["child"])]
    first, waiver, human, rollback = events
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert first["signer"] == {"keyid": pipeline, "name": "pipeline", "role": "pipeline"} and first["approver"] is None
    assert all(g["passed"] for g in first["gate_results"]) and len(first["gate_results"]) == 5

    assert waiver["signer"] == {"keyid": reviewer.keyid, "name": "reviewer", "role": "approver"}
    assert (waiver["seq"], waiver["digest"]) == (waived.waiver_seq, waived.waiver_digest)
    [overridden] = waiver["gate_results"]
    assert (overridden["gate"], overridden["passed"], overridden["value"], overridden["threshold"]) == ("fairness", False, 0.91, 0.8)

    # the promotion shows the failed result and the waiver side by side
    assert (human["seq"], human["approver"], human["previous_version"]) == (waived.seq, "reviewer", v["child"])
    assert human["reason"] == "gap accepted by the board" and human["time"].endswith("Z")
    fairness = next(g for g in human["gate_results"] if g["gate"] == "fairness")
    assert fairness["passed"] is False and fairness["waived_by"] == waived.waiver_seq
    assert fairness["digest"] == overridden["digest"] and len(fairness["digest"]) == 64
    assert human["waivers"] == [{"seq": waived.waiver_seq, "digest": waived.waiver_digest}]
    assert human["predicate_type"] == "https://gatewise.dev/predicates/promotion/v2"

    assert (rollback["previous_version"], rollback["signer"]["role"], rollback["restores"]["seq"]) == (v["parent"], "pipeline", first["seq"])
    assert rollback["gate_results"] == first["gate_results"]  # it relied on the evidence of the promotion it restores


def test_history_of_unknown_and_undecided_models(backend, tmp_path):
    registry = backend.open()
    registry.record_run("run-1", "iris", {}, "a" * 64, {}, [])
    assert registry.history("iris") == {"model": "iris", "production": None, "events": [], "truncated": False}
    with pytest.raises(RegistryError, match=r"^unknown model 'arrests' \(known: iris\)$"):
        registry.history("arrests")


def test_cli_history_table_and_json(home, tmp_path, capsys):
    from gatewise.cli import main

    registry, v, reviewer, waived, back = _decided(Backend(home, None), tmp_path)
    registry.close()
    assert main(["registry", "history", "arrests"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "model arrests: production arrests:v2; 4 decision(s)"
    assert f"entry {waived.waiver_seq}  " in out and "waiver arrests:v1" in out
    assert f"signed by approver reviewer key {reviewer.keyid[:16]}; reason: gap accepted by the board" in out
    fairness_rows = [line for line in out.splitlines() if line.strip().startswith("fairness") and "FAIL" in line]
    assert any(f"waived (entry {waived.waiver_seq})" in line for line in fairness_rows)
    assert f"rollback arrests:v2 (previous arrests:v1)" in out
    assert main(["registry", "history", "arrests", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [e["event"] for e in document["events"]] == ["promotion", "waiver", "promotion", "rollback"]


def test_cli_history_errors_are_one_line_and_create_nothing(home, capsys):
    from gatewise.cli import main

    assert main(["registry", "history", "arrests"]) == 2
    assert not home.exists()
    Backend(home, None).open().close()
    assert main(["registry", "history", "arrests"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gatewise: error: no registry at {home.resolve() / 'registry.db'}: run `gatewise run` first",
                   "gatewise: error: unknown model 'arrests' (known: none)"]


def test_history_limit_keeps_the_newest_decisions(tmp_path):
    from test_registry_support import EVIDENCE, candidate, verdicts

    from gatewise.registry import Registry

    with Registry.open(tmp_path / "home") as reg:
        reg.record_run("run-1", "m", {}, "a" * 64, {"dataset": "e" * 64}, [])
        versions = []
        for i in range(3):
            version = reg.register_candidate("run-1", "m", candidate(tmp_path / "in", f"c{i}"))
            reg.record_gate_results(version, verdicts(), EVIDENCE)
            reg.promote(version)
            versions.append(version)
        everything = reg.history("m", limit=0)
        newest = reg.history("m", limit=2)
        with pytest.raises(RegistryError, match="--limit"):
            reg.history("m", limit=-1)
    assert [e["version"] for e in everything["events"]] == versions and not everything["truncated"]
    assert [e["version"] for e in newest["events"]] == versions[1:] and newest["truncated"]
