"""SIGTERM during compression, through the real CLI: the run stops cleanly (exit 130, one line), no
process it started outlives it (the compressor, what the compressor started, Prefect's temporary
server), its outcome is signed "interrupted", and the registry still verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatewise.registry import Registry
from gatewise.registry import statements as st
from gatewise.registry.signed import SignedLedger
from test_flows_isolation import install_third_party

SLEEPER = '''
import os
import subprocess
import sys
import time

from gatewise.hookspecs import hookimpl


class Hangs:
    name = "hangs"

    def compress(self, parent, output, calibration, params):
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["HANG_PID_FILE"] + ".tmp", "w") as pids:
            pids.write(f"{os.getpid()} {helper.pid}")
        os.replace(os.environ["HANG_PID_FILE"] + ".tmp", os.environ["HANG_PID_FILE"])
        time.sleep(600)


@hookimpl
def gatewise_compressors():
    return [Hangs()]
'''

CONFIG = '[compress]\ncompressors = ["hangs", "int8_dynamic"]\n'


def test_sigterm_during_compression_stops_the_run_cleanly_signed_interrupted_with_no_orphans(tmp_path):
    psutil = pytest.importorskip("psutil")  # comes with the dev extra (distributed)
    env, config, pid_file = install_third_party(tmp_path, SLEEPER, CONFIG)
    run = subprocess.Popen([sys.executable, "-m", "gatewise.cli", "run", "--config", str(config)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 500
        while not pid_file.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file.exists(), run.communicate(timeout=60)[1][-2000:] if run.poll() is not None else "no compressor started"
        compressor, helper = (int(pid) for pid in pid_file.read_text().split())
        started = psutil.Process(run.pid).children(recursive=True)  # Prefect's server among them
        assert {compressor, helper} <= {p.pid for p in started}
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 130, err[-2000:]
    [line] = [line for line in err.splitlines() if "interrupted" in line]
    assert " interrupted by SIGTERM" in line and "log:" in line
    _, still = psutil.wait_procs(started, timeout=10)
    assert not [p for p in still if p.status() != psutil.STATUS_ZOMBIE], "a process of the run outlived it"
    home = Path(env["GATEWISE_HOME"])
    registry = Registry.open(home, create=False)
    try:
        with registry.reading() as conn:
            ledger = SignedLedger(conn)
            [run_entry] = [e for e in ledger.entries(range(1, 10)).values() if e.predicate_type == st.RUN]
            [outcome] = ledger.about(run_entry.predicate["run_id"], (st.RUN_OUTCOME,))
        assert (outcome.predicate["outcome"], outcome.predicate["error"], outcome.predicate["promoted"]) == ("interrupted", "SIGTERM", None)
        assert registry.versions() == []  # nothing half-registered
    finally:
        registry.close()
    verify = subprocess.run([sys.executable, "-m", "gatewise.cli", "registry", "verify"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
