"""The signed gating policy through the real CLI: `policy set|show|history`, and real runs held to it.

One module-scoped registry is built by real runs (Prefect, the MLP trainer, ONNX Runtime, SQLite),
kept short with no compressors: a policy signed by an approver, a run stricter than it (promoted,
citing the policy entry), a stricter policy, then a run looser than that one (registered, not
promoted, and told which threshold and by how much).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

FAST = """
[compress]
compressors = []

[gates.fairness]
max_demographic_parity_difference = {limit}
max_equalized_odds_difference = {limit}
"""


def cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEWISE_HOME": str(home)}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


def config(folder: Path, name: str, limit: float) -> Path:
    path = folder / name
    path.write_text(FAST.format(limit=limit))
    return path


@pytest.fixture(scope="module")
def governed(tmp_path_factory):
    """A registry with two signed policies (0.50, then 0.45) and two runs: one stricter than the
    policy it ran under, one looser."""
    folder = tmp_path_factory.mktemp("policy")
    home = folder / "home"
    steps = {}
    for args in (("keys", "init"), ("keys", "init", "--approver", "ada")):
        done = cli(home, *args)
        assert done.returncode == 0, done.stderr
    steps["set1"] = cli(home, "policy", "set", str(config(folder, "p50.toml", 0.50)), "--approver", "ada", "--reason", "colour disparity of the data itself")
    assert steps["set1"].returncode == 0, steps["set1"].stderr
    steps["strict"] = cli(home, "run", "--config", str(config(folder, "run45.toml", 0.45)), "--json")
    steps["set2"] = cli(home, "policy", "set", str(folder / "run45.toml"), "--approver", "ada", "--reason", "tightened after review")
    assert steps["set2"].returncode == 0, steps["set2"].stderr
    steps["loose"] = cli(home, "run", "--config", str(folder / "p50.toml"))
    return home, folder, steps


def test_policy_set_is_signed_by_the_named_approver(governed):
    home, _, steps = governed
    assert "signed by approver ada" in steps["set1"].stdout
    shown = json.loads(cli(home, "policy", "show", "--json").stdout)
    assert shown["approver"]["name"] == "ada" and shown["reason"] == "tightened after review"
    assert shown["gates"]["fairness"]["max_demographic_parity_difference"] == 0.45
    assert shown["gates"]["accuracy_regression"]["min_metric"] == 0.60  # defaults filled in, all five gates
    assert set(shown["gates"]) == {"accuracy_regression", "fairness", "robustness", "drift", "leakage"}
    history = cli(home, "policy", "history")
    assert history.returncode == 0
    assert "changed from the defaults: fairness.max_demographic_parity_difference 0.2 -> 0.5" in history.stdout
    assert "fairness.max_demographic_parity_difference 0.5 -> 0.45" in history.stdout
    verify = cli(home, "registry", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_stricter_run_promotes_and_cites_the_policy(governed):
    home, _, steps = governed
    run = steps["strict"]
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    promoted = document["promoted"]
    first = json.loads(cli(home, "policy", "history", "--json").stdout)[0]
    assert document["policy"]["seq"] == first["entry"]["seq"] and document["looser_than_policy"] == []
    shown = json.loads(cli(home, "registry", "show", promoted, "--json").stdout)
    assert len(shown["plugin"]["code_sha256"]) == 64  # the built-in export too: every producer's code is hashed
    cited = shown["promotions"][0]["policy"]
    assert (cited["seq"], cited["digest"], cited["approver"]) == (first["entry"]["seq"], first["entry"]["digest"], "ada")
    text = cli(home, "registry", "show", promoted).stdout
    assert f"policy entry {first['entry']['seq']}" in text and "ada" in text
    history = cli(home, "registry", "history", document["run"]["model"]).stdout
    assert f"policy entry {first['entry']['seq']}" in history


def test_a_looser_run_registers_but_cannot_promote(governed):
    home, _, steps = governed
    run = steps["loose"]
    assert run.returncode == 3, run.stdout + run.stderr
    assert "looser than the signed policy" in run.stdout
    assert "max_demographic_parity_difference = 0.5 vs 0.45 signed (looser by 0.05)" in run.stdout
    versions = json.loads(cli(home, "registry", "ls", "--json").stdout)
    assert len(versions) == 2  # both runs registered their parent
    # Nor can anyone promote it by hand: the approver signs a looser policy first.
    loose_version = max(versions, key=lambda v: v["number"])["version"]
    by_hand = cli(home, "promote", loose_version, "--approver", "ada", "--reason", "try")
    assert by_hand.returncode == 3 and "looser than the signed policy" in by_hand.stderr


def test_policy_mistakes_are_one_line(governed, tmp_path):
    home, folder, _ = governed
    missing = cli(home, "policy", "set", str(tmp_path / "nope.toml"), "--approver", "ada", "--reason", "x")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "not found" in missing.stderr
    (tmp_path / "bad.toml").write_text("[gates.fairness]\nmax_demographic_parity_difference = 2\n")
    bad = cli(home, "policy", "set", str(tmp_path / "bad.toml"), "--approver", "ada", "--reason", "x")
    assert bad.returncode == 2 and "max_demographic_parity_difference" in bad.stderr
    nobody = cli(home, "policy", "set", str(folder / "p50.toml"), "--approver", "intruder", "--reason", "x")
    assert nobody.returncode != 0 and "intruder" in nobody.stderr and "Traceback" not in nobody.stderr
    same = cli(home, "policy", "set", str(folder / "run45.toml"), "--approver", "ada", "--reason", "again")
    assert same.returncode == 0 and "already the active policy" in same.stdout and "nothing signed" in same.stdout
    fresh = cli(tmp_path / "empty", "policy", "show")
    assert fresh.returncode == 2 and fresh.stderr.count("\n") == 1
