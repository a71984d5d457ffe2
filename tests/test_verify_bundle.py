"""docs/verify_bundle.py, the standalone verifier, in a fresh virtual environment that holds only
`cryptography`, against a real bundle (`gatewise registry export --bundle`) and edited copies.

The registry behind the bundle is real (SQLite, Ed25519 signatures): a pipeline promotion, an
approver's signed policy, a waiver, an approver promotion and a rollback. The environment is made
once per module with `python -m venv` and pip; when pip cannot install cryptography (no index, no
cache) the tests skip and say so.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gatewise.cli import main
from gatewise.registry.statements import pae, sha256_hex
from test_registry_support import EVIDENCE, Backend, candidate, verdicts

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "verify_bundle.py"
POLICY = "[gates.fairness]\nmax_demographic_parity_difference = 0.45\nmax_equalized_odds_difference = 0.45\n"


@pytest.fixture(scope="module")
def crypto_python(tmp_path_factory) -> Path:
    """The python of a new venv holding cryptography (and what it needs) and nothing of gatewise."""
    venv = tmp_path_factory.mktemp("venv") / "only-cryptography"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "cryptography"],
                              capture_output=True, text=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot make a venv with cryptography here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"pip cannot install cryptography here: {done.stderr.strip().splitlines()[-1:]}")
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import gatewise"], capture_output=True, timeout=60)
    assert probe.returncode != 0, "the verifier's venv must not see gatewise"
    return python


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A real registry's bundle, an older receipt of it, and the first key's id."""
    root = tmp_path_factory.mktemp("bundle")
    home = root / "home"
    old = os.environ.get("GATEWISE_HOME")
    os.environ["GATEWISE_HOME"] = str(home)
    os.environ.pop("GATEWISE_REGISTRY_URL", None)
    try:
        registry = Backend(home, None).open()
        registry.record_run("run-1", "arrests", {"seed": 42}, "a" * 64, {"dataset": "e" * 64}, [])
        v1 = registry.register_candidate("run-1", "arrests", candidate(root / "in", "parent"))
        registry.record_gate_results(v1, verdicts(), EVIDENCE)
        registry.promote(v1)
        registry.introduce_approver("ada")
        (root / "policy.toml").write_text(POLICY)
        registry.close()
        assert main(["policy", "set", str(root / "policy.toml"), "--approver", "ada", "--reason", "the data's own disparity"]) == 0
        shutil.copy(home / "head.json", root / "older-head.json")
        registry = Backend(home, None).open()
        registry.record_run("run-2", "arrests", {"seed": 43}, "b" * 64, {"dataset": "e" * 64}, [])
        v2 = registry.register_candidate("run-2", "arrests", candidate(root / "in", "child", content=b"other bytes" * 30))
        registry.record_gate_results(v2, verdicts(failing="fairness"), EVIDENCE)
        registry.approve_promotion(v2, approver="ada", reason="reviewed the fairness failure", waive=["fairness"])
        registry.rollback("arrests", reason="complaints", approver="ada")
        first = registry.keys()[0].keyid
        registry.close()
        assert main(["registry", "export", "--bundle", str(root / "bundle")]) == 0
    finally:
        if old is None:
            os.environ.pop("GATEWISE_HOME", None)
        else:
            os.environ["GATEWISE_HOME"] = old
    return root / "bundle", root / "older-head.json", first


def verify(python: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), str(SCRIPT), str(bundle), *args], capture_output=True, text=True, timeout=120)


def copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


def lines(bundle: Path) -> list[str]:
    return (bundle / "ledger.jsonl").read_text().splitlines()


def write(bundle: Path, new: list[str]) -> None:
    (bundle / "ledger.jsonl").write_text("".join(line + "\n" for line in new))
    # A careful forger also makes the manifest agree with the edited file.
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["ledger.jsonl"]["sha256"] = sha256_hex((bundle / "ledger.jsonl").read_bytes())
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_fresh_bundle_verifies_and_tells_the_story(crypto_python, exported):
    bundle, _, first = exported
    done = verify(crypto_python, bundle, "--pin", first[:16])
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "arrests: arrests:v1" in out  # production after the rollback
    assert "gating policy" in out and "set by approver ada: the data's own disparity" in out
    assert "waiver of fairness for arrests:v2 by approver ada: reviewed the fairness failure" in out
    assert "promotion of arrests:v2 (previous arrests:v1) by approver ada, gated by policy entry" in out
    assert "rollback of arrests from arrests:v2 to arrests:v1 by approver ada: complaints" in out
    assert out.strip().splitlines()[-1].startswith("OK: ")
    assert main(["audit", "verify", str(bundle)]) == 0  # gatewise's own bundle check agrees


def test_another_pinned_key_fails(crypto_python, exported):
    bundle, _, first = exported
    other = "f" * 16 if not first.startswith("f" * 16) else "e" * 16
    done = verify(crypto_python, bundle, "--pin", other)
    assert done.returncode == 4 and "is not the pinned key" in done.stdout
    short = verify(crypto_python, bundle, "--pin", first[:8])
    assert short.returncode == 2 and "at least 16 hex" in short.stderr


def test_a_changed_line_fails(crypto_python, exported, tmp_path):
    bundle = copy(exported[0], tmp_path)
    edited = lines(bundle)
    record = json.loads(edited[5])
    envelope = record["envelope"]
    stmt = json.loads(base64.b64decode(envelope["payload"]))
    stmt["predicate"]["reason" if "reason" in stmt["predicate"] else "model"] = "edited"
    envelope["payload"] = base64.b64encode(json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()).decode()
    record["digest"] = sha256_hex(json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode())
    edited[5] = json.dumps(record)
    write(bundle, edited)
    done = verify(crypto_python, bundle, "--pin", exported[2])
    assert done.returncode == 4 and "entry 6: its signature by" in done.stdout and "does not verify" in done.stdout


def test_a_removed_line_fails(crypto_python, exported, tmp_path):
    bundle = copy(exported[0], tmp_path)
    edited = lines(bundle)
    del edited[3]
    write(bundle, edited)
    done = verify(crypto_python, bundle, "--pin", exported[2])
    assert done.returncode == 4 and "entries are missing or out of order" in done.stdout


def test_a_forged_key_entry_fails(crypto_python, exported, tmp_path):
    bundle = copy(exported[0], tmp_path)
    edited = lines(bundle)
    last = json.loads(edited[-1])
    forger = Ed25519PrivateKey.generate()
    public = forger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keyid = sha256_hex(public)
    seq = last["seq"] + 1
    stmt = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": f"key:{keyid}", "digest": {"sha256": keyid}}],
            "predicateType": "https://gatewise.dev/predicates/key/v2",
            "predicate": {"ledger": {"seq": seq, "prev": last["digest"], "time": "2099-01-01T00:00:00.000000Z"},
                          "keyid": keyid, "algorithm": "ed25519", "public_key": base64.b64encode(public).decode(),
                          "role": "approver", "name": "intruder", "introduced_by": keyid}}
    body = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    envelope = {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(body).decode(),
                "signatures": [{"keyid": keyid, "sig": base64.b64encode(forger.sign(pae("application/vnd.in-toto+json", body))).decode()}]}
    edited.append(json.dumps({"digest": sha256_hex(body), "envelope": envelope, "seq": seq}))
    write(bundle, edited)
    done = verify(crypto_python, bundle, "--pin", exported[2])
    assert done.returncode == 4 and f"entry {seq}: key entry is not signed by a key of the ledger" in done.stdout


def test_a_stale_receipt_fails(crypto_python, exported, tmp_path):
    bundle = copy(exported[0], tmp_path)
    shutil.copy(exported[1], bundle / "head.json")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["head.json"]["sha256"] = sha256_hex((bundle / "head.json").read_bytes())
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    done = verify(crypto_python, bundle, "--pin", exported[2])
    assert done.returncode == 4 and "stale, nothing vouches for the entries after it" in done.stdout
    # The same older receipt, kept by the auditor beside a fresh bundle, agrees with it.
    kept = verify(crypto_python, exported[0], "--pin", exported[2], "--receipt", str(exported[1]))
    assert kept.returncode == 0, kept.stdout
