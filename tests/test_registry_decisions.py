"""Human decisions: approver-signed promotions with waivers of failed gates, and rollbacks.

A waiver never turns a failure into a pass; a promotion still needs a recorded result for every
mandatory gate; a rollback restores only a version that was promoted before.
"""

from __future__ import annotations

import json

import pytest
from test_registry_keys import forge, private_key, problems_of
from test_registry_support import (  # noqa: F401  (backend is a fixture)
    EVIDENCE,
    MANDATORY,
    backend,
    candidate,
    populated,
    verdicts,
)

from gatewise.errors import RegistryError
from gatewise.registry.decisions import PromotionBlocked
from gatewise.registry.statements import PROMOTION_V2, WAIVER

WAIVER_TYPE = "https://gatewise.dev/predicates/waiver/v1"
PROMOTION_V2_TYPE = "https://gatewise.dev/predicates/promotion/v2"


@pytest.fixture
def approved(backend, tmp_path):
    """The populated registry (v1 failed fairness, v2 promoted, v3 errored) and approver reviewer."""
    registry, versions = populated(backend, tmp_path)
    reviewer, _, _ = registry.introduce_approver("reviewer")
    return registry, versions, reviewer


def test_waiver_is_signed_by_the_approver_and_the_failure_stays_failed(backend, approved):
    registry, v, reviewer = approved
    pipeline = registry.pipeline_key.keyid
    decision = registry.approve_promotion(v["parent"], approver="reviewer", reason="review board accepted the gap",
                                          waive=["fairness"])
    assert registry.champion("arrests").version == v["parent"]
    assert (decision.previous_version, decision.waived, decision.signer) == (v["child"], ("fairness",), reviewer.keyid)
    signed = backend.sql("SELECT seq, predicate_type, keyid FROM ledger WHERE seq IN (?, ?) ORDER BY seq",
                         decision.waiver_seq, decision.seq)
    assert signed == [(decision.waiver_seq, WAIVER_TYPE, reviewer.keyid), (decision.seq, PROMOTION_V2_TYPE, reviewer.keyid)]
    assert reviewer.keyid != pipeline
    # the failed verdict is still a failed verdict, in the table and in the record of the version
    [(passed,)] = backend.sql("SELECT passed FROM gate_results WHERE version = ? AND gate = 'fairness'", v["parent"])
    assert not passed
    shown = registry.show(v["parent"])
    assert [g["passed"] for g in shown["gate_results"] if g["gate"] == "fairness"] == [False]
    [promotion] = shown["promotions"]
    cited = {g["gate"]: g for g in promotion["gate_results"]}
    assert list(cited) == list(MANDATORY)
    assert cited["fairness"]["passed"] is False
    assert cited["fairness"]["waiver"] == {"seq": decision.waiver_seq, "digest": decision.waiver_digest}
    assert cited["drift"]["passed"] is True and cited["drift"]["waiver"] is None
    [(gates, approver, reason)] = backend.sql("SELECT gates, approver, reason FROM waivers")
    [fairness_seq] = [g["entry"]["seq"] for g in shown["gate_results"] if g["gate"] == "fairness"]
    assert [(g["gate"], g["seq"]) for g in json.loads(gates)] == [("fairness", fairness_seq)]
    assert (approver, reason) == ("reviewer", "review board accepted the gap")
    report = registry.verify()
    assert report.ok, report.problems


def test_only_recorded_failures_can_be_waived(backend, approved, tmp_path):
    registry, v, _ = approved
    head = registry.head()
    with pytest.raises(RegistryError, match=r"cannot waive drift for arrests:v1: its latest result \(entry \d+\) passed; "
                                            "only a failed gate can be waived"):
        registry.approve_promotion(v["parent"], approver="reviewer", reason="x", waive=["fairness", "drift"])
    with pytest.raises(RegistryError, match="cannot waive latency for arrests:v1: it has no recorded result"):
        registry.approve_promotion(v["parent"], approver="reviewer", reason="x", waive=["fairness", "latency"])
    with pytest.raises(PromotionBlocked, match=r"cannot promote arrests:v1: failed fairness \(entry \d+\) and not waived"):
        registry.approve_promotion(v["parent"], approver="reviewer", reason="x")
    with pytest.raises(RegistryError, match=r"cannot promote arrests:v3: the candidate errored"):
        registry.approve_promotion(v["errored"], approver="reviewer", reason="x")
    # a missing mandatory result is not a failure: nothing can waive it
    partial = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "partial", content=b"p"))
    registry.record_gate_results(partial, verdicts(failing="drift", gates=MANDATORY[:4]), EVIDENCE)
    head = registry.head()
    with pytest.raises(PromotionBlocked, match="no recorded result for leakage") as blocked:
        registry.approve_promotion(partial, approver="reviewer", reason="x", waive=["drift"])
    assert blocked.value.exit_code == 3
    with pytest.raises(RegistryError, match="already the production version"):
        registry.approve_promotion(v["child"], approver="reviewer", reason="x")
    assert registry.head() == head and registry.champion("arrests").version == v["child"]


def test_the_approver_signs_with_their_own_key_only(backend, approved):
    registry, v, _ = approved
    registry.introduce_approver("risk_officer")
    home = backend.home
    with pytest.raises(RegistryError, match="is the pipeline key, not an approver key"):
        registry.approve_promotion(v["parent"], approver="reviewer", reason="x", waive=["fairness"],
                                   key_file=home / "keys" / "pipeline.ed25519")
    with pytest.raises(RegistryError, match="is approver reviewer's, not risk_officer's"):
        registry.approve_promotion(v["parent"], approver="risk_officer", reason="x", waive=["fairness"],
                                   key_file=home / "keys" / "approvers" / "reviewer.ed25519")
    with pytest.raises(RegistryError, match="no key for approver ops_lead at .*gatewise keys init --approver ops_lead"):
        registry.approve_promotion(v["parent"], approver="ops_lead", reason="x", waive=["fairness"])
    with pytest.raises(Exception, match="needs a --reason"):
        registry.approve_promotion(v["parent"], approver="reviewer", reason="  ", waive=["fairness"])


def test_rollback_moves_the_alias_back_with_a_signed_record(backend, approved, tmp_path):
    registry, v, reviewer = approved
    registry.approve_promotion(v["parent"], approver="reviewer", reason="accepted", waive=["fairness"])
    back = registry.rollback("arrests", reason="latency regression in production")
    assert (back.version, back.previous_version, back.approver) == (v["child"], v["parent"], None)
    assert back.signer == registry.pipeline_key.keyid
    assert registry.champion("arrests").version == v["child"]
    [(model, version, previous, promotion_seq)] = backend.sql(
        "SELECT model, version, previous_version, promotion_seq FROM rollbacks")
    [(first_promotion,)] = backend.sql("SELECT entry_seq FROM promotions WHERE version = ?", v["child"])
    assert (model, version, previous, promotion_seq) == ("arrests", v["child"], v["parent"], first_promotion)
    # forward again with --to, signed by an approver
    forward = registry.rollback("arrests", to=v["parent"], reason="fixed upstream", approver="reviewer")
    assert (forward.version, forward.signer) == (v["parent"], reviewer.keyid)
    assert registry.champion("arrests").version == v["parent"]
    assert registry.rollback("arrests", reason="again").version == v["child"]
    with pytest.raises(RegistryError, match="model arrests has no earlier production version to roll back to"):
        registry.rollback("arrests", reason="x")
    with pytest.raises(RegistryError, match="cannot roll back to arrests:v3: the candidate errored"):
        registry.rollback("arrests", to=v["errored"], reason="x")
    other = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "never", content=b"n"))
    with pytest.raises(RegistryError, match="cannot roll back to arrests:v4: it was never promoted"):
        registry.rollback("arrests", to=other, reason="x")
    with pytest.raises(RegistryError, match=r"unknown model 'iris' \(known: arrests\)"):
        registry.rollback("iris", reason="x")
    assert registry.verify().ok


def test_verify_names_forged_and_edited_decisions(backend, approved):
    registry, v, reviewer = approved
    decision = registry.approve_promotion(v["parent"], approver="reviewer", reason="accepted", waive=["fairness"])
    reviewer_key = private_key(backend.home / "keys" / "approvers" / "reviewer.ed25519")
    pipeline_key = private_key(backend.home / "keys" / "pipeline.ed25519")
    backend.sql("UPDATE waivers SET reason = 'nobody objected' WHERE entry_seq = ?", decision.waiver_seq)
    [(cited,)] = backend.sql("SELECT gate_entries FROM promotions WHERE entry_seq = ?", decision.seq)
    gates = json.loads(cited)
    failed = next(g for g in gates if g["gate"] == "fairness")
    # a promotion of v1 relying on its failed fairness result with no waiver, signed by reviewer
    unwaived = {"version": v["parent"], "model": "arrests", "alias": "production", "previous_version": v["parent"],
                "reason": "sneaky", "approver": {"name": "reviewer", "keyid": reviewer.keyid}, "waivers": [],
                "gate_results": [dict(g, waiver=None) for g in gates]}
    seq_unwaived, _ = forge(backend, registry, PROMOTION_V2, unwaived, reviewer_key)
    # a waiver signed by the pipeline key: the operator cannot approve in a person's name
    waiver = {"version": v["parent"], "model": "arrests", "reason": "x", "approver": {"name": "reviewer", "keyid": reviewer.keyid},
              "gates": [{"gate": "fairness", "seq": failed["seq"], "digest": failed["digest"]}]}
    seq_waiver, pipeline_id = forge(backend, registry, WAIVER, waiver, pipeline_key)
    problems = problems_of(registry)
    assert (f"waivers row entry_seq={decision.waiver_seq} (arrests:v1): field reason is 'nobody objected' in the table "
            f"but 'accepted' in signed entry {decision.waiver_seq}") in problems
    assert (f"entry {seq_unwaived} (promotion arrests:v1): relies on a failed result of fairness (entry {failed['seq']}) "
            "that no waiver covers") in problems
    assert (f"entry {seq_waiver} (waiver arrests:v1): waiver entries must be signed by an approver key, "
            f"but key {pipeline_id[:16]} is the pipeline key") in problems


def test_verify_names_a_waiver_of_a_passed_result_and_a_moved_alias(backend, approved):
    registry, v, reviewer = approved
    registry.approve_promotion(v["parent"], approver="reviewer", reason="accepted", waive=["fairness"])
    registry.rollback("arrests", reason="latency")
    backend.sql("UPDATE models SET production_version = ? WHERE name = 'arrests'", v["parent"])
    reviewer_key = private_key(backend.home / "keys" / "approvers" / "reviewer.ed25519")
    [(drift_seq, drift_digest)] = backend.sql(
        "SELECT entry_seq, entry_digest FROM gate_results WHERE version = ? AND gate = 'drift'", v["parent"])
    waiver = {"version": v["parent"], "model": "arrests", "reason": "x", "approver": {"name": "reviewer", "keyid": reviewer.keyid},
              "gates": [{"gate": "drift", "seq": drift_seq, "digest": drift_digest}]}
    seq, _ = forge(backend, registry, WAIVER, waiver, reviewer_key)
    problems = problems_of(registry)
    assert f"entry {seq} (waiver arrests:v1): relies on entry {drift_seq} as a failure of drift for arrests:v1, which it is not" in problems
    assert any(p.startswith("models row arrests: field production_version is 'arrests:v1' in the table but the ledger implies 'arrests:v2'")
               for p in problems)


def test_cli_promote_and_rollback_exit_codes(backend, approved, monkeypatch, capsys):
    from gatewise.cli import main

    registry, v, _ = approved
    if backend.url is not None:
        monkeypatch.setenv("GATEWISE_REGISTRY_URL", backend.url)
    monkeypatch.setenv("GATEWISE_HOME", str(backend.home))
    assert main(["promote", v["parent"], "--approver", "reviewer", "--reason", "x"]) == 3
    assert main(["promote", v["parent"], "--approver", "reviewer", "--reason", "x", "--waive", "drift"]) == 2
    assert main(["promote", "arrests:v9", "--approver", "reviewer", "--reason", "x"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("gatewise: error: cannot promote arrests:v1: failed fairness (entry ")
    assert err[2].startswith("gatewise: error: unknown version 'arrests:v9' (known: ")
    assert main(["promote", v["parent"], "--approver", "reviewer", "--reason", "accepted", "--waive", "fairness", "--json"]) == 0
    promoted = json.loads(capsys.readouterr().out)
    assert promoted["version"] == v["parent"] and promoted["waived"] == ["fairness"] and promoted["waiver"]["seq"]
    assert main(["rollback", "arrests", "--reason", "latency"]) == 0
    assert capsys.readouterr().out.startswith(f"rolled arrests back from {v['parent']} to {v['child']} (entry ")
    assert main(["rollback", "arrests", "--reason", "again"]) == 2
