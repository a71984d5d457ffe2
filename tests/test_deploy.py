"""The deployment stage: deployers get the live version, each outcome is signed, bundles verify offline.

A real registry (SQLite file) holds a small real ONNX model with its input contract, gated and
promoted; deployers run through the plugin manager, and `gatewise deploy` runs as a command.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from test_deploy_support import builtins, gatewise, promoted_registry, register, tiny_onnx

from gatewise.errors import UsageError
from gatewise.flows.deploy import check_deployers, deploy_version
from gatewise.hookspecs import hookimpl
from gatewise.registry import statements as st
from gatewise.types import sha256_file


@pytest.fixture
def promoted(tmp_path, monkeypatch):
    """A registry whose model has one promoted, gate-passed version; returns (home, registry, version)."""
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    home, registry, version = promoted_registry(tmp_path)
    yield home, registry, version
    registry.close()


def deployments(home: Path) -> list[dict]:
    """The predicates of every deployment entry, read from the SQLite file as an auditor would."""
    with sqlite3.connect(home / "registry.db") as conn:
        envelopes = [row[0] for row in conn.execute(
            "SELECT envelope FROM ledger WHERE predicate_type = ? ORDER BY seq", (st.DEPLOYMENT,))]
    return [json.loads(st.open_envelope(envelope)[0])["predicate"] for envelope in envelopes]


@pytest.fixture
def bundle(promoted, tmp_path):
    """A bundle of the promoted version written by the `bundle` deployer; returns its folder."""
    home, registry, version = promoted
    (outcome,) = deploy_version(registry, version, ["bundle"], {"bundle": {"dir": str(tmp_path / "out")}}, builtins())
    assert outcome.deployed, outcome.detail
    return Path(outcome.target)


# -- deployers run, and each outcome is a signed entry ---------------------------------------------


def test_local_and_bundle_deploy_the_live_version_and_sign_each_outcome(promoted, tmp_path):
    home, registry, version = promoted
    outcomes = deploy_version(registry, version, ["local", "bundle"], {"bundle": {"dir": str(tmp_path / "out")}}, builtins())
    assert [(o.deployer, o.outcome) for o in outcomes] == [("local", "deployed"), ("bundle", "deployed")]
    assert outcomes[1].target == str((tmp_path / "out" / "arrests-v1").absolute())
    signed = deployments(home)
    assert [(d["deployer"]["name"], d["outcome"], d["version"]) for d in signed] == [
        ("local", "deployed", version), ("bundle", "deployed", version)]
    assert signed[0]["deployer"]["distribution"] == "gatewise" and signed[0]["target"] == "local"
    assert registry.verify(check_artifacts=True).ok


def test_bundle_holds_model_contract_entries_keys_and_manifest(bundle, promoted):
    _, registry, version = promoted
    names = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    kinds = sorted(n.split("-", 1)[1] for n in names if n.startswith("entries/"))
    assert kinds == sorted(["key-v2.dsse.json", "candidate-v1.dsse.json", "promotion-v2.dsse.json"]
                           + ["gate-result-v1.dsse.json"] * 5)
    assert {"model.onnx", "contract.json", "keys.json", "manifest.json"} <= set(names)
    assert sha256_file(bundle / "model.onnx") == registry.version(version).sha256
    contract = json.loads((bundle / "contract.json").read_text())
    assert contract["input"] == "features" and contract["spec"]["categorical"] == [["sex", ["Female", "Male"]]]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["version"] == version and set(manifest["files"]) == set(names) - {"manifest.json"}


def test_a_crashing_third_party_deployer_is_recorded_failed_and_the_promotion_stands(promoted):
    home, registry, version = promoted

    class Crashing:
        name = "edge_fleet"

        def deploy(self, release, params):
            raise ConnectionError("fleet API unreachable")

    class FleetPlugin:
        @hookimpl
        def gatewise_deployers(self):
            return [Crashing()]

    plugins = builtins(FleetPlugin())
    outcomes = deploy_version(registry, version, ["edge_fleet", "local"], {}, plugins)
    assert [(o.deployer, o.outcome) for o in outcomes] == [("edge_fleet", "failed"), ("local", "deployed")]
    assert outcomes[0].detail == {"error": "ConnectionError: fleet API unreachable"}
    failed = deployments(home)[0]
    assert failed["outcome"] == "failed" and failed["detail"]["error"] == "ConnectionError: fleet API unreachable"
    assert failed["deployer"]["name"] == "edge_fleet" and failed["deployer"]["distribution"] == "gatewise"
    assert registry.champion("arrests").version == version  # the promotion stands
    assert registry.verify(check_artifacts=True).ok


def test_a_deployer_returning_no_deployed_is_recorded_failed(promoted):
    _, registry, version = promoted

    class Sloppy:
        name = "sloppy"

        def deploy(self, release, params):
            return "done"

    class SloppyPlugin:
        @hookimpl
        def gatewise_deployers(self):
            return [Sloppy()]

    (outcome,) = deploy_version(registry, version, ["sloppy"], {}, builtins(SloppyPlugin()))
    assert outcome.outcome == "failed" and "not a gatewise.hookspecs.Deployed" in outcome.detail["error"]


def test_swapped_artifact_bytes_fail_the_local_deployment(promoted):
    _, registry, version = promoted
    artifact = registry.artifact_path(version)
    os.chmod(artifact, 0o644)
    tiny_onnx(artifact, 0.1)  # valid ONNX, other weights: not the bytes that were gated
    (outcome,) = deploy_version(registry, version, ["local"], {}, builtins())
    assert outcome.outcome == "failed" and "gatewise registry verify" in outcome.detail["error"]
    assert registry.champion("arrests").version == version


def test_a_version_that_is_not_live_is_refused_and_recorded(promoted, tmp_path):
    _, registry, version = promoted
    newer = register(registry, tmp_path / "in", "run-2", 0.7)  # gated but not promoted
    (outcome,) = deploy_version(registry, newer, ["local"], {}, builtins())
    assert outcome.outcome == "failed"
    assert f"{newer} is not the production version of arrests (production: {version})" in outcome.detail["error"]


def test_a_rollback_bundle_carries_the_rollback_and_the_promotion_it_restores(promoted, tmp_path):
    home, registry, first = promoted
    second = register(registry, tmp_path / "in", "run-2", 0.7)
    registry.promote(second)
    registry.rollback("arrests", reason="bad answers in the field")
    (outcome,) = deploy_version(registry, first, ["bundle"], {"bundle": {"dir": str(tmp_path / "out")}}, builtins())
    assert outcome.deployed, outcome.detail
    kinds = [p.name.split("-", 1)[1] for p in sorted((Path(outcome.target) / "entries").iterdir())]
    assert "rollback-v1.dsse.json" in kinds and "promotion-v2.dsse.json" in kinds
    done = gatewise(home, "deploy", "verify", outcome.target)
    assert done.returncode == 0, done.stdout + done.stderr


# -- configuration is checked before anything runs -------------------------------------------------


def test_deployer_names_and_params_are_checked_before_the_run():
    plugins = builtins()
    with pytest.raises(UsageError, match=r"unknown deployer 'kubernetes' \(known: bundle, local\)"):
        check_deployers(["kubernetes"], {}, plugins)
    with pytest.raises(UsageError, match=r"deployer 'bundle' needs a folder: set dir"):
        check_deployers(["bundle"], {}, plugins)
    with pytest.raises(UsageError, match=r"deployer 'bundle': unknown parameter 'folder'"):
        check_deployers(["bundle"], {"bundle": {"dir": "x", "folder": "y"}}, plugins)
    with pytest.raises(UsageError, match=r"\[deploy.params.bundle\] configures a deployer that is not in \[deploy\] deployers"):
        check_deployers(["local"], {"bundle": {"dir": "x"}}, plugins)


def test_a_bundle_target_that_is_someone_elses_folder_is_left_alone(promoted, tmp_path):
    _, registry, version = promoted
    precious = tmp_path / "out" / "arrests-v1"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("mine")
    (outcome,) = deploy_version(registry, version, ["bundle"], {"bundle": {"dir": str(tmp_path / "out")}}, builtins())
    assert outcome.outcome == "failed" and "is not a deploy bundle" in outcome.detail["error"]
    assert (precious / "notes.txt").read_text() == "mine"


def test_builtin_deployers_satisfy_the_protocol_and_are_documented():
    from gatewise.hookspecs import Deployer
    from gatewise.plugins.deployers import BundleParams

    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    plugins = builtins()
    assert plugins.names("deployer") == ["bundle", "local"]
    for name in plugins.names("deployer"):
        registered = plugins.get("deployer", name)
        assert isinstance(registered.component, Deployer) and registered.info.distribution == "gatewise"
        assert f"`{name}`" in text
    for field_name in BundleParams.model_fields:
        assert f"`{field_name}`" in text


def test_a_bad_deploy_config_stops_the_run_before_anything_is_recorded(tmp_path):
    config = tmp_path / "gatewise.toml"
    config.write_text('[deploy]\ndeployers = ["local", "bundle"]\n')
    done = gatewise(tmp_path / "home", "run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip() == ("gatewise: error: deployer 'bundle' needs a folder: set dir = \"PATH\" in "
                                   "[deploy.params.bundle] (or pass --dir)")
    assert not (tmp_path / "home" / "registry.db").exists()


def test_deploy_by_hand_names_what_is_wrong_in_one_line(promoted, tmp_path):
    home, registry, version = promoted
    unknown = gatewise(home, "deploy", "arrests:v9", "--target", "local")
    assert unknown.returncode == 2 and unknown.stderr.startswith("gatewise: error: unknown version 'arrests:v9'")
    newer = register(registry, tmp_path / "in", "run-2", 0.7)
    not_live = gatewise(home, "deploy", newer, "--target", "local")
    assert not_live.returncode == 1
    assert not_live.stdout.strip().startswith(f"deployment of {newer} with local FAILED (entry ")
    assert f"is not the production version of arrests (production: {version})" in not_live.stdout
    mixed = gatewise(home, "deploy", "verify", str(tmp_path), "--target", "bundle")
    assert mixed.returncode == 2 and "reads only the folder" in mixed.stderr
    no_bundle_target = gatewise(home, "deploy", version, "--dir", str(tmp_path / "out"))
    assert no_bundle_target.returncode == 2 and "--dir is the bundle deployer's folder: add --target bundle" in no_bundle_target.stderr


def test_a_waived_promotion_bundles_the_waiver_and_the_approvers_key(promoted, tmp_path):
    home, registry, first = promoted
    waived = register(registry, tmp_path / "in", "run-2", 0.7, failing="fairness")
    registry.introduce_approver("reviewer")
    registry.approve_promotion(waived, approver="reviewer", reason="accepted by the review board", waive=["fairness"])
    (outcome,) = deploy_version(registry, waived, ["bundle"], {"bundle": {"dir": str(tmp_path / "out")}}, builtins())
    assert outcome.deployed, outcome.detail
    kinds = [p.name.split("-", 1)[1] for p in sorted((Path(outcome.target) / "entries").iterdir())]
    assert {"key-v2.dsse.json", "waiver-v1.dsse.json", "promotion-v2.dsse.json"} <= set(kinds)
    done = gatewise(home, "deploy", "verify", outcome.target)
    assert done.returncode == 0, done.stdout + done.stderr
    # Without the waiver, the failed fairness result stands uncovered.
    next(p for p in (Path(outcome.target) / "entries").iterdir() if "-waiver-" in p.name).unlink()
    done = gatewise(home, "deploy", "verify", outcome.target)
    assert done.returncode == 4
    assert any("relies on a failed fairness result" in line and "no verified waiver in the bundle covers" in line
               for line in done.stdout.splitlines())
