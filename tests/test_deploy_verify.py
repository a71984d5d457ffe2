"""`gatewise deploy verify DIR`: a device checks a deploy bundle with no database before loading it.

One real bundle is written per module; each test tampers with its own copy.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_deploy_support import builtins, gatewise, promoted_registry, tiny_onnx

from gatewise.errors import UsageError
from gatewise.flows.deploy import deploy_version
from gatewise.registry.release import verify_deploy_bundle
from gatewise.registry.statements import pae
from gatewise.types import sha256_file


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(home, a bundle folder written by the `bundle` deployer, the version's sha256)."""
    tmp = tmp_path_factory.mktemp("deploy")
    home, registry, version = promoted_registry(tmp)
    try:
        (outcome,) = deploy_version(registry, version, ["bundle"], {"bundle": {"dir": str(tmp / "out")}}, builtins())
        sha = registry.version(version).sha256
    finally:
        registry.close()
    assert outcome.deployed, outcome.detail
    return home, Path(outcome.target), sha


@pytest.fixture
def bundle(written, tmp_path):
    """A private copy of the bundle to tamper with."""
    copy = tmp_path / "arrests-v1"
    shutil.copytree(written[1], copy)
    return copy


def entry(bundle: Path, kind: str) -> Path:
    return next(p for p in sorted((bundle / "entries").iterdir()) if f"-{kind}-" in p.name)


def rehash(bundle: Path, name: str) -> None:
    """Update the manifest after an edit, as a careful attacker would: only signatures can catch it now."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(bundle / name), "bytes": (bundle / name).stat().st_size}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def lines(done) -> list[str]:
    return done.stdout.strip().splitlines()


def test_a_written_bundle_verifies_with_no_database(written, tmp_path):
    home, folder, sha = written
    moved = tmp_path / "device" / "arrests-v1"
    shutil.copytree(folder, moved)  # another place, and a home with no registry at all
    done = gatewise(tmp_path / "empty-home", "deploy", "verify", str(moved))
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done)[-1].startswith(f"OK: arrests:v1 sha256 {sha} is a promoted, gate-passed version; 8 signed entries")
    assert not (tmp_path / "empty-home").exists()


def test_the_registry_key_can_be_pinned(written, tmp_path):
    home, folder, _ = written
    keyid = json.loads((folder / "keys.json").read_text())["keys"][0]["keyid"]
    assert verify_deploy_bundle(folder, (keyid,)).ok
    done = gatewise(tmp_path, "deploy", "verify", str(folder), "--trusted-key", "f" * 64)
    assert done.returncode == 4
    assert f"genesis key {keyid[:16]} is not one of the trusted keys given" in done.stdout


def test_an_edited_onnx_file_is_rejected(bundle, tmp_path):
    tiny_onnx(bundle / "model.onnx", 3.0)  # a valid model, other weights, contract unchanged
    done = gatewise(tmp_path, "deploy", "verify", str(bundle))
    assert done.returncode == 4, done.stdout + done.stderr
    assert any(line.startswith("model.onnx: has sha256 ") and "the file was changed after the bundle was written" in line
               for line in lines(done))
    assert lines(done)[-1].startswith("FAILED:") and "do not load this model" in lines(done)[-1]
    # With the manifest updated too, the signed entries still name the gated bytes.
    rehash(bundle, "model.onnx")
    problems = [str(p) for p in verify_deploy_bundle(bundle).problems]
    assert any("names artifact sha256" in p and "but model.onnx has" in p for p in problems), problems


def test_an_edited_manifest_is_rejected(bundle, tmp_path):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["contract.json"]["sha256"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    done = gatewise(tmp_path, "deploy", "verify", str(bundle))
    assert done.returncode == 4
    assert "contract.json: has sha256 " in done.stdout and "but manifest.json lists 0000000000000000..." in done.stdout


def test_a_manifest_naming_another_version_is_rejected(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = "arrests:v7"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    problems = [str(p) for p in verify_deploy_bundle(bundle).problems]
    assert any("is about version arrests:v1, not arrests:v7" in p for p in problems), problems


def test_a_missing_entry_file_is_rejected(bundle, tmp_path):
    removed = entry(bundle, "gate-result")
    removed.unlink()
    done = gatewise(tmp_path, "deploy", "verify", str(bundle))
    assert done.returncode == 4
    name = f"entries/{removed.name}"
    assert f"{name}: is listed in manifest.json but missing from the bundle" in lines(done)
    assert any("as the accuracy_regression result, which is not among the bundle's verified entries" in line for line in lines(done))


def test_a_missing_signature_is_rejected_even_with_a_consistent_manifest(bundle, tmp_path):
    promotion = entry(bundle, "promotion")
    envelope = json.loads(promotion.read_text())
    envelope["signatures"] = []
    promotion.write_text(json.dumps(envelope))
    rehash(bundle, f"entries/{promotion.name}")
    done = gatewise(tmp_path, "deploy", "verify", str(bundle))
    assert done.returncode == 4
    assert f"entries/{promotion.name}: cannot be read: envelope must carry exactly one signature" in lines(done)
    assert any("holds no verified promotion or rollback that makes arrests:v1 live" in line for line in lines(done))


def test_an_entry_re_signed_with_another_key_is_rejected(bundle):
    """Flip a gate verdict and sign it with a key of the attacker's own: no key entry vouches for it."""
    result = entry(bundle, "gate-result")
    envelope = json.loads(result.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["value"] = 0.99
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    forger = Ed25519PrivateKey.generate()
    envelope["payload"] = base64.b64encode(body).decode()
    envelope["signatures"] = [{"keyid": "ab" * 32, "sig": base64.b64encode(forger.sign(pae(envelope["payloadType"], body))).decode()}]
    result.write_text(json.dumps(envelope))
    rehash(bundle, f"entries/{result.name}")
    problems = [str(p) for p in verify_deploy_bundle(bundle).problems]
    assert any(p.startswith(f"entries/{result.name}: is signed by key abababababababab, which no key entry") for p in problems), problems


def test_an_unlisted_extra_file_is_named(bundle):
    (bundle / "entries" / "99999999-promotion-v1.dsse.json").write_text("{}")
    problems = [str(p) for p in verify_deploy_bundle(bundle).problems]
    assert "entries/99999999-promotion-v1.dsse.json: is not listed in manifest.json" in problems
    assert any(p.startswith("entries/99999999-promotion-v1.dsse.json: cannot be read") for p in problems)


def test_a_folder_that_is_not_a_bundle_is_bad_input(tmp_path):
    with pytest.raises(UsageError, match="is not a deploy bundle"):
        verify_deploy_bundle(tmp_path)
    done = gatewise(tmp_path, "deploy", "verify", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and done.stderr.strip() == f"gatewise: error: no deploy bundle at {tmp_path / 'nowhere'}: not a directory"
