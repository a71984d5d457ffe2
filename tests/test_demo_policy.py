"""`make demo` signs the demo's relaxed fairness limits as the gating policy, by a named approver
with the reason, on a fresh home and again on a second run (the steps before its `gatewise run`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def make_demo_policy(home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEWISE_HOME": str(home)}
    env.pop("GATEWISE_REGISTRY_URL", None)
    # BIN: this venv's scripts; -o: never (re)install the venv from here, whatever its stamp says.
    return subprocess.run(["make", "-s", "demo-policy", "-o", ".venv/.installed", f"BIN={Path(sys.executable).parent}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed here")
def test_make_demo_signs_the_relaxed_limits_on_a_fresh_home_and_again(tmp_path):
    home = tmp_path / "home"
    first = make_demo_policy(home)
    assert first.returncode == 0, first.stdout + first.stderr
    second = make_demo_policy(home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already the active policy" in second.stdout
    env = {**os.environ, "GATEWISE_HOME": str(home)}
    shown = json.loads(subprocess.run([sys.executable, "-m", "gatewise.cli", "policy", "show", "--json"], env=env,
                                      capture_output=True, text=True, timeout=60).stdout)
    assert shown["approver"]["name"] == "demo-reviewer"
    assert "disparity by colour" in shown["reason"]
    assert shown["gates"]["fairness"]["max_demographic_parity_difference"] == 0.45
    keys = json.loads(subprocess.run([sys.executable, "-m", "gatewise.cli", "keys", "show", "--json"], env=env,
                                     capture_output=True, text=True, timeout=60).stdout)
    names = [(k["role"], k["name"]) for k in (keys["keys"] if isinstance(keys, dict) else keys)]
    assert ("pipeline", "demo-operator") in names and ("approver", "demo-reviewer") in names
