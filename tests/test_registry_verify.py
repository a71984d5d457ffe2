"""Verification names every kind of tampering: edited rows and payloads, deleted, swapped and
forged entries, replaced artifacts. Each case edits the database behind the registry's back."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gatewise.registry.statements import GATE_RESULT, KEY, sha256_hex
from test_registry_support import backend, forge_entry, populated  # noqa: F401  (backend is a fixture)


def _problems(registry) -> list[str]:
    report = registry.verify()
    assert not report.ok
    return [str(p) for p in report.problems]


def _seq_of(backend, version, gate):
    [(seq,)] = backend.sql("SELECT entry_seq FROM gate_results WHERE version = ? AND gate = ?", version, gate)
    return seq


def test_clean_registry_verifies(backend, tmp_path):
    registry, _ = populated(backend, tmp_path)
    report = registry.verify()
    assert report.ok and report.problems == []
    assert report.head[0] == report.entries_checked == 16


def test_flipped_verdict_in_gate_results_is_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq = _seq_of(backend, v["parent"], "fairness")
    backend.sql("UPDATE gate_results SET passed = NOT passed WHERE entry_seq = ?", seq)
    [problem] = _problems(registry)
    assert problem.startswith(f"gate_results row entry_seq={seq} (arrests:v1 fairness): field passed is True")
    assert f"False in signed entry {seq}" in problem


def test_edited_metric_and_details_are_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq = _seq_of(backend, v["child"], "robustness")
    backend.sql("UPDATE gate_results SET value = 0.99, details = ? WHERE entry_seq = ?", '{"n":1}', seq)
    problems = _problems(registry)
    assert any(f"entry_seq={seq} (arrests:v2 robustness): field value is 0.99" in p for p in problems)
    assert any(f"entry_seq={seq} (arrests:v2 robustness): field details" in p for p in problems)


def test_edited_version_and_alias_rows_are_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    backend.sql("UPDATE versions SET sha256 = ? WHERE name = ?", "f" * 64, v["parent"])
    backend.sql("UPDATE models SET production_version = ?", v["parent"])
    problems = _problems(registry)
    assert any("versions row entry_seq=3 (arrests:v1): field sha256" in p for p in problems)
    assert any(p.startswith("models row arrests: field production_version is 'arrests:v1'") for p in problems)


def _edit_payload(backend, seq, edit, fix_digest=False):
    [(envelope,)] = backend.sql("SELECT envelope FROM ledger WHERE seq = ?", seq)
    env = json.loads(envelope)
    stmt = json.loads(base64.b64decode(env["payload"]))
    edit(stmt["predicate"])
    body = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    env["payload"] = base64.b64encode(body).decode()
    backend.sql("UPDATE ledger SET envelope = ? WHERE seq = ?", json.dumps(env), seq)
    if fix_digest:
        backend.sql("UPDATE ledger SET digest = ? WHERE seq = ?", sha256_hex(body), seq)


def test_edited_ledger_payload_is_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq = _seq_of(backend, v["parent"], "fairness")
    _edit_payload(backend, seq, lambda p: p.update(passed=True))
    problems = _problems(registry)
    assert any(p.startswith(f"entry {seq} (gate-result arrests:v1 fairness): payload digest") for p in problems)
    assert any(p.startswith(f"entry {seq} (gate-result arrests:v1 fairness): signature by key") for p in problems)
    assert any(p.startswith(f"entry {seq + 1} ") and "chain is broken" in p for p in problems)


def test_edited_payload_with_recomputed_digest_still_fails_its_signature(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq = _seq_of(backend, v["child"], "drift")
    _edit_payload(backend, seq, lambda p: p.update(value=0.5), fix_digest=True)
    problems = _problems(registry)
    assert any(p.startswith(f"entry {seq} (gate-result arrests:v2 drift): signature by key") for p in problems)


def test_deleted_entry_is_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq = _seq_of(backend, v["child"], "leakage")
    backend.sql("DELETE FROM ledger WHERE seq = ?", seq)
    problems = _problems(registry)
    assert any(p.startswith(f"entry {seq}: missing") for p in problems)
    assert any(p.startswith(f"gate_results row entry_seq={seq} (arrests:v2 leakage)") and "does not exist" in p
               for p in problems)


def test_deleted_entry_and_its_rows_are_still_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq = _seq_of(backend, v["child"], "leakage")
    backend.sql("DELETE FROM ledger WHERE seq = ?", seq)
    backend.sql("DELETE FROM gate_results WHERE entry_seq = ?", seq)
    problems = _problems(registry)
    assert any(p.startswith(f"entry {seq}: missing") for p in problems)
    # the promotion relied on the deleted verdict
    assert any("(promotion arrests:v2): relies on entry" in p for p in problems)


def test_swapped_entries_are_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    a = _seq_of(backend, v["parent"], "fairness")
    b = a + 1
    rows = {seq: backend.sql("SELECT envelope, digest FROM ledger WHERE seq = ?", seq)[0] for seq in (a, b)}
    backend.sql("UPDATE ledger SET digest = 'moving' WHERE seq = ?", a)  # digests are unique
    for seq, other in ((b, a), (a, b)):
        backend.sql("UPDATE ledger SET envelope = ?, digest = ? WHERE seq = ?", *rows[other], seq)
    problems = _problems(registry)
    assert any(p.startswith(f"entry {a} ") and f"signed seq is {b}" in p for p in problems)
    assert any(p.startswith(f"entry {b} ") and f"signed seq is {a}" in p for p in problems)


def test_forged_entry_signed_by_an_outside_key_is_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq, digest = registry.head()
    attacker = Ed25519PrivateKey.generate()
    verdict = {"version": v["parent"], "model": "arrests", "run_id": "run-1", "gate": "fairness", "passed": True,
               "value": 0.1, "threshold": 0.25, "summary": "fine", "details": {}, "evidence": {}}
    forge_entry(backend, seq + 1, digest, GATE_RESULT, verdict, attacker)
    problems = _problems(registry)
    assert any(p.startswith(f"entry {seq + 1} (gate-result arrests:v1 fairness): signature by key")
               and "cannot be verified with any key in the ledger" in p for p in problems)


def test_forged_key_entry_cannot_introduce_itself(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    seq, digest = registry.head()
    attacker = Ed25519PrivateKey.generate()
    public = attacker.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keyid = sha256_hex(public)
    key_digest, _, _ = forge_entry(backend, seq + 1, digest, KEY,
                              {"keyid": keyid, "algorithm": "ed25519", "public_key": base64.b64encode(public).decode(),
                               "role": "pipeline", "introduced_by": keyid}, attacker, subject=keyid, ref=keyid)
    verdict = {"version": v["parent"], "model": "arrests", "run_id": "run-1", "gate": "fairness", "passed": True,
               "value": 0.1, "threshold": 0.25, "summary": "fine", "details": {}, "evidence": {}}
    forge_entry(backend, seq + 2, key_digest, GATE_RESULT, verdict, attacker)
    problems = _problems(registry)
    assert any(p.startswith(f"entry {seq + 1} (key {keyid}): introduces key") for p in problems)
    assert any(p.startswith(f"entry {seq + 2} (gate-result arrests:v1 fairness): signed by key") for p in problems)


def test_replaced_artifact_file_is_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    path = registry.artifact_path(v["child"])
    path.chmod(0o644)
    path.write_bytes(b"a different model")
    [problem] = _problems(registry)
    assert problem.startswith(f"artifact {path.name} (arrests:v2, entry 4): file bytes have sha256")
    assert registry.verify(check_artifacts=False).ok


def test_missing_artifact_file_is_named(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    registry.artifact_path(v["parent"]).unlink()
    [problem] = _problems(registry)
    assert "(arrests:v1, entry 3): file is missing" in problem


def test_pinned_key(backend, tmp_path):
    registry, _ = populated(backend, tmp_path)
    keyid = registry.verify().keys[0]
    assert registry.verify(trusted_keys=[keyid]).ok
    [problem] = _problems_with(registry, trusted_keys=["ab" * 32])
    assert problem.startswith("entry 1 (key ") and "not one of the trusted keys" in problem


def _problems_with(registry, **kwargs):
    report = registry.verify(**kwargs)
    assert not report.ok
    return [str(p) for p in report.problems]


def test_chunk_boundaries_hide_nothing(backend, tmp_path, monkeypatch):
    from gatewise.registry import verify

    registry, v = populated(backend, tmp_path)
    seq = _seq_of(backend, v["parent"], "fairness")
    backend.sql("UPDATE gate_results SET passed = NOT passed WHERE entry_seq = ?", seq)
    _edit_payload(backend, seq + 2, lambda p: p.update(value=0.01))
    whole = registry.verify()
    monkeypatch.setattr(verify, "CHUNK", 3)
    chunked = registry.verify()
    assert not chunked.ok and chunked.problems == whole.problems
    assert chunked.entries_checked == whole.entries_checked == 16


def test_problems_unpack_as_where_and_what(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    backend.sql("UPDATE versions SET plugin_name = 'other' WHERE name = ?", v["child"])
    [(where, what)] = registry.verify().problems
    assert where == "versions row entry_seq=4 (arrests:v2)"
    assert what == "field plugin_name is 'other' in the table but 'int8_dynamic' in signed entry 4"
