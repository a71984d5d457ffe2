"""Signed head receipts: written outside the database after every append, and checked by verify.

Deleting the newest entries leaves a chain whose signatures all hold; only the receipt shows it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gatewise.cli import main
from gatewise.registry.keys import SigningKey
from gatewise.registry.receipt import (
    HEAD_RECEIPT,
    make_receipt,
    read_receipt,
    record_head,
)
from gatewise.registry.statements import PAYLOAD_TYPE, pae, sha256_hex
from test_registry_support import EVIDENCE, Backend, backend, populated, verdicts  # noqa: F401  (backend is a fixture)


def _truncate(backend, after: int) -> None:
    """Delete the entries after ``after`` and every row they produced, as an intruder would."""
    backend.sql("DELETE FROM ledger WHERE seq > ?", after)
    for table in ("gate_results", "promotions", "versions", "runs"):
        backend.sql(f"DELETE FROM {table} WHERE entry_seq > ?", after)
    backend.sql("UPDATE models SET production_version = NULL, production_seq = NULL")


def _problems(registry) -> list[str]:
    report = registry.verify()
    assert not report.ok
    return [str(p) for p in report.problems]


def test_every_append_writes_a_signed_receipt_of_the_head(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    path = backend.home / "head.json"
    receipt = read_receipt(path)
    assert (receipt.seq, receipt.digest) == registry.head() == (16, receipt.digest)
    # a DSSE envelope over an in-toto statement, checked with the pipeline key
    envelope = json.loads(path.read_text())
    body = base64.b64decode(envelope["payload"])
    statement = json.loads(body)
    assert statement["predicateType"] == HEAD_RECEIPT
    assert statement["subject"][0]["digest"]["sha256"] == receipt.digest
    assert statement["predicate"] == {"seq": 16, "digest": receipt.digest, "time": receipt.time, "keyid": receipt.keyid}
    [(public,)] = backend.sql("SELECT public_key FROM keys WHERE keyid = ?", receipt.keyid)
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
        base64.b64decode(envelope["signatures"][0]["sig"]), pae(PAYLOAD_TYPE, body))
    registry.record_gate_results(v["child"], verdicts(gates=("drift",)), EVIDENCE)
    assert (read_receipt(path).seq, read_receipt(path).digest) == registry.head() == (17, registry.head()[1])
    report = registry.verify()
    assert report.ok and [r["seq"] for r in report.receipts] == [17]


def test_deleting_the_newest_entries_is_named(backend, tmp_path):
    registry, _ = populated(backend, tmp_path)
    receipt = read_receipt(backend.home / "head.json")
    _truncate(backend, 14)
    expected = (f"head receipt {backend.home / 'head.json'}: entries after seq 14 are missing "
                f"(receipt says head 16, digest {receipt.digest[:16]}..., written {receipt.time})")
    assert _problems(registry) == [expected]


def test_a_ledger_grown_back_past_its_receipt_is_named_and_the_receipt_kept(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    path = backend.home / "head.json"
    kept = path.read_text()
    _truncate(backend, 13)
    for gate in ("drift", "leakage", "fairness", "robustness"):  # seq 14..17: past the receipt's 16
        registry.record_gate_results(v["parent"], verdicts(gates=(gate,)), EVIDENCE)
    assert registry.head()[0] == 17
    assert path.read_text() == kept  # the evidence is never overwritten
    [problem] = _problems(registry)
    assert problem.startswith(f"head receipt {path}: entry 16 has digest ")
    assert "the ledger was rewritten after the receipt (receipt says head 16" in problem


def test_an_edited_or_foreign_receipt_is_named(tmp_path):
    backend = Backend(tmp_path / "home", None)
    registry, _ = populated(backend, tmp_path)
    path = backend.home / "head.json"
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["seq"] = 99  # claims entries that were never written
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))
    problems = _problems(registry)
    assert any("signature by key" in p and "does not verify (receipt forged or edited)" in p for p in problems)
    assert any("entries after seq 16 are missing (receipt says head 99" in p for p in problems)

    outsider = Ed25519PrivateKey.generate()
    public = outsider.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = SigningKey(path=tmp_path / "x", public_key=public, keyid=sha256_hex(public), private=outsider)
    path.write_text(make_receipt(key, *registry.head(), "2030-01-01T00:00:00.000000Z"))
    [problem] = _problems(registry)
    assert problem == f"head receipt {path}: signed by key {key.keyid[:16]}, which no key entry of this ledger introduced"

    path.write_text("not a receipt")
    [problem] = _problems(registry)
    assert problem.startswith(f"head receipt {path}: cannot be read: envelope is not JSON")


def test_the_receipt_never_moves_backwards_and_a_missing_one_fails(tmp_path):
    backend = Backend(tmp_path / "home", None)
    registry, _ = populated(backend, tmp_path)
    path = backend.home / "head.json"
    newest = path.read_text()
    [(digest,)] = backend.sql("SELECT digest FROM ledger WHERE seq = 12")
    # a slower writer that committed entry 12 finishes after the one that wrote 16
    record_head(backend.home, registry.pipeline_key, (11, "x" * 64), (12, digest), None)
    assert path.read_text() == newest
    path.unlink()
    report = registry.verify()
    assert not report.ok and [str(p) for p in report.problems] == [f"head receipt {path}: is missing"]


def test_concurrent_writers_leave_the_newest_receipt(tmp_path):
    backend = Backend(tmp_path / "home", None)
    registry, v = populated(backend, tmp_path)
    script = textwrap.dedent(f"""
        from gatewise.registry import Registry
        from gatewise.types import GateResult
        with Registry.open({str(backend.home)!r}) as registry:
            for _ in range(5):
                registry.record_gate_results({v["child"]!r}, [GateResult("drift", True, 0.1, 0.2, "ok", {{}})], {{}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0, 0]
    receipt = read_receipt(backend.home / "head.json")
    assert (receipt.seq, receipt.digest) == registry.head() and receipt.seq == 36
    assert registry.verify().ok


def test_registry_head_prints_the_receipt_to_keep(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("GATEWISE_HOME", str(home))
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    assert main(["registry", "head"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"gatewise: error: no head receipt at {home / 'head.json'}: the registry writes one after every append")
    registry, _ = populated(Backend(home, None), tmp_path)
    registry.close()
    assert main(["registry", "head"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (home / "head.json").read_text()
    assert captured.err.startswith("head 16 ") and "keep a copy off this machine" in captured.err
    assert main(["registry", "head", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["seq"] == 16 and shown["receipt"]["payloadType"] == PAYLOAD_TYPE
