"""Eight processes appending at once to a fresh registry: no entry lost or duplicated, one linear chain.

Appends are serialized by the registry's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL an
advisory lock), so however the writers interleave, every entry links to the one before it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from test_registry_support import backend  # noqa: F401  (a fixture)

WORKERS, COUNT = 8, 4
PER_ITERATION = 3  # a run, a candidate version, a gate result
GENESIS_PREV = "0" * 64

# Each writer opens the registry (all at once: the first opening of a fresh registry races too),
# says it is ready, waits for the start signal, then appends as fast as it can.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from gatewise.registry import Registry
    from gatewise.types import Candidate, GateResult, PluginInfo

    home, url, worker, count, signals = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
    plugin = PluginInfo("p", "1", "d", "0" * 64)
    with Registry.open(home, url) as registry:
        (signals / f"ready-{worker}").touch()
        while not (signals / "go").exists():
            time.sleep(0.005)
        for i in range(count):
            run_id = f"{worker}-{i}"
            registry.record_run(run_id, "m", {"i": i}, "a" * 64, {}, [])
            version = registry.register_candidate(run_id, "m", Candidate(f"c{i}", plugin, "errored", error="x"))
            registry.record_gate_results(version, [GateResult("drift", True, 0.1, 0.2, run_id)], {})
    """
)


def test_eight_concurrent_writers_keep_one_linear_chain(backend, tmp_path):
    signals = tmp_path / "signals"
    signals.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(backend.home), backend.url or "", f"w{n}", str(COUNT), str(signals)],
            stderr=subprocess.PIPE, text=True,
        )
        for n in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(signals.glob("ready-*"))) < WORKERS and time.monotonic() < deadline:
            if any(proc.poll() not in (None, 0) for proc in procs):
                break
            time.sleep(0.02)
        (signals / "go").touch()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    expected_runs = sorted(f"w{n}-{i}" for n in range(WORKERS) for i in range(COUNT))
    expected_entries = 1 + len(expected_runs) * PER_ITERATION  # the key entry, then every append

    ledger = backend.sql("SELECT seq, prev_digest, digest FROM ledger ORDER BY seq")
    assert len(ledger) == expected_entries  # nothing lost, nothing extra
    assert [seq for seq, _, _ in ledger] == list(range(1, expected_entries + 1))  # no gap, no repeated position
    digests = [digest for _, _, digest in ledger]
    assert len(set(digests)) == expected_entries  # no entry written twice
    links = [prev for _, prev, _ in ledger]
    assert links == [GENESIS_PREV, *digests[:-1]]  # every entry links to the one before: one line, no fork

    assert sorted(r for (r,) in backend.sql("SELECT run_id FROM runs")) == expected_runs
    assert sorted(s for (s,) in backend.sql("SELECT summary FROM gate_results")) == expected_runs
    numbers = sorted(n for (n,) in backend.sql("SELECT number FROM versions WHERE model = 'm'"))
    assert numbers == list(range(1, len(expected_runs) + 1))  # versions numbered without gap or duplicate
    assert backend.sql("SELECT COUNT(*) FROM keys")[0][0] == 1  # one genesis key, however many opened it at once

    report = backend.open().verify()
    assert report.ok, report.problems
    assert report.entries_checked == expected_entries
    assert report.head == (expected_entries, digests[-1])
