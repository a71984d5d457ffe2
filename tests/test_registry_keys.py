"""Key lifecycle: approver keys introduced by the pipeline key, rotation, revocation, and what
verification says about an entry signed by a key that was not valid when it was written."""

from __future__ import annotations

import base64
import logging
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gatewise.errors import RegistryError
from gatewise.registry import Registry
from gatewise.registry.statements import GATE_RESULT, KEY_V2, WAIVER, sha256_hex
from test_registry_support import Backend, backend, forge_entry, populated  # noqa: F401  (backend is a fixture)

KEY_V2_TYPE = "https://gatewise.dev/predicates/key/v2"
ROTATION_TYPE = "https://gatewise.dev/predicates/key-rotation/v1"
REVOCATION_TYPE = "https://gatewise.dev/predicates/key-revocation/v1"


def private_key(path) -> Ed25519PrivateKey:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def forge(backend, registry, predicate_type, predicate, key, ref="arrests:v1", subject="0" * 64):
    """Append an entry behind the registry's back, correctly chained and signed by ``key``."""
    seq, prev = registry.head()
    _, keyid, _ = forge_entry(backend, seq + 1, prev, predicate_type, predicate, key, subject=subject, ref=ref)
    return seq + 1, keyid


def passing_verdict(version="arrests:v1"):
    return {"version": version, "model": "arrests", "run_id": "run-1", "gate": "fairness", "passed": True,
            "value": 0.1, "threshold": 0.25, "summary": "fine", "details": {}, "evidence": {}}


def problems_of(registry) -> list[str]:
    report = registry.verify()
    assert not report.ok
    return [str(p) for p in report.problems]


def test_approver_key_is_private_and_introduced_by_the_pipeline_key(backend, tmp_path):
    registry, _ = populated(backend, tmp_path)
    state, seq, created = registry.introduce_approver("reviewer")
    path = backend.home / "keys" / "approvers" / "reviewer.ed25519"
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    pipeline = registry.pipeline_key.keyid
    [(ptype, keyid)] = backend.sql("SELECT predicate_type, keyid FROM ledger WHERE seq = ?", seq)
    assert (ptype, keyid) == (KEY_V2_TYPE, pipeline)  # the operator vouches for the approver
    assert state.keyid != pipeline
    keys = {k.keyid: k for k in registry.keys()}
    assert (keys[state.keyid].name, keys[state.keyid].role, keys[state.keyid].status) == ("reviewer", "approver", "active")
    assert (keys[pipeline].role, keys[pipeline].status, keys[pipeline].introduced_seq) == ("pipeline", "active", 1)
    report = registry.verify()
    assert report.ok, report.problems
    assert report.keys == sorted([pipeline, state.keyid])
    with pytest.raises(RegistryError, match="approver reviewer already has an active key .*gatewise keys rotate --approver reviewer"):
        registry.introduce_approver("reviewer")


def test_key_file_option_is_created_private_and_open_directories_are_refused(tmp_path):
    backend = Backend(tmp_path / "home", None)
    registry = backend.open()
    given = tmp_path / "vault" / "sub" / "risk_officer.pem"
    state, _, created = registry.introduce_approver("risk_officer", given)
    assert created and stat.S_IMODE(given.stat().st_mode) == 0o600
    assert stat.S_IMODE(given.parent.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(RegistryError, match=r"directory .*shared is open to others \(mode 755\)"):
        registry.introduce_approver("ops_lead", shared / "ops_lead.pem")
    assert not (shared / "ops_lead.pem").exists()
    head = registry.head()
    with pytest.raises(Exception, match="bad approver name"):
        registry.introduce_approver("../evil")
    assert registry.head() == head and registry.verify().ok
    backend.close()


def test_rotation_new_key_signs_on_and_the_old_key_is_reported_after_it(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    key_file = backend.home / "keys" / "pipeline.ed25519"
    old = private_key(key_file)
    old_id = registry.pipeline_key.keyid
    before, after, seq = registry.rotate_key(reason="yearly")
    assert before.keyid == old_id and before.status == "rotated"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and not (key_file.parent / "pipeline.ed25519.next").exists()
    new_id = registry.pipeline_key.keyid
    assert new_id == after.keyid != old_id
    [(ptype, signer)] = backend.sql("SELECT predicate_type, keyid FROM ledger WHERE seq = ?", seq)
    assert (ptype, signer) == (ROTATION_TYPE, old_id)  # the old key hands over to its successor
    registry.record_run("run-2", "arrests", {}, "b" * 64, {}, [])  # entries after the rotation: the new key
    assert backend.sql("SELECT keyid FROM ledger WHERE seq = ?", seq + 1) == [(new_id,)]
    registry.close()
    reopened = backend.open()  # another process reads the new key file
    assert reopened.verify().ok
    status = {k.keyid: (k.status, k.changed_seq, k.successor) for k in reopened.keys()}
    assert status[old_id] == ("rotated", seq, new_id) and status[new_id] == ("active", None, None)

    forged, _ = forge(backend, reopened, GATE_RESULT, passing_verdict(v["parent"]), old)
    problems = problems_of(reopened)
    assert (f"entry {forged} (gate-result arrests:v1 fairness): signed by key {old_id[:16]} (pipeline key) "
            f"after it was rotated at entry {seq} (successor {new_id[:16]})") in problems
    assert f"entry {forged} (gate-result arrests:v1 fairness): its gate_results row is missing" in problems


def test_old_key_file_is_refused_after_rotation(backend, tmp_path):
    registry = backend.open()
    key_file = backend.home / "keys" / "pipeline.ed25519"
    old_pem = key_file.read_bytes()
    _, _, seq = registry.rotate_key()
    registry.close()
    # an interrupted rotation: the old key still in place, its successor next to it
    key_file.rename(key_file.with_name("pipeline.ed25519.next"))
    key_file.write_bytes(old_pem)
    key_file.chmod(0o600)
    with pytest.raises(RegistryError, match=rf"was rotated at entry {seq} .*interrupted rotation left the new key in .*: `mv "):
        backend.open()
    key_file.with_name("pipeline.ed25519.next").replace(key_file)
    assert backend.open().verify().ok


def test_revocation_keeps_earlier_signatures_and_reports_later_ones(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    state, _, _ = registry.introduce_approver("risk_officer")
    risk_officer = private_key(backend.home / "keys" / "approvers" / "risk_officer.ed25519")
    decision = registry.approve_promotion(v["parent"], approver="risk_officer", reason="accepted", waive=["fairness"])
    revoked, seq = registry.revoke_key(state.keyid[:12], reason="left the company")
    assert revoked.status == "revoked" and seq > decision.seq
    assert backend.sql("SELECT predicate_type, keyid FROM ledger WHERE seq = ?", seq) == [
        (REVOCATION_TYPE, registry.pipeline_key.keyid)]
    assert registry.verify().ok  # signed while risk_officer's key was valid: still valid
    with pytest.raises(RegistryError, match=f"was revoked at entry {seq}: it signs nothing more"):
        registry.rollback("arrests", reason="x", approver="risk_officer")
    with pytest.raises(RegistryError, match="already revoked"):
        registry.revoke_key(state.keyid, reason="again")

    waiver = {"version": v["parent"], "model": "arrests", "gates": [], "reason": "late",
              "approver": {"name": "risk_officer", "keyid": state.keyid}}
    forged, _ = forge(backend, registry, WAIVER, waiver, risk_officer)
    problems = problems_of(registry)
    assert f"entry {forged} (waiver arrests:v1): signed by key {state.keyid[:16]} (approver risk_officer's key) after it was revoked at entry {seq}" in problems


def test_keys_are_introduced_only_by_an_active_pipeline_key(backend, tmp_path):
    registry, _ = populated(backend, tmp_path)
    state, _, _ = registry.introduce_approver("reviewer")
    reviewer = private_key(backend.home / "keys" / "approvers" / "reviewer.ed25519")
    stranger = Ed25519PrivateKey.generate()
    public = stranger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keyid = sha256_hex(public)
    introduction = {"keyid": keyid, "algorithm": "ed25519", "public_key": base64.b64encode(public).decode(),
                    "role": "approver", "name": "intruder", "introduced_by": state.keyid}
    seq, _ = forge(backend, registry, KEY_V2, introduction, reviewer, ref=keyid, subject=keyid)
    gate_seq, _ = forge(backend, registry, GATE_RESULT, passing_verdict(), reviewer)
    problems = problems_of(registry)
    assert any(p.startswith(f"entry {seq} (key {keyid}): introduces key {keyid[:16]} with key {state.keyid[:16]} (approver reviewer's key): "
                            "only an active pipeline key may introduce") for p in problems)
    # an approver's key does not sign what the pipeline records
    assert any(p.startswith(f"entry {gate_seq} (gate-result arrests:v1 fairness): gate-result entries must be signed by a pipeline key")
               for p in problems)


def test_pipeline_key_in_use_cannot_be_revoked_and_keys_are_found_by_prefix(backend, tmp_path):
    registry = backend.open()
    pipeline = registry.pipeline_key.keyid
    with pytest.raises(RegistryError, match="is the pipeline key in use: rotate it"):
        registry.revoke_key(pipeline[:10], reason="oops")
    with pytest.raises(RegistryError, match=r"unknown key 0000000000 \(known: "):
        registry.revoke_key("0000000000", reason="x")
    registry.rotate_key()
    old, _ = registry.revoke_key(pipeline, reason="the old key was on a stolen laptop")
    assert old.status == "revoked"
    assert registry.verify().ok


def test_a_changed_key_events_row_is_named(backend, tmp_path):
    registry = backend.open()
    state, seq, _ = registry.introduce_approver("reviewer")
    backend.sql("UPDATE key_events SET name = 'intruder' WHERE entry_seq = ?", seq)
    [problem] = problems_of(registry)
    assert problem == (f"key_events row entry_seq={seq} ({state.keyid}): field name is 'intruder' in the table "
                       f"but 'reviewer' in signed entry {seq}")


def test_cli_keys_commands_never_print_private_keys(tmp_path, monkeypatch, capsys, caplog):
    from gatewise.cli import main
    from test_registry_support import EVIDENCE, candidate, verdicts

    home = tmp_path / "home"
    monkeypatch.setenv("GATEWISE_HOME", str(home))
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    caplog.set_level(logging.DEBUG)
    secrets: list[bytes] = []

    def remember(path):
        pem = path.read_bytes()
        raw = private_key(path).private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())
        body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
        secrets.extend([pem, body, raw, raw.hex().encode(), base64.b64encode(raw)])

    assert main(["keys", "init"]) == 0
    with Registry.open(home) as registry:
        registry.record_run("run-1", "arrests", {}, "a" * 64, {}, [])
        version = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "parent"))
        registry.record_gate_results(version, verdicts(failing="drift"), EVIDENCE)
    assert main(["keys", "init", "--approver", "reviewer"]) == 0
    remember(home / "keys" / "pipeline.ed25519")
    remember(home / "keys" / "approvers" / "reviewer.ed25519")
    assert main(["promote", version, "--waive", "drift", "--approver", "reviewer", "--reason", "ok'd", "--json"]) == 0
    assert main(["keys", "rotate", "--reason", "yearly"]) == 0
    assert main(["keys", "rotate", "--approver", "reviewer", "--json"]) == 0
    remember(home / "keys" / "pipeline.ed25519")
    remember(home / "keys" / "approvers" / "reviewer.ed25519")
    assert main(["keys", "init", "--approver", "risk_officer"]) == 0
    remember(home / "keys" / "approvers" / "risk_officer.ed25519")
    assert main(["keys", "revoke", "--approver", "risk_officer", "--reason", "left"]) == 0
    assert main(["keys", "show"]) == 0
    assert main(["keys", "show", "--json"]) == 0
    assert main(["registry", "history", "arrests", "--json"]) == 0
    assert main(["registry", "verify"]) == 0
    captured = capsys.readouterr()
    shown = (captured.out + captured.err + caplog.text).encode()
    assert "approver" in captured.out and "revoked" in captured.out
    for secret in secrets:
        assert secret not in shown
    listing = [line.split() for line in captured.out.splitlines() if line.startswith(("KEYID",))]
    assert listing and listing[0] == ["KEYID", "NAME", "ROLE", "STATUS", "INTRODUCED", "CHANGED", "SUCCESSOR"]


def test_cli_key_errors_are_one_line(tmp_path, monkeypatch, capsys):
    from gatewise.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("GATEWISE_HOME", str(home))
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    assert main(["keys", "show"]) == 2
    assert main(["keys", "init", "--approver", "reviewer"]) == 2
    assert not home.exists()  # nothing but `keys init` creates a registry
    assert main(["keys", "init"]) == 0
    assert main(["keys", "revoke", "--reason", "x"]) == 2
    assert main(["keys", "rotate", "--approver", "nobody"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"gatewise: error: no registry at {home.resolve() / 'registry.db'}: run `gatewise run` first"
    assert err[2] == "gatewise: error: name the key to revoke: a KEYID (or a unique prefix of 8+ characters) or --approver NAME"
    assert err[3] == "gatewise: error: approver nobody has no active key to rotate: introduce one with `gatewise keys init --approver nobody`"
    assert len(err) == 4
