"""End to end: a real `gatewise run` deploys its promoted version with `local` and `bundle`, and a
device verifies the bundle with `gatewise deploy verify`."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import pytest
from test_deploy_support import gatewise

from gatewise.registry import statements as st
from gatewise.types import sha256_file

pytestmark = pytest.mark.e2e

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "gatewise.toml"


@pytest.fixture(scope="module")
def deployed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy-e2e")
    config = tmp / "gatewise.toml"
    config.write_text(DEMO_CONFIG.read_text() + f'\n[deploy]\ndeployers = ["local", "bundle"]\n\n[deploy.params.bundle]\ndir = "{tmp / "out"}"\n')
    tomllib.loads(config.read_text())  # the test's own config must be valid TOML
    home = tmp / "home"
    done = gatewise(home, "run", "--config", str(config), "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, tmp, json.loads(done.stdout)


def test_a_run_deploys_its_promoted_version_with_each_deployer(deployed_run):
    home, tmp, run = deployed_run
    version = run["promoted"]
    assert [(d["deployer"], d["outcome"], d["version"]) for d in run["deployments"]] == [
        ("local", "deployed", version), ("bundle", "deployed", version)]
    with sqlite3.connect(home / "registry.db") as conn:
        rows = conn.execute("SELECT seq, digest, envelope FROM ledger WHERE predicate_type = ? ORDER BY seq", (st.DEPLOYMENT,)).fetchall()
    assert [(seq, digest) for seq, digest, _ in rows] == [(d["entry"]["seq"], d["entry"]["digest"]) for d in run["deployments"]]
    signed = [json.loads(st.open_envelope(envelope)[0])["predicate"] for _, _, envelope in rows]
    assert [s["target"] for s in signed] == ["local", str((tmp / "out" / version.replace(":", "-")).absolute())]
    assert all(s["deployer"]["distribution"] == "gatewise" and s["deployer"]["version"] for s in signed)
    verified = gatewise(home, "registry", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_runs_bundle_verifies_on_a_device(deployed_run):
    home, tmp, run = deployed_run
    folder = tmp / "out" / run["promoted"].replace(":", "-")
    promoted = next(c for c in run["candidates"] if c["version"] == run["promoted"])
    assert sha256_file(folder / "model.onnx") == promoted["sha256"]
    done = gatewise(tmp / "device-home", "deploy", "verify", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"OK: {run['promoted']} sha256 {promoted['sha256']} is a promoted, gate-passed version")


def test_deploy_by_hand_re_deploys_the_live_version(deployed_run):
    home, tmp, run = deployed_run
    done = gatewise(home, "deploy", run["promoted"], "--target", "bundle", "--dir", str(tmp / "by-hand"))
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp / "by-hand" / run["promoted"].replace(":", "-")
    assert done.stdout.startswith(f"deployed {run['promoted']} with bundle to {folder}")
    assert gatewise(home, "deploy", "verify", str(folder)).returncode == 0
    unknown = gatewise(home, "deploy", run["promoted"], "--target", "kubernetes")
    assert unknown.returncode == 2 and unknown.stderr.strip() == "gatewise: error: unknown deployer 'kubernetes' (known: bundle, local)"
