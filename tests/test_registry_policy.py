"""Signed gating policy entries in the registry: who may sign them, what a promotion cites, and what
`registry verify` names (real SQLite registry, real signatures; no pipeline run)."""

from __future__ import annotations

import pytest
from test_registry_keys import forge, private_key, problems_of
from test_registry_support import EVIDENCE, Backend, candidate, verdicts

from gatewise.policy import GatePolicy
from gatewise.registry.decisions import PromotionBlocked
from gatewise.registry.policy_entries import read_policies, set_policy
from gatewise.registry.statements import POLICY


def gates(**fairness: float) -> dict:
    document = GatePolicy().model_dump(mode="json")
    document["fairness"].update(fairness)
    return document


@pytest.fixture
def governed(tmp_path):
    registry = Backend(tmp_path / "home", None).open()
    registry.introduce_approver("ada")
    yield registry
    registry.close()


def run(registry, run_id: str, tmp_path, configured: dict) -> str:
    registry.record_run(run_id, "arrests", {"gates": configured}, "a" * 64, {"dataset": "e" * 64}, [])
    version = registry.register_candidate(run_id, "arrests", candidate(tmp_path / run_id, run_id, content=run_id.encode() * 40))
    registry.record_gate_results(version, verdicts(), EVIDENCE)
    return version


def test_a_promotion_cites_the_active_policy_and_verify_agrees(governed, tmp_path):
    entry = set_policy(governed, gates(max_demographic_parity_difference=0.45), approver="ada", reason="data disparity")
    version = run(governed, "run-1", tmp_path, gates(max_demographic_parity_difference=0.30))  # stricter: fine
    governed.promote(version)
    [promotion] = [e for e in governed.history("arrests")["events"] if e["event"] == "promotion"]
    assert promotion["policy"]["seq"] == entry.seq and promotion["policy"]["approver"] == "ada"
    assert governed.verify().ok


def test_a_looser_run_is_refused_with_the_threshold_and_the_margin(governed, tmp_path):
    set_policy(governed, gates(max_demographic_parity_difference=0.30), approver="ada", reason="r")
    version = run(governed, "run-1", tmp_path, gates(max_demographic_parity_difference=0.45))
    with pytest.raises(PromotionBlocked, match=r"max_demographic_parity_difference = 0.45 vs 0.3 signed \(looser by 0.15\)"):
        governed.promote(version)
    assert governed.champion("arrests") is None


def test_no_policy_means_the_defaults_and_none_is_cited(governed, tmp_path):
    version = run(governed, "run-1", tmp_path, gates(max_demographic_parity_difference=0.45))
    governed.promote(version)  # nothing signed: the run's own thresholds, recorded in its entry
    assert governed.history("arrests")["events"][-1]["policy"] is None
    assert read_policies(governed) == []


def test_verify_names_a_policy_signed_by_the_pipeline_key(governed, tmp_path):
    entry = set_policy(governed, gates(max_demographic_parity_difference=0.45), approver="ada", reason="r")
    pipeline_key = private_key(governed.home / "keys" / "pipeline.ed25519")
    pipeline = governed.pipeline_key.keyid
    forged = {"gates": gates(), "policy_digest": "0" * 64, "approver": {"name": "ada", "keyid": pipeline}, "reason": "x", "previous": None}
    seq_policy, _ = forge(Backend(governed.home, None), governed, POLICY, forged, pipeline_key, ref="gate-policy")
    problems = problems_of(governed)
    assert any(f"entry {seq_policy} (policy gate-policy): policy entries must be signed by an approver key" in p for p in problems)
    assert entry.seq < seq_policy


def test_policy_entries_need_an_introduced_approver(governed):
    from gatewise.errors import RegistryError

    with pytest.raises(RegistryError, match="no key for approver risk_officer"):
        set_policy(governed, gates(), approver="risk_officer", reason="r")


def test_a_trusted_key_is_accepted_by_a_prefix_of_16_hex(governed, capsys, monkeypatch):
    from gatewise.cli import main

    monkeypatch.setenv("GATEWISE_HOME", str(governed.home))
    keyid = governed.pipeline_key.keyid
    assert governed.verify(trusted_keys=[keyid[:16]]).ok
    assert governed.verify(trusted_keys=[keyid[:20].upper()]).ok
    assert main(["registry", "verify", "--trusted-key", keyid[:16]]) == 0
    other = ("0" if keyid[0] != "0" else "1") + keyid[1:16]
    assert main(["registry", "verify", "--trusted-key", other]) == 4
    assert f"its id is {keyid}" in capsys.readouterr().out
    assert main(["registry", "verify", "--trusted-key", keyid[:8]]) == 2
    assert "at least 16 hex" in capsys.readouterr().err
