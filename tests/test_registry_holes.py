"""The holes a security review found (issue 6), each reproduced through the real CLI on a real SQLite
registry: rows that verification never saw steering decisions, a cut-off ledger, backdated
entries, a promotion citing a stale pass. Each must be named by `registry verify` (exit 4) and
mislead no read command."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gatewise.cli import main
from gatewise.registry import Registry
from gatewise.registry import statements as st
from gatewise.types import GateResult
from test_registry_support import EVIDENCE, Backend, backend, populated, verdicts  # noqa: F401  (backend is a fixture)

VERIFY_FAILED = 4


@pytest.fixture
def filled(home, tmp_path):
    backend = Backend(home, None)
    registry, versions = populated(backend, tmp_path)  # v1 failed fairness; v2 promoted; v3 errored
    assert registry.verify().ok
    yield backend, registry, versions
    backend.close()


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _verify_fails(capsys, *needles):
    code, out, _ = _run(capsys, "registry", "verify")
    assert code == VERIFY_FAILED, out
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    return out


def _rebuild_without_constraints(backend, table):
    """What an attacker with the file can do: the same table, without its keys or NOT NULLs."""
    backend.sql(f"CREATE TABLE {table}_loose AS SELECT * FROM {table}")
    backend.sql(f"DROP TABLE {table}")
    backend.sql(f"CREATE TABLE {table} AS SELECT * FROM {table}_loose WHERE 0")


def _restore_rows(backend, table):
    backend.sql(f"INSERT INTO {table} SELECT * FROM {table}_loose")
    backend.sql(f"DROP TABLE {table}_loose")


def _ls(capsys):
    code, out, err = _run(capsys, "registry", "ls", "--json")
    assert code == 0, err
    return {v["version"]: v for v in json.loads(out)}, err


def test_duplicate_models_row_placed_first_moves_nothing(filled, capsys):
    backend, registry, v = filled
    _rebuild_without_constraints(backend, "models")
    backend.sql("INSERT INTO models VALUES ('arrests', 2, ?, 99)", v["parent"])  # the failed version, first
    _restore_rows(backend, "models")
    assert backend.sql("SELECT production_version FROM models WHERE name = 'arrests'")[0][0] == v["parent"]

    _verify_fails(capsys, "models table: 2 rows share the key name='arrests'", "models table: holds 2 rows but 1 rows match")
    assert registry.champion("arrests").version == v["child"]
    listing, err = _ls(capsys)
    assert listing[v["parent"]]["production"] is False and listing[v["child"]]["production"] is True
    assert "FAILED" in err  # the read warns: the last verification failed
    code, out, _ = _run(capsys, "registry", "show", v["parent"], "--json")
    assert code == 0 and json.loads(out)["production"] is False
    code, out, _ = _run(capsys, "registry", "history", "arrests", "--json")
    assert code == 0 and json.loads(out)["production"] == v["child"]


def test_second_versions_row_with_planted_bytes_is_never_served(filled, capsys):
    backend, registry, v = filled
    signed_sha = registry.version(v["child"]).sha256
    planted = b"planted bytes that passed no gate"
    planted_sha = st.sha256_hex(planted)
    (backend.home / "artifacts" / f"{planted_sha}.onnx").write_bytes(planted)
    _rebuild_without_constraints(backend, "versions")
    backend.sql("INSERT INTO versions SELECT * FROM versions_loose WHERE name = ?", v["child"])
    backend.sql("UPDATE versions SET sha256 = ?", planted_sha)
    _restore_rows(backend, "versions")

    _verify_fails(capsys, f"versions row entry_seq=4 ({v['child']}): field sha256 is '{planted_sha}'",
                  f"({v['child']}): duplicates the row of entry 4")
    assert registry.champion("arrests").sha256 == signed_sha
    assert registry.version(v["child"]).sha256 == signed_sha
    assert registry.artifact_path(v["child"]).name == f"{signed_sha}.onnx"
    listing, _ = _ls(capsys)
    assert listing[v["child"]]["sha256"] == signed_sha
    code, out, _ = _run(capsys, "registry", "show", v["child"], "--json")
    assert code == 0 and json.loads(out)["sha256"] == signed_sha


def test_null_keyed_fake_version_with_passing_gates_is_invisible(filled, capsys):
    backend, registry, v = filled
    for table in ("versions", "gate_results"):
        _rebuild_without_constraints(backend, table)
        _restore_rows(backend, table)
    backend.sql("INSERT INTO versions SELECT 'arrests:v9', model, 9, run_id, 'fake', status, sha256, size_bytes, error, plugin_name, "
                "plugin_version, plugin_distribution, plugin_code_sha256, NULL, NULL, entry_digest, created_at FROM versions WHERE name = ?",
                v["child"])
    backend.sql("INSERT INTO gate_results SELECT NULL, entry_digest, kind, 'arrests:v9', model, run_id, gate, 1, value, threshold, summary, "
                "details, evidence, policy_digest, champion_version, created_at FROM gate_results WHERE version = ?", v["child"])

    out = _verify_fails(capsys, "versions row entry_seq=None (arrests:v9): NULL in entry_seq",
                        "gate_results row entry_seq=None (arrests:v9 fairness): NULL in entry_seq",
                        "versions table: holds 4 rows but 3 rows match", "gate_results table: holds 15 rows but 10 rows match")
    assert out.count("arrests:v9") >= 6
    listing, _ = _ls(capsys)
    assert "arrests:v9" not in listing
    code, _, err = _run(capsys, "registry", "show", "arrests:v9")
    assert code == 2 and err.startswith("gatewise: error: unknown version 'arrests:v9'")
    code, out, err = _run(capsys, "registry", "gates", "--model", "arrests", "--limit", "0", "--json")
    assert (code == 2 and "does not match its signed entry (no signed gate result)" in err) or "arrests:v9" not in out
    with pytest.raises(Exception, match="unknown version 'arrests:v9'"):
        registry.promote("arrests:v9")


def test_fake_approver_rows_sign_nothing(filled, capsys, tmp_path):
    backend, registry, v = filled
    attacker = Ed25519PrivateKey.generate()
    public = attacker.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keyid = st.sha256_hex(public)
    key_dir = tmp_path / "intruder"
    key_dir.mkdir(mode=0o700)
    key_file = key_dir / "key.pem"
    key_file.write_bytes(attacker.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    os.chmod(key_file, 0o600)
    pipeline = backend.sql("SELECT keyid FROM keys")[0][0]
    for table in ("keys", "key_events"):
        _rebuild_without_constraints(backend, table)
        _restore_rows(backend, table)
    import base64

    backend.sql("INSERT INTO keys VALUES (?, 'ed25519', ?, 'approver', ?, NULL, '2026-01-01T00:00:00.000000Z')",
                keyid, base64.b64encode(public).decode(), pipeline)
    backend.sql("INSERT INTO key_events VALUES (NULL, ?, 'introduction', ?, 'intruder', 'approver', NULL, NULL, ?, "
                "'2026-01-01T00:00:00.000000Z')", "0" * 64, keyid, pipeline)

    _verify_fails(capsys, "keys row entry_seq=None", "NULL in entry_seq", "key_events row entry_seq=None")
    code, out, _ = _run(capsys, "keys", "show", "--json")
    assert code == 0 and "intruder" not in out and keyid not in out
    code, _, err = _run(capsys, "promote", v["parent"], "--approver", "intruder", "--key-file", str(key_file),
                        "--waive", "fairness", "--reason", "trust me")
    assert code == 2 and "is not a key of this registry" in err
    assert registry.champion("arrests").version == v["child"]


def test_null_seq_ledger_row_fails_verify_and_export_refuses(filled, capsys, tmp_path):
    backend, registry, v = filled
    _rebuild_without_constraints(backend, "ledger")
    _restore_rows(backend, "ledger")
    backend.sql("INSERT INTO ledger SELECT NULL, prev_digest, digest, predicate_type, subject_sha256, ref, keyid, created_at, "
                "envelope FROM ledger WHERE seq = 16")
    _verify_fails(capsys, "ledger row seq=None", "NULL in seq", "ledger table: holds 17 rows but 16 entries checked")
    code, _, err = _run(capsys, "registry", "export", "--bundle", str(tmp_path / "bundle"))
    assert code == VERIFY_FAILED and err.startswith("gatewise: error: not exported: the registry does not verify")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bundle").exists()
    assert registry.champion("arrests").version == v["child"]


def test_missing_or_older_head_receipt_fails_and_kept_receipts_are_reported(filled, capsys, tmp_path):
    backend, registry, v = filled
    receipt = backend.home / "head.json"
    older = tmp_path / "head-older.json"
    shutil.copy(receipt, older)  # the receipt at entry 16
    registry.record_gate_results(v["child"], [GateResult("drift", True, 0.05, 0.2, "ok", {})], EVIDENCE)
    code, out, _ = _run(capsys, "registry", "verify")
    assert code == 0 and f"receipts checked: head receipt {receipt} (entry 17 of " in out

    code, out, _ = _run(capsys, "registry", "verify", "--receipt", str(older))
    assert code == 0 and f"head receipt {older} (entry 16 of " in out and "1 entries behind" in out

    receipt.unlink()
    _verify_fails(capsys, f"head receipt {receipt}: is missing")
    shutil.copy(older, receipt)  # an older copy put back
    _verify_fails(capsys, "names entry 16 but the ledger's head is entry 17")

    code, _, err = _run(capsys, "registry", "verify", "--receipt", str(tmp_path / "nowhere.json"))
    assert code == 2 and err.strip() == f"gatewise: error: receipt file {tmp_path / 'nowhere.json'} does not exist"


def test_cut_off_ledger_with_its_receipt_rolled_back_needs_a_kept_receipt(filled, capsys, tmp_path):
    backend, registry, v = filled
    kept = tmp_path / "kept.json"
    shutil.copy(backend.home / "head.json", kept)  # what an auditor pulled at entry 16
    at_14 = backend.home / "head-14.json"
    # The attacker deletes entries 15 and 16 (the last gate result and the promotion) and their
    # rows, and writes back a receipt... which needs the pipeline key: here, the holder of it.
    from gatewise.registry.keys import key_path, read_key
    from gatewise.registry.receipt import make_receipt

    [(digest,)] = backend.sql("SELECT digest FROM ledger WHERE seq = 14")
    at_14.write_text(make_receipt(read_key(key_path(backend.home)), 14, digest, "2030-01-01T00:00:00.000000Z"))
    for table in ("gate_results", "promotions"):
        backend.sql(f"DELETE FROM {table} WHERE entry_seq > 14")
    backend.sql("DELETE FROM ledger WHERE seq > 14")
    backend.sql("UPDATE models SET production_version = NULL, production_seq = NULL")
    os.replace(at_14, backend.home / "head.json")
    code, out, _ = _run(capsys, "registry", "verify")
    assert code == 0  # consistent: only a receipt kept elsewhere can show the cut
    _, out, _ = _run(capsys, "registry", "verify", "--receipt", str(kept))
    assert "entries after seq 14 are missing" in out


def test_backdated_entries_fail(filled, capsys, monkeypatch):
    backend, registry, v = filled
    from gatewise.registry import ledger

    monkeypatch.setattr(ledger, "utc_now", lambda: "2025-01-01T00:00:00.000000Z")
    registry.record_gate_results(v["child"], [GateResult("drift", True, 0.05, 0.2, "ok", {})], EVIDENCE)
    _verify_fails(capsys, "entry 17 (gate-result arrests:v2 drift): is dated 2025-01-01T00:00:00.000000Z, before entry 16")


def test_promotion_citing_a_stale_pass_fails(filled, capsys):
    backend, registry, v = filled
    child = v["child"]
    old = {gate: (seq, digest) for seq, digest, gate in backend.sql(
        "SELECT entry_seq, entry_digest, gate FROM gate_results WHERE version = ?", child)}
    registry.record_gate_results(child, verdicts(failing="fairness"), EVIDENCE)  # entries 17..21: fairness now fails
    with pytest.raises(Exception, match="failed fairness"):
        registry.promote(child)
    # The pipeline-key holder signs a promotion citing the earlier passes anyway.
    with registry.write() as (conn, appender):
        appender.append(child, registry.version(child).sha256, st.PROMOTION, {
            "version": child, "model": "arrests", "alias": "production", "previous_version": child,
            "reason": "stale", "gate_results": [{"gate": g, "seq": s, "digest": d} for g, (s, d) in old.items()],
        })
    _verify_fails(capsys, f"cites entry {old['fairness'][0]} for fairness, but the latest result of fairness for {child} before it is entry 18 (failed)")


def test_read_commands_warn_when_verification_is_stale_or_failed(filled, capsys):
    backend, registry, v = filled
    for argv in (["registry", "ls"], ["registry", "show", v["child"]], ["registry", "history", "arrests"], ["registry", "gates"]):
        code, _, err = _run(capsys, *argv)
        assert code == 0 and err == "", argv
    registry.record_gate_results(v["child"], [GateResult("drift", True, 0.05, 0.2, "ok", {})], EVIDENCE)
    code, _, err = _run(capsys, "registry", "ls")
    assert code == 0 and err.strip().splitlines() == [
        "gatewise: warning: the last verification (" + err.split("(")[1].split(")")[0] + ") checked the ledger up to entry 16; "
        "its head is now entry 17: run `gatewise registry verify`"]
    backend.sql("UPDATE gate_results SET passed = 1 WHERE version = ? AND gate = 'fairness'", v["parent"])
    _verify_fails(capsys, "field passed is True")
    code, out, err = _run(capsys, "registry", "show", v["parent"])
    assert code == 0 and "FAILED with" in err and len(err.strip().splitlines()) == 1
    assert any(line.split()[:2] == ["fairness", "FAIL"] for line in out.splitlines())  # the signed verdict
    code, _, err = _run(capsys, "registry", "gates", "--gate", "fairness")
    assert code == 2 and "does not match its signed entry (passed)" in err


def test_receipts_published_to_a_second_place_show_a_cut(home, tmp_path, capsys, monkeypatch):
    published = tmp_path / "published"
    published.mkdir()
    monkeypatch.setenv("GATEWISE_RECEIPT_DIR", str(published))
    backend = Backend(home, None)
    registry, v = populated(backend, tmp_path)
    names = sorted(p.name for p in published.iterdir())
    assert names[-1] == "head-000000000016.json" and len(names) == len(set(names))
    code, out, _ = _run(capsys, "registry", "verify", "--receipt", str(published))
    assert code == 0 and f"{published / 'head-000000000016.json'} (entry 16 of " in out
    backend.sql("DELETE FROM promotions WHERE entry_seq = 16")
    backend.sql("DELETE FROM ledger WHERE seq = 16")
    backend.sql("UPDATE models SET production_version = NULL, production_seq = NULL")
    _run(capsys, "registry", "verify")  # head.json already shows it; the published copy does too:
    (backend.home / "head.json").unlink()
    code, out, _ = _run(capsys, "registry", "verify", "--receipt", str(published))
    assert code == VERIFY_FAILED and "entries after seq 15 are missing" in out
    backend.close()


def test_loose_tables_on_each_backend(backend, tmp_path):  # noqa: F811 - backend is a fixture
    """The census and the signed reads on both backends: a table rebuilt without its constraints,
    with a duplicate alias row, NULL-keyed rows and a NULL-seq ledger row."""
    registry, v = populated(backend, tmp_path)
    false = "false" if backend.url else "0"
    for table in ("models", "versions", "ledger"):
        backend.sql(f"CREATE TABLE {table}_loose AS SELECT * FROM {table}")
        backend.sql(f"DROP TABLE {table}")
        backend.sql(f"CREATE TABLE {table} AS SELECT * FROM {table}_loose WHERE {false}")
        backend.sql(f"INSERT INTO {table} SELECT * FROM {table}_loose")
        backend.sql(f"DROP TABLE {table}_loose")
    backend.sql("INSERT INTO models VALUES ('arrests', 2, ?, 99)", v["parent"])
    backend.sql("INSERT INTO versions SELECT 'arrests:v9', model, 9, run_id, 'fake', status, sha256, size_bytes, error, plugin_name, "
                "plugin_version, plugin_distribution, plugin_code_sha256, NULL, NULL, entry_digest, created_at FROM versions WHERE name = ?",
                v["child"])
    backend.sql("INSERT INTO ledger SELECT NULL, prev_digest, digest, predicate_type, subject_sha256, ref, keyid, created_at, "
                "envelope FROM ledger WHERE seq = 16")
    problems = [str(p) for p in registry.verify().problems]
    for needle in ("models table: 2 rows share the key name='arrests'", "versions row entry_seq=None (arrests:v9): NULL in entry_seq",
                   "ledger row seq=None", "ledger table: holds 17 rows but 16 entries checked"):
        assert any(needle in p for p in problems), (needle, problems)
    assert registry.champion("arrests").version == v["child"]
    assert [i.version for i in registry.versions("arrests")] == [v["parent"], v["child"], v["errored"]]


def test_a_hidden_newest_promotion_still_decides(filled, capsys, tmp_path):
    backend, registry, v = filled
    registry.record_gate_results(v["parent"], verdicts(), EVIDENCE)  # v1 passes everything now
    registry.promote(v["parent"])
    [(seq,)] = backend.sql("SELECT max(seq) FROM ledger")
    backend.sql("UPDATE ledger SET ref = 'elsewhere:v1' WHERE seq = ?", seq)  # hide it from the search by ref
    assert registry.champion("arrests").version == v["parent"]  # the alias row's seq points at the signed entry
    _verify_fails(capsys, f"entry {seq} (promotion arrests:v1): ledger column ref is 'elsewhere:v1'")
