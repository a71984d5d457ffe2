"""The registry API on each backend: what the flow records comes back, signed and chained."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from test_registry_support import (  # noqa: F401  (backend is a fixture)
    EVIDENCE,
    MANDATORY,
    PLUGIN,
    backend,
    candidate,
    populated,
    verdicts,
)

from gatewise.errors import RegistryError, UsageError
from gatewise.registry import Registry
from gatewise.types import Candidate, GateResult


def test_records_read_back(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    assert (v["parent"], v["child"], v["errored"]) == ("arrests:v1", "arrests:v2", "arrests:v3")
    versions = registry.versions("arrests")
    assert [x.version for x in versions] == ["arrests:v1", "arrests:v2", "arrests:v3"]
    child = versions[1]
    assert child.parent == "arrests:v1" and child.plugin == "int8_dynamic" and child.status == "ok"
    assert child.promoted and child.production and not versions[0].promoted
    assert child.artifact.read_bytes() == (tmp_path / "in" / "int8.onnx").read_bytes()
    assert child.artifact == backend.home / "artifacts" / f"{child.sha256}.onnx"
    assert registry.champion("arrests") == child
    assert registry.champion("unknown-model") is None

    errored = versions[2]
    assert errored.status == "errored" and errored.sha256 is None and errored.artifact is None
    assert errored.error == "ValueError: bad graph" and errored.parent == "arrests:v1"

    shown = registry.show("arrests:v2")
    json.dumps(shown)  # JSON-ready
    assert shown["run"]["data"]["train"] == "1" * 64
    assert [g["gate"] for g in shown["gate_results"]] == list(MANDATORY)
    assert shown["gate_results"][0]["details"]["ci"] == [0.89, 0.93]
    assert shown["gate_results"][0]["evidence"]["policy_digest"] == "d" * 64
    [promotion] = shown["promotions"]
    assert [g["gate"] for g in promotion["gate_results"]] == list(MANDATORY)
    assert {g["digest"] for g in promotion["gate_results"]} == {g["entry"]["digest"] for g in shown["gate_results"]}

    report = registry.verify()
    assert report.ok, report.problems
    assert report.entries_checked == 1 + 1 + 3 + 10 + 1  # key, run, candidates, verdicts, promotion
    assert report.artifacts_checked == 2


def test_version_numbers_continue_across_runs_and_reopen(backend, tmp_path):
    registry, _ = populated(backend, tmp_path)
    registry.close()
    again = backend.open()
    again.record_run("run-2", "arrests", {}, "b" * 64, {}, [])
    assert again.register_candidate("run-2", "arrests", candidate(tmp_path / "r2", "parent", content=b"new")) == "arrests:v4"
    assert again.register_candidate("run-2", "iris", candidate(tmp_path / "r2", "other", content=b"x")) == "iris:v1"
    # the parent is looked up within the run only
    child = again.register_candidate("run-2", "arrests", candidate(tmp_path / "r2", "int8", parent="parent", content=b"y"))
    assert again.show(child)["parent"] == "arrests:v4"
    assert again.verify().ok


def test_entries_are_in_toto_statements_in_dsse_envelopes(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    [(envelope, keyid, seq)] = backend.sql(
        "SELECT envelope, keyid, seq FROM ledger WHERE ref = ? AND predicate_type = ? ORDER BY seq LIMIT 1",
        v["child"], "https://gatewise.dev/predicates/gate-result/v1")
    env = json.loads(envelope)
    assert env["payloadType"] == "application/vnd.in-toto+json"
    body = base64.b64decode(env["payload"])
    stmt = json.loads(body)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://gatewise.dev/predicates/gate-result/v1"
    assert stmt["subject"] == [{"name": v["child"], "digest": {"sha256": registry.versions()[1].sha256}}]
    assert stmt["predicate"]["ledger"]["seq"] == seq and stmt["predicate"]["gate"] == "accuracy_regression"
    # anyone with the public key checks it with nothing but `cryptography`
    [(public_b64,)] = backend.sql("SELECT public_key FROM keys WHERE keyid = ?", keyid)
    pae = b"DSSEv1 %d %s %d %s" % (len(env["payloadType"]), env["payloadType"].encode(), len(body), body)
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64)).verify(
        base64.b64decode(env["signatures"][0]["sig"]), pae)
    assert env["signatures"][0]["keyid"] == keyid


def test_promote_refuses_a_missing_gate(backend, tmp_path):
    registry = backend.open()
    version = registry.register_candidate("run-1", "m", candidate(tmp_path, "parent"))
    registry.record_gate_results(version, verdicts(gates=MANDATORY[:4]), EVIDENCE)
    with pytest.raises(RegistryError, match=r"cannot promote m:v1: no recorded result for leakage"):
        registry.promote(version)
    assert registry.champion("m") is None


def test_promote_refuses_a_failed_gate_and_the_latest_verdict_counts(backend, tmp_path):
    registry = backend.open()
    version = registry.register_candidate("run-1", "m", candidate(tmp_path, "parent"))
    registry.record_gate_results(version, verdicts(), EVIDENCE)
    registry.record_gate_results(version, verdicts(failing="drift", gates=("drift",)), EVIDENCE)
    with pytest.raises(RegistryError, match=r"cannot promote m:v1: failed drift \(entry \d+\)"):
        registry.promote(version)
    registry.record_gate_results(version, verdicts(gates=("drift",)), EVIDENCE)
    registry.promote(version)
    assert registry.champion("m").version == "m:v1"


def test_promote_refuses_an_errored_candidate_and_unknown_versions(backend, tmp_path):
    registry = backend.open()
    version = registry.register_candidate(
        "run-1", "m", Candidate(name="broken", plugin=PLUGIN, status="errored", error="timed out"))
    registry.record_gate_results(version, verdicts(), EVIDENCE)
    with pytest.raises(RegistryError, match="errored"):
        registry.promote(version)
    with pytest.raises(RegistryError, match=r"unknown version 'm:v9' \(known: m:v1\)"):
        registry.promote("m:v9")
    with pytest.raises(RegistryError, match="unknown version"):
        registry.show("nope")
    with pytest.raises(RegistryError, match="no artifact"):
        registry.artifact_path(version)


def test_promote_reads_the_ledger_not_the_projection(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    backend.sql("UPDATE gate_results SET passed = NOT passed WHERE version = ? AND gate = 'fairness'", v["parent"])
    with pytest.raises(RegistryError, match="failed fairness"):
        registry.promote(v["parent"])


def test_promotion_moves_the_alias_and_records_the_previous_version(backend, tmp_path):
    registry, v = populated(backend, tmp_path)
    newer = registry.register_candidate("run-1", "arrests", candidate(tmp_path, "again", content=b"v4"))
    registry.record_gate_results(newer, verdicts(), EVIDENCE)
    registry.promote(newer, reason="nightly retrain")
    assert registry.champion("arrests").version == newer
    [promotion] = registry.show(newer)["promotions"]
    assert promotion["previous_version"] == v["child"] and promotion["reason"] == "nightly retrain"
    assert [x.version for x in registry.versions() if x.production] == [newer]
    assert registry.verify().ok


def test_candidate_bytes_must_match_their_sha256(backend, tmp_path):
    registry = backend.open()
    good = candidate(tmp_path, "parent")
    lying = Candidate(name="parent", plugin=PLUGIN, status="ok", onnx_path=good.onnx_path, sha256="0" * 64)
    with pytest.raises(RegistryError, match="not the 0000"):
        registry.register_candidate("run-1", "m", lying)
    assert registry.versions() == []
    assert not list((backend.home / "artifacts").glob("*"))
    with pytest.raises(UsageError, match="no ONNX file"):
        registry.register_candidate("run-1", "m", Candidate(name="x", plugin=PLUGIN, status="ok"))


def test_data_rejection_and_duplicate_run(backend, tmp_path):
    registry = backend.open()
    registry.record_run("run-1", "m", {}, "a" * 64, {"dataset": "e" * 64}, [])
    with pytest.raises(RegistryError, match="already recorded"):
        registry.record_run("run-1", "m", {}, "a" * 64, {}, [])
    registry.record_data_rejection("run-1", "m", GateResult("data", False, 0.7, 0.9, "3 expectations failed",
                                                            {"failed": ["age not null"]}))
    [(kind, passed, summary, version)] = backend.sql("SELECT kind, passed, summary, version FROM gate_results")
    assert (kind, bool(passed), summary, version) == ("data", False, "3 expectations failed", None)
    assert registry.verify().ok


def test_non_finite_and_numpy_values_are_recorded(backend, tmp_path):
    np = pytest.importorskip("numpy")
    registry = backend.open()
    version = registry.register_candidate("run-1", "m", candidate(tmp_path, "parent"))
    result = GateResult("fairness", bool(np.bool_(True)), float("nan"), np.float32(0.25).item(), "undefined",
                        {"auc": np.float64(0.5), "n": np.int64(7), "flags": np.array([1, 2]), "inf": float("inf")})
    registry.record_gate_results(version, [result], EVIDENCE)
    [shown] = registry.show(version)["gate_results"]
    assert shown["value"] is None and shown["details"] == {"auc": 0.5, "n": 7, "flags": [1, 2], "inf": "Infinity"}
    assert registry.verify().ok


def test_key_file_is_private_and_introduced_by_the_first_entry(backend):
    registry = backend.open()
    key = backend.home / "keys" / "pipeline.ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    [(seq, ptype, keyid)] = backend.sql("SELECT seq, predicate_type, keyid FROM ledger")
    assert (seq, ptype) == (1, "https://gatewise.dev/predicates/key/v2")
    assert registry.verify().keys == [keyid]
    assert "PRIVATE" not in repr(registry.pipeline_key)


def test_a_different_key_is_refused(backend):
    backend.open().close()
    (backend.home / "keys" / "pipeline.ed25519").unlink()
    with pytest.raises(RegistryError, match="is not a key of the registry"):
        backend.open()


def test_corrupt_database_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "registry.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RegistryError, match="corrupt or not a SQLite database"):
        Registry.open(home, url=None)
    with pytest.raises(RegistryError, match="corrupt or not a SQLite database"):
        Registry.open(home, url=None, create=False)


def test_unreachable_url(tmp_path):
    with pytest.raises(RegistryError, match="cannot reach the registry at postgresql\\+psycopg://nobody:\\*\\*\\*@127.0.0.1:9/x: "):
        Registry.open(tmp_path, url="postgresql+psycopg://nobody:secret@127.0.0.1:9/x")
    with pytest.raises(RegistryError, match="unsupported registry URL"):
        Registry.open(tmp_path, url="mysql://x@localhost/y")


def test_reading_never_creates_a_registry(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    home = tmp_path / "home"
    with pytest.raises(RegistryError, match=r"no registry at .*registry.db: run `gatewise run` first"):
        Registry.open(home, create=False)
    assert not home.exists()


def test_url_from_environment(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("GATEWISE_REGISTRY_URL", f"sqlite:///{other}")
    Registry.open(tmp_path / "home").close()
    assert other.exists() and not (tmp_path / "home" / "registry.db").exists()
