"""How each stage of a run grows with the data: the real pipeline at several row counts.

Draws rows from the bundled arrests data's joint distribution (whole rows, with replacement, so
every column keeps its relation to the others and to the label), writes them to a CSV, and runs
`gatewise run --json` on each size in a fresh gatewise home, with the demo's gatewise.toml. Prints
each stage's seconds (the run's own timings), the process's peak resident memory, and the slope
of each stage between consecutive sizes: log(time ratio) / log(size ratio), so 1.0 is linear.

Run: python bench/bench_scale.py [ROWS ...]   (default 5000 50000; the issue's full set is
5000 50000 500000, which takes long on a 2-core machine)
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("preflight", "data", "train", "export_compress", "gates", "benchmark", "register", "total")


def run_at(rows: int, workdir: Path) -> tuple[dict[str, float], float, float]:
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True).sample(n=rows, replace=True, random_state=rows).reset_index(drop=True)
    data = workdir / f"arrests-{rows}.csv"
    frame.to_csv(data, index=False)
    env = {**os.environ, "GATEWISE_HOME": str(workdir / f"home-{rows}")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gatewise.cli", "run", "--json", "--data", str(data), "--label", "released",
         "--positive", "Yes", "--sensitive", "colour,sex", "--config", str(ROOT / "gatewise.toml")],
        env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    if done.returncode not in (0, 3):
        raise SystemExit(f"run at {rows} rows failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    timings = json.loads(done.stdout)["run"]["timings_s"]
    return timings, wall, peak_mb


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [5000, 50000]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            timings, wall, peak = run_at(rows, Path(tmp))
            results[rows] = (timings, wall, peak)
            print(f"{rows:>8} rows: wall {wall:6.1f} s, peak RSS {peak:7.0f} MB, "
                  + ", ".join(f"{s} {timings.get(s, 0):.2f}s" for s in STAGES), flush=True)
    print("\nslope per stage (log time ratio / log size ratio; 1.0 = linear):")
    for a, b in zip(sizes, sizes[1:]):
        ta, tb = results[a][0], results[b][0]
        cells = []
        for stage in STAGES:
            x, y = ta.get(stage, 0), tb.get(stage, 0)
            cells.append(f"{stage} {math.log(y / x) / math.log(b / a):.2f}" if x > 0.05 and y > 0 else f"{stage} -")
        print(f"  {a} -> {b}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
