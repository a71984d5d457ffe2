"""The signed run outcome: one entry per run, after its run entry, saying how the run ended (promoted,
blocked, data_rejected, interrupted, failed), the version promoted and the compressors skipped with
their reasons. Verify and the audit bundle accept it and check it cites its run, once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatewise.errors import RegistryError, UsageError
from gatewise.flows.steps import RunEnding
from gatewise.registry import Registry
from gatewise.registry import statements as st
from gatewise.registry.bundle import export_bundle, verify_bundle
from gatewise.registry.signed import SignedLedger
from gatewise.types import Candidate
from test_registry_support import PLUGIN

STANDALONE = Path(__file__).resolve().parent.parent / "docs" / "verify_bundle.py"  # needs only cryptography
SKIPPED = Candidate(name="int8_static", plugin=PLUGIN, status="skipped", parent="parent", error="no MatMul or Gemm to quantize")


def started(tmp_path, run_id: str = "run-1") -> Registry:
    registry = Registry.open(tmp_path / "home")
    registry.record_run(run_id, "arrests", {}, "a" * 64, {"dataset": "e" * 64}, [])
    return registry


def outcomes(registry: Registry, run_id: str) -> list:
    with registry.reading() as conn:
        return SignedLedger(conn).about(run_id, (st.RUN_OUTCOME,))


def test_an_outcome_is_signed_once_citing_its_run_entry_with_the_skipped_compressors(tmp_path):
    registry = started(tmp_path)
    registry.record_outcome("run-1", "blocked", skipped=[SKIPPED])
    [entry] = outcomes(registry, "run-1")
    p = entry.predicate
    assert (p["outcome"], p["promoted"], p["model"]) == ("blocked", None, "arrests")
    assert p["skipped"] == [{"candidate": "int8_static", "reason": "no MatMul or Gemm to quantize", "plugin": PLUGIN.record()}]
    with registry.reading() as conn:
        run = SignedLedger(conn).about("run-1", (st.RUN,))[0]
    assert p["run"] == {"seq": run.seq, "digest": run.digest}
    with pytest.raises(RegistryError, match="already has a signed outcome"):
        registry.record_outcome("run-1", "promoted")
    with pytest.raises(RegistryError, match="no signed run entry"):
        registry.record_outcome("run-2", "blocked")
    with pytest.raises(UsageError, match="unknown run outcome 'done'"):
        registry.record_outcome("run-1", "done")
    assert registry.verify().ok
    bundle = tmp_path / "bundle"
    export_bundle(registry, bundle)
    assert verify_bundle(bundle).ok
    standalone = subprocess.run([sys.executable, str(STANDALONE), str(bundle), "--pin", registry.keys()[0].keyid], capture_output=True, text=True, timeout=120)
    assert standalone.returncode == 0, standalone.stdout + standalone.stderr
    registry.close()


def test_verify_names_an_outcome_of_no_earlier_run_and_a_second_outcome(tmp_path):
    registry = started(tmp_path)
    registry.record_outcome("run-1", "interrupted", error="SIGTERM")
    [first] = outcomes(registry, "run-1")
    # Written through the one writer with a valid key, as a buggy or hostile pipeline could.
    with registry.write() as (_, writer):
        writer.append("run:run-1/outcome", first.predicate["run"]["digest"], st.RUN_OUTCOME, {
            **{k: v for k, v in first.predicate.items() if k != "ledger"}, "outcome": "promoted"})
        writer.append("run:ghost/outcome", "0" * 64, st.RUN_OUTCOME, {
            "run_id": "ghost", "model": "arrests", "run": {"seq": 1, "digest": "0" * 64}, "outcome": "blocked",
            "promoted": None, "skipped": [], "error": None})
    report = registry.verify()
    problems = [str(p) for p in report.problems]
    assert not report.ok
    assert any(f"is a second outcome of run run-1 (the first is entry {first.seq})" in p for p in problems)
    assert any("cites entry 1 as the run entry of run ghost" in p for p in problems)
    bundle = tmp_path / "bundle"
    export_bundle(registry, bundle)
    standalone = subprocess.run([sys.executable, str(STANDALONE), str(bundle), "--pin", registry.keys()[0].keyid], capture_output=True, text=True, timeout=120)
    assert standalone.returncode != 0
    assert f"is a second outcome of run run-1 (the first is entry {first.seq})" in standalone.stdout
    assert "cites entry 1 as the run entry of run ghost, which it is not" in standalone.stdout
    registry.close()


def test_run_ending_records_nothing_before_the_run_entry_and_keeps_the_runs_own_error(tmp_path):
    registry = Registry.open(tmp_path / "home")
    ending = RunEnding(registry, "run-1")
    ending.stopped(KeyboardInterrupt())  # before record_run: nothing to end
    assert registry.head()[0] == 1  # the key entry only
    registry.record_run("run-1", "arrests", {}, "a" * 64, {"dataset": "e" * 64}, [])
    ending.started = True
    ending.stopped(ValueError("the champion's bytes changed\nsecond line"))
    [entry] = outcomes(registry, "run-1")
    assert (entry.predicate["outcome"], entry.predicate["error"]) == ("failed", "ValueError: the champion's bytes changed")
    ending.stopped(KeyboardInterrupt())  # ended already: no second outcome
    assert len(outcomes(registry, "run-1")) == 1 and registry.verify().ok
    registry.close()


def test_the_run_table_and_summary_show_a_skipped_compressor_with_its_reason(capsys):
    from gatewise.cli import outcome_document, print_outcome
    from gatewise.flows.steps import CandidateOutcome, RunOutcome
    from gatewise.types import GateResult

    passed = tuple(GateResult(gate=g, passed=True, value=0.9, threshold=0.8, summary="ok") for g in st.MANDATORY_GATES)
    parent = Candidate(name="parent", plugin=PLUGIN, status="ok", size_bytes=2048)
    outcome = RunOutcome("run-1", "arrests", "blocked", (CandidateOutcome(parent, "arrests:v1", passed),), skipped=(SKIPPED,))
    print_outcome(outcome)
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out if line.startswith("int8_static ")] == [["int8_static", "-", "-", "-", "-", "-", "-", "skipped"]]
    assert "int8_static: skipped: no MatMul or Gemm to quantize" in out
    assert outcome_document(outcome)["skipped"] == [{"name": "int8_static", "plugin": "int8_dynamic", "plugin_version": "0.1.0",
                                                     "distribution": "gatewise", "reason": "no MatMul or Gemm to quantize"}]
