"""End to end: the real `gatewise` command, the real Prefect flow, the bundled data, a real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# The repository's own gatewise.toml, which `make demo` runs with (it relaxes the fairness limits
# in the open: see the file).
DEMO_CONFIG = str(Path(__file__).resolve().parent.parent / "gatewise.toml")


def gatewise(home, *args, timeout=600):
    env = {**os.environ, "GATEWISE_HOME": str(home)}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "gatewise.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e") / "home"


@pytest.fixture(scope="module")
def first_run(home):
    done = gatewise(home, "run", "--config", DEMO_CONFIG, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_first_run_promotes_a_gated_candidate(first_run):
    assert first_run["promoted"]
    names = [c["name"] for c in first_run["candidates"]]
    assert names[0] == "parent" and "int8_dynamic" in names
    promoted = next(c for c in first_run["candidates"] if c["version"] == first_run["promoted"])
    assert set(promoted["gates"]) == {"accuracy_regression", "fairness", "robustness", "drift", "leakage"}
    assert all(g["passed"] for g in promoted["gates"].values())
    assert len(promoted["sha256"]) == 64
    assert first_run["champion"] is None


def test_second_run_rescores_the_champion(home, first_run):
    done = gatewise(home, "run", "--config", DEMO_CONFIG, "--json")
    assert done.returncode in (0, 3), done.stderr[-3000:]
    second = json.loads(done.stdout)
    assert second["champion"] == {"version": first_run["promoted"], "rescored": True}
    for candidate in second["candidates"]:
        accuracy = candidate["gates"]["accuracy_regression"]
        assert accuracy["details"]["champion_rescored"] is True
        assert accuracy["details"]["champion_version"] == first_run["promoted"]
        assert "drop vs champion" in accuracy["summary"]


def test_default_policy_blocks_and_prints_one_line_per_failed_gate(tmp_path):
    # No gatewise.toml in this folder: the default fairness limits (0.20) apply, and the
    # bundled data's disparity by colour blocks every candidate.
    env = {**os.environ, "GATEWISE_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "gatewise.cli", "run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 3, done.stderr[-3000:]
    failed = [line for line in done.stdout.splitlines() if ": fairness failed:" in line]
    from gatewise.config import Settings

    candidates = 1 + len(Settings().compress.compressors)  # the parent and one per default compressor
    assert len(failed) == candidates and all("colour" in line for line in failed)
    assert "nothing promoted" in done.stdout


def test_registry_lists_and_verifies(home, first_run):
    listing = gatewise(home, "registry", "ls", "--json")
    assert listing.returncode == 0, listing.stderr
    assert first_run["promoted"] in listing.stdout
    verify = gatewise(home, "registry", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_editing_a_verdict_in_sqlite_fails_verify(home, first_run, tmp_path):
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    with sqlite3.connect(copy / "registry.db") as db:
        changed = db.execute("UPDATE gate_results SET value = value + 0.5 WHERE gate = 'fairness'").rowcount
    assert changed >= 1
    verify = gatewise(copy, "registry", "verify")
    assert verify.returncode != 0
    assert "gate_results" in verify.stdout + verify.stderr


def test_label_copy_is_caught_by_the_leakage_gate(tmp_path):
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True)
    frame["released_copy"] = frame["released"]
    data = tmp_path / "leaky.csv"
    frame.to_csv(data, index=False)
    done = gatewise(tmp_path / "home", "run", "--data", str(data), "--label", "released", "--positive", "Yes",
                    "--sensitive", "colour,sex", "--config", DEMO_CONFIG, "--json")
    assert done.returncode == 3, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["promoted"] is None
    assert all(not c["gates"]["leakage"]["passed"] for c in report["candidates"] if c["status"] == "ok")


def test_missing_label_column_exits_2_with_one_line(tmp_path):
    from sklego.datasets import load_arrests

    data = tmp_path / "nolabel.csv"
    load_arrests(as_frame=True).drop(columns=["released"]).to_csv(data, index=False)
    done = gatewise(tmp_path / "home", "run", "--data", str(data), "--label", "released", "--positive", "Yes")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "label column 'released' not found" in lines[0]
    assert not (tmp_path / "home" / "registry.db").exists()


def test_help_loads_no_heavy_library():
    code = "import sys; from gatewise.cli import build_parser; build_parser().format_help(); " \
           "heavy = [m for m in ('torch', 'prefect', 'evidently', 'great_expectations', 'onnxruntime', 'sqlmodel', 'pandas') if m in sys.modules]; print(heavy)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_missing_labels_are_rejected_by_the_data_gate_and_recorded(tmp_path):
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True)
    frame.loc[:9, "released"] = None
    data = tmp_path / "gaps.csv"
    frame.to_csv(data, index=False)
    home = tmp_path / "home"
    done = gatewise(home, "run", "--data", str(data), "--label", "released", "--positive", "Yes",
                    "--sensitive", "colour,sex", "--config", DEMO_CONFIG)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "data gate FAILED" in done.stdout and "released" in done.stdout
    assert "nothing trained" in done.stdout
    listing = gatewise(home, "registry", "ls", "--json")
    assert listing.returncode == 0 and "gaps:v1" not in listing.stdout
    assert gatewise(home, "registry", "verify").returncode == 0
