"""Offline audit bundles: `gatewise registry export --bundle` and `gatewise audit verify`.

A bundle is checked with no database and no private key; every kind of damage gives a line that
names it and a non-zero exit; export writes nothing when it fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gatewise.cli import main
from gatewise.registry.bundle import export_registry, verify_bundle
from gatewise.registry.keys import key_path, read_key
from gatewise.registry.ledger import utc_now
from gatewise.registry.receipt import make_receipt
from test_registry_support import EVIDENCE, Backend, backend, populated, verdicts  # noqa: F401  (backend is a fixture)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "audit.md"


@pytest.fixture
def bundle(home, tmp_path, capsys):
    registry, _ = populated(Backend(home, None), tmp_path)
    registry.close()
    target = tmp_path / "audit-bundle"
    assert main(["registry", "export", "--bundle", str(target)]) == 0
    capsys.readouterr()
    return target


def _audit(capsys, *args) -> tuple[int, list[str]]:
    code = main(["audit", "verify", *map(str, args)])
    return code, capsys.readouterr().out.splitlines()


def _lines(bundle: Path) -> list[dict]:
    return [json.loads(line) for line in (bundle / "ledger.jsonl").read_text().splitlines()]


def _write_lines(bundle: Path, lines: list[str], fix_manifest: bool = False) -> None:
    (bundle / "ledger.jsonl").write_text("".join(line + "\n" for line in lines))
    if fix_manifest:
        _refresh_manifest(bundle)


def _refresh_manifest(bundle: Path) -> None:
    """What a careful forger does: make the manifest agree with the edited files."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name, facts in manifest["files"].items():
        facts["sha256"] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    lines = (bundle / "ledger.jsonl").read_text().splitlines()
    manifest["entries"] = manifest["files"]["ledger.jsonl"]["lines"] = len(lines)
    last = json.loads(lines[-1])
    manifest["head"] = {"seq": last["seq"], "digest": last["digest"]}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_export_writes_entry_lines_keys_receipt_and_manifest(bundle, home):
    assert sorted(p.name for p in bundle.iterdir()) == ["head.json", "keys.json", "ledger.jsonl", "manifest.json"]
    lines = _lines(bundle)
    assert [line["seq"] for line in lines] == list(range(1, 17))
    assert all(sorted(line) == ["digest", "envelope", "seq"] for line in lines)
    assert all(hashlib.sha256(base64.b64decode(line["envelope"]["payload"])).hexdigest() == line["digest"] for line in lines)
    [key] = json.loads((bundle / "keys.json").read_text())["keys"]
    assert key["role"] == "pipeline" and key["status"] == "active" and key["introduced_seq"] == 1
    assert (bundle / "head.json").read_text() == (home / "head.json").read_text()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["entries"] == 16 and manifest["head"] == {"seq": 16, "digest": lines[-1]["digest"]}
    assert manifest["receipt"]["seq"] == 16 and manifest["files"]["ledger.jsonl"]["lines"] == 16
    for name, facts in manifest["files"].items():
        assert facts["sha256"] == hashlib.sha256((bundle / name).read_bytes()).hexdigest()


def test_audit_verify_needs_no_database_and_no_private_key(bundle, home, capsys):
    shutil.rmtree(home)  # no database, no key file: only the bundle
    code, out = _audit(capsys, bundle)
    assert code == 0 and len(out) == 1
    assert out[0].startswith("OK: 16 entries checked in ") and "receipts at 16" in out[0]
    assert main(["audit", "verify", str(bundle), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["head"]["seq"] == 16 and report["receipts"][0]["ok"]


def test_bundle_from_each_backend_verifies(backend, tmp_path):
    registry, _ = populated(backend, tmp_path)
    summary = export_registry(backend.home, backend.url, tmp_path / "b")
    assert summary.entries == 16 and summary.head == registry.head()
    report = verify_bundle(tmp_path / "b")
    assert report.ok, report.problems
    assert report.head == registry.head() and report.keys == registry.verify().keys


def test_a_key_missing_from_keys_json_is_one_clear_line(bundle, capsys):
    document = json.loads((bundle / "keys.json").read_text())
    [key] = document["keys"]
    document["keys"] = []
    (bundle / "keys.json").write_text(json.dumps(document))
    _refresh_manifest(bundle)
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[:-1] == [f"keys.json: key {key['keyid'][:16]} (pipeline key, introduced by entry 1) is missing"]
    assert out[-1].startswith("FAILED: 1 problem(s)")


@pytest.mark.parametrize("name", ["ledger.jsonl", "keys.json", "head.json"])
def test_a_missing_file_is_one_clear_line(bundle, capsys, name):
    (bundle / name).unlink()
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[:-1] == [f"{name}: is missing from the bundle"]


def test_a_missing_or_corrupt_manifest_is_one_clear_line(bundle, capsys):
    (bundle / "manifest.json").write_text("{not json")
    code, out = _audit(capsys, bundle)
    assert code == 4 and len(out) == 2 and out[0].startswith("manifest.json: cannot be read (")
    (bundle / "manifest.json").unlink()
    code, out = _audit(capsys, bundle)
    assert code == 4 and out[:-1] == ["manifest.json: is missing from the bundle"]


def test_a_corrupt_line_is_named(bundle, capsys):
    lines = (bundle / "ledger.jsonl").read_text().splitlines()
    lines[6] = lines[6][:300]  # cut short: entry 7 is no longer JSON
    _write_lines(bundle, lines)
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[0].startswith("ledger.jsonl line 7: is not a ledger entry (")
    assert out[1].startswith("ledger.jsonl: has sha256 ") and out[1].endswith("the file was changed after export")
    assert out[2].startswith("FAILED: 2 problem(s)")  # not also "entry 7: missing"
    lines[6] = '{"seq": 7, "digest": "abc"}'
    _write_lines(bundle, lines, fix_manifest=True)
    code, out = _audit(capsys, bundle)
    assert code == 4 and out[0] == "entry 7 (ledger.jsonl line 7): is not a ledger entry (no 'envelope' field)"


def test_an_edited_line_is_named(bundle, capsys):
    lines = _lines(bundle)
    statement = json.loads(base64.b64decode(lines[6]["envelope"]["payload"]))
    assert statement["predicate"]["gate"] == "fairness" and statement["predicate"]["passed"] is False
    statement["predicate"]["passed"] = True  # the failed fairness verdict of entry 7, now a pass
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    lines[6]["envelope"]["payload"] = base64.b64encode(body).decode()
    lines[6]["digest"] = hashlib.sha256(body).hexdigest()
    _write_lines(bundle, [json.dumps(line) for line in lines], fix_manifest=True)
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[0].startswith("entry 7 (gate-result arrests:v1 fairness): signature by key ") and out[0].endswith("does not verify")
    assert out[1].startswith("entry 8 (gate-result arrests:v1 robustness): signed prev digest") and "chain is broken here" in out[1]


def test_a_truncated_bundle_is_named_by_its_receipt(bundle, capsys):
    lines = (bundle / "ledger.jsonl").read_text().splitlines()
    _write_lines(bundle, lines[:-2], fix_manifest=True)
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[0].startswith("head.json: entries after seq 14 are missing (receipt says head 16, digest ")


def test_a_kept_receipt_catches_what_a_later_bundle_hides(home, tmp_path, capsys):
    backend = Backend(home, None)
    registry, _ = populated(backend, tmp_path)
    registry.close()
    kept = tmp_path / "receipt-kept.json"
    assert main(["registry", "head"]) == 0
    kept.write_text(capsys.readouterr().out)
    # the intruder, holding the pipeline key, deletes the newest entries and their rows and signs
    # a receipt for the cut head: the machine shows nothing wrong
    backend.sql("DELETE FROM ledger WHERE seq > 14")
    backend.sql("DELETE FROM gate_results WHERE entry_seq > 14")
    backend.sql("DELETE FROM promotions WHERE entry_seq > 14")
    backend.sql("UPDATE models SET production_version = NULL, production_seq = NULL")
    [(digest,)] = backend.sql("SELECT digest FROM ledger WHERE seq = 14")
    (home / "head.json").write_text(make_receipt(read_key(key_path(home)), 14, digest, utc_now()))
    assert main(["registry", "export", "--bundle", str(tmp_path / "later")]) == 0
    capsys.readouterr()
    assert _audit(capsys, tmp_path / "later")[0] == 0  # consistent on its own
    code, out = _audit(capsys, tmp_path / "later", "--receipt", kept)
    assert code == 4
    expected = (f"head receipt {kept}: entries after seq 14 are missing (receipt says head 16, "
                f"digest {_receipt_digest(kept)[:16]}..., written {_receipt_time(kept)})")
    assert out[:-1] == [expected]


def _receipt_digest(path: Path) -> str:
    return json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))["predicate"]["digest"]


def _receipt_time(path: Path) -> str:
    return json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))["predicate"]["time"]


def test_export_refuses_a_used_directory_and_writes_nothing(bundle, home, tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    assert main(["registry", "export", "--bundle", str(used)]) == 2
    assert capsys.readouterr().err.strip() == f"gatewise: error: cannot export to {used}: the directory is not empty (choose a new one)"
    assert [p.name for p in used.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit-bundle", "home", "in", "used"]  # no partial directory
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["registry", "export", "--bundle", str(empty)]) == 0
    assert (empty / "manifest.json").exists()


def test_export_without_a_registry_creates_nothing(home, tmp_path, capsys):
    assert main(["registry", "export", "--bundle", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.strip() == f"gatewise: error: no registry at {home.resolve() / 'registry.db'}: run `gatewise run` first"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_audit_verify_of_no_bundle_is_one_line_exit_2(tmp_path, capsys):
    assert main(["audit", "verify", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"gatewise: error: no audit bundle at {tmp_path / 'nowhere'}: not a directory"
    assert main(["audit", "verify", str(tmp_path)]) == 2
    assert "is not an audit bundle" in capsys.readouterr().err


def test_keys_json_records_rotations_and_revocations(home, tmp_path):
    registry, v = populated(Backend(home, None), tmp_path)
    approver, _, _ = registry.introduce_approver("risk_officer")
    old, new, rotated_at = registry.rotate_key(reason="yearly")
    registry.record_gate_results(v["child"], verdicts(gates=("drift",)), EVIDENCE)  # signed with the new key
    _, revoked_at = registry.revoke_key(approver.keyid, reason="left")
    export_registry(home, None, tmp_path / "b")
    keys = {k["keyid"]: k for k in json.loads((tmp_path / "b" / "keys.json").read_text())["keys"]}
    assert keys[old.keyid]["status"] == "rotated" and keys[old.keyid]["successor"] == new.keyid
    assert keys[old.keyid]["changed_seq"] == rotated_at == keys[new.keyid]["introduced_seq"]
    assert keys[approver.keyid]["status"] == "revoked" and keys[approver.keyid]["changed_seq"] == revoked_at
    report = verify_bundle(tmp_path / "b")
    assert report.ok, report.problems
    assert report.keys == [new.keyid]
    bundle = tmp_path / "b"
    assert keys[old.keyid]["changed_at"] == keys[new.keyid]["introduced_at"] == _signed_time(bundle, rotated_at)
    assert keys[approver.keyid]["changed_at"] == _signed_time(bundle, revoked_at)
    # a revocation moved later in keys.json (to hide what the key signed after it) is named
    _edit_json(bundle, "keys.json", lambda d: [k.update(changed_at="2099-01-01T00:00:00.000000Z") for k in d["keys"] if k["keyid"] == approver.keyid])
    [problem] = verify_bundle(bundle).problems
    assert str(problem) == (f"keys.json: key {approver.keyid[:16]}: changed_at is '2099-01-01T00:00:00.000000Z' "
                            f"but entry {revoked_at} was signed at {_signed_time(bundle, revoked_at)}")


def test_chunk_boundaries_hide_nothing_in_a_bundle(bundle, monkeypatch):
    from gatewise.registry import bundle as bundle_module
    from gatewise.registry import verify

    lines = _lines(bundle)
    lines[3]["digest"] = "0" * 64
    _write_lines(bundle, [json.dumps(line) for line in lines[:9]] + ["garbage"] + [json.dumps(line) for line in lines[10:]])
    serial = verify_bundle(bundle)
    monkeypatch.setattr(verify, "CHUNK", 3)
    monkeypatch.setattr(bundle_module, "CHUNK", 3)
    parallel = verify_bundle(bundle)
    assert not parallel.ok and parallel.problems == serial.problems
    assert parallel.entries_checked == serial.entries_checked == 15
    [unreadable] = [str(p) for p in parallel.problems if "line 10" in str(p) or "missing" in str(p)]
    assert unreadable.startswith("ledger.jsonl line 10: is not a ledger entry (")


def test_the_docs_check_one_bundle_line_with_only_cryptography(bundle):
    text = DOCS.read_text()
    section = text[text.index("## Checking one entry with nothing but Python and `cryptography`"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert 'bundle, seq = "audit-bundle", 12' in code
    result = subprocess.run([sys.executable, "-c", code], cwd=bundle.parent, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    line = _lines(bundle)[11]
    assert result.stdout.splitlines()[0] == f"https://gatewise.dev/predicates/gate-result/v1 {json.loads(base64.b64decode(line['envelope']['payload']))['subject'][0]['digest']['sha256']}"
    assert f"entry digest {line['digest']} links to" in result.stdout
    # and it refuses a forged line
    forged = _lines(bundle)
    forged[11]["envelope"]["signatures"][0]["sig"] = base64.b64encode(b"\0" * 64).decode()
    _write_lines(bundle, [json.dumps(line) for line in forged])
    result = subprocess.run([sys.executable, "-c", code], cwd=bundle.parent, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "InvalidSignature" in result.stderr


def test_the_docs_snippet_refuses_a_key_listed_twice_and_a_retired_key(bundle):
    text = DOCS.read_text()
    section = text[text.index("## Checking one entry with nothing but Python and `cryptography`"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], cwd=bundle.parent, capture_output=True, text=True, timeout=60, check=False)

    original = (bundle / "keys.json").read_text()
    document = json.loads(original)
    [key] = document["keys"]
    document["keys"] = [{**key, "status": "active", "changed_seq": None}, key]
    (bundle / "keys.json").write_text(json.dumps(document))
    result = run()
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"keys.json lists key {key['keyid'][:16]} 2 times, not once"
    document["keys"] = [{**key, "status": "revoked", "changed_seq": 5}]  # says the key stopped signing at entry 5
    (bundle / "keys.json").write_text(json.dumps(document))
    result = run()
    assert result.returncode != 0 and "key not active at this entry" in result.stderr
    (bundle / "keys.json").write_text(original)
    assert run().returncode == 0


def _signed_time(bundle: Path, seq: int) -> str:
    return json.loads(base64.b64decode(_lines(bundle)[seq - 1]["envelope"]["payload"]))["predicate"]["ledger"]["time"]


def _edit_json(bundle: Path, name: str, change) -> None:
    """Edit one metadata file and, as a careful forger would, make the manifest's digests agree."""
    document = json.loads((bundle / name).read_text())
    change(document)
    (bundle / name).write_text(json.dumps(document))
    if name != "manifest.json":
        _refresh_manifest(bundle)


def test_a_key_listed_twice_fails_and_the_forged_copy_is_named(bundle, capsys):
    def duplicate(document):
        [key] = document["keys"]
        forged = {**key, "status": "revoked", "changed_seq": 3, "changed_at": _signed_time(bundle, 3), "reason": "forged"}
        document["keys"] = [forged, key]  # the forged copy first, where a naive reader looks

    _edit_json(bundle, "keys.json", duplicate)
    keyid = json.loads((bundle / "keys.json").read_text())["keys"][0]["keyid"]
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[0] == f"keys.json: key {keyid[:16]} is listed 2 times: a key id must appear once"
    assert f"keys.json: key {keyid[:16]} (copy 1 of 2): status is 'revoked' but the ledger says 'active'" in out
    assert f"keys.json: key {keyid[:16]} (copy 1 of 2): changed_at is {_signed_time(bundle, 3)!r} but the ledger records no changed_seq" in out
    assert not any("copy 2 of 2" in line for line in out)  # the true copy agrees with the ledger
    assert out[-1].startswith("FAILED: ")


def test_keys_json_times_are_the_signed_times_of_the_key_entries(bundle, capsys):
    [key] = json.loads((bundle / "keys.json").read_text())["keys"]
    assert key["introduced_at"] == _signed_time(bundle, 1) and key["changed_at"] is None
    _edit_json(bundle, "keys.json", lambda d: d["keys"][0].update(introduced_at="2025-01-01T00:00:00.000000Z"))
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[:-1] == [f"keys.json: key {key['keyid'][:16]}: introduced_at is '2025-01-01T00:00:00.000000Z' "
                        f"but entry 1 was signed at {_signed_time(bundle, 1)}"]


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("keys", 2, "manifest.json: says 2 keys but the ledger introduced 1"),
    ("receipt", "seq 15", "manifest.json: receipt seq is 15 but head.json says 16"),
    ("created", "2020-01-01T00:00:00.000000Z", "manifest.json: created 2020-01-01T00:00:00.000000Z is earlier than the head entry ({head_time}): the bundle cannot hold it"),
    ("created", "yesterday", "manifest.json: created is 'yesterday', not a UTC time"),
    ("created", "2030-01-01T00:00:00", "manifest.json: created is '2030-01-01T00:00:00', not a UTC time"),
])
def test_every_manifest_field_is_checked_against_the_ledger(bundle, capsys, field, value, expected):
    manifest = json.loads((bundle / "manifest.json").read_text())
    receipt = dict(manifest["receipt"])
    if value == "seq 15":
        value = {**receipt, "seq": 15}
    manifest[field] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    code, out = _audit(capsys, bundle)
    assert code == 4
    assert out[:-1] == [expected.format(head_time=_signed_time(bundle, 16))]


def test_audit_verify_pins_the_first_key_and_export_speaks_json(home, tmp_path, capsys):
    registry, _ = populated(Backend(home, None), tmp_path)
    keyid = registry.verify().keys[0]
    registry.close()
    assert main(["registry", "export", "--bundle", str(tmp_path / "b"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["entries"] == 16 and summary["keys"] == 1 and summary["receipt"]["seq"] == 16
    assert set(summary["files"]) == {"ledger.jsonl", "keys.json", "head.json"}
    assert _audit(capsys, tmp_path / "b", "--trusted-key", keyid)[0] == 0
    code, out = _audit(capsys, tmp_path / "b", "--trusted-key", "ab" * 32)
    assert code == 4 and out[0].startswith("entry 1 (key ") and "not one of the trusted keys" in out[0]
