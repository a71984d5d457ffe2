"""Several processes appending at once to a fresh registry: no entry lost, the chain stays linear."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from test_registry_support import backend  # noqa: F401  (a fixture)

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gatewise.registry import Registry
    from gatewise.types import Candidate, PluginInfo

    home, url, worker, count = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3], int(sys.argv[4])
    plugin = PluginInfo("p", "1", "d", "0" * 64)
    with Registry.open(home, url) as registry:
        for i in range(count):
            registry.record_run(f"{worker}-{i}", "m", {"i": i}, "a" * 64, {}, [])
            registry.register_candidate(f"{worker}-{i}", "m", Candidate(f"c{i}", plugin, "errored", error="x"))
    """
)


def test_concurrent_writers_keep_one_chain(backend):
    workers, count = 4, 10
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(backend.home), backend.url or "", f"w{n}", str(count)],
                         stderr=subprocess.PIPE, text=True)
        for n in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    registry = backend.open()
    report = registry.verify()
    assert report.ok, report.problems
    assert report.entries_checked == 1 + workers * count * 2
    numbers = [v.number for v in registry.versions("m")]
    assert numbers == list(range(1, workers * count + 1))
    assert backend.sql("SELECT COUNT(*) FROM keys")[0][0] == 1
