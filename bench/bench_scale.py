"""How each stage of a run grows with the data: the real pipeline at several row counts.

Draws rows from the bundled arrests data's joint distribution (whole rows, with replacement, so
every column keeps its relation to the others and to the label), writes them to a CSV, and runs
`gatewise run --json` on each size in a fresh gatewise home, with the demo's gatewise.toml.

Prints, per size: each stage's seconds (the run's own timings); the peak resident memory (VmHWM)
of the run process itself, apart from its child processes (compressor processes, Prefect's
temporary server), each kind's largest; and, per progress stage of the run process, the largest
resident memory sampled while that stage ran, with its seconds (stages that run in parallel
share samples). Then the
slope of each stage's time and of the run process's peak memory between consecutive sizes:
log(ratio) / log(size ratio), so 1.0 is linear.

Memory is sampled from /proc every 50 ms (Linux only); a child's VmHWM is its own peak, so a
short-lived child is caught if it lives one sample.

Run: python bench/bench_scale.py [ROWS ...]   (default 5000 50000; the issue's full set is
5000 50000 500000, which takes long on a 2-core machine)
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("preflight", "data", "train", "export_compress", "gates", "benchmark", "register", "total")
STAGE_LINE = re.compile(r"^gatewise: (?P<name>.+): (?P<took>[\d.]+) s \(started at \+(?P<start>[\d.]+) s\)$")
SAMPLE_S = 0.05


@dataclass
class Memory:
    """What the sampler saw: (seconds, RSS MB) of the run process, and each process's peak."""

    run_samples: list[tuple[float, float]] = field(default_factory=list)
    run_peak_mb: float = 0.0
    child_peaks_mb: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (kind, VmHWM MB)


def _status_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB, (0, 0) once it is gone."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, hwm


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    kids = [int(k) for k in children.read().split()]
                found.extend(kids)
                todo.extend(kids)
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kind(pid: int, run: str) -> str:
    text = _cmdline(pid)
    if not text:
        return "gone"
    if text == run:  # forked, not yet exec'd (a subprocess starting): it shares the run's pages
        return "fork of the run process (shared pages)"
    if "multiprocessing" in text:
        return "compressor process"
    if "prefect" in text or "uvicorn" in text:
        return "prefect server"
    return text.split(" ")[0].rsplit("/", 1)[-1] or "other"


def _sample(pid: int, started: float, memory: Memory, stop: threading.Event) -> None:
    run = _cmdline(pid)
    while not stop.is_set():
        rss, hwm = _status_mb(pid)
        if rss:
            memory.run_samples.append((time.perf_counter() - started, rss))
            memory.run_peak_mb = max(memory.run_peak_mb, hwm)
        for child in _descendants(pid):
            _, child_hwm = _status_mb(child)
            if child_hwm > memory.child_peaks_mb.get(child, ("", 0.0))[1]:
                # Read each time: just after the fork a child still shows its parent's command line.
                memory.child_peaks_mb[child] = (_kind(child, run), child_hwm)
        stop.wait(SAMPLE_S)


def stage_peaks(stderr: str, samples: list[tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Each progress stage's seconds and the largest sampled RSS of the run process while it ran."""
    peaks = {}
    for line in stderr.splitlines():
        match = STAGE_LINE.match(line.strip())
        if not match:
            continue
        start, took = float(match["start"]), float(match["took"])
        inside = [mb for t, mb in samples if start - SAMPLE_S <= t <= start + took + SAMPLE_S]
        peaks[match["name"]] = (took, max(inside, default=0.0))
    return peaks


def run_at(rows: int, workdir: Path) -> dict:
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True).sample(n=rows, replace=True, random_state=rows).reset_index(drop=True)
    data = workdir / f"arrests-{rows}.csv"
    frame.to_csv(data, index=False)
    env = {**os.environ, "GATEWISE_HOME": str(workdir / f"home-{rows}")}
    memory, stop = Memory(), threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "gatewise.cli", "run", "--json", "--data", str(data), "--label", "released",
         "--positive", "Yes", "--sensitive", "colour,sex", "--config", str(ROOT / "gatewise.toml")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    sampler = threading.Thread(target=_sample, args=(process.pid, started, memory, stop), daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode not in (0, 3):
        raise SystemExit(f"run at {rows} rows failed ({process.returncode}): {stderr.strip()[-2000:]}")
    children: dict[str, float] = {}
    for kind, peak in memory.child_peaks_mb.values():
        children[kind] = max(children.get(kind, 0.0), peak)
    return {
        "timings": json.loads(stdout)["run"]["timings_s"], "wall": wall, "run_peak_mb": memory.run_peak_mb,
        "children_mb": children, "stage_mb": stage_peaks(stderr, memory.run_samples),
    }


def slope(a: float, b: float, ratio: float) -> str:
    return f"{math.log(b / a) / math.log(ratio):.2f}" if a > 0.05 and b > 0 else "-"


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [5000, 50000]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            result = results[rows] = run_at(rows, Path(tmp))
            timings = result["timings"]
            print(f"{rows:>8} rows: wall {result['wall']:6.1f} s, run process peak {result['run_peak_mb']:7.0f} MB; "
                  + ", ".join(f"{s} {timings.get(s, 0):.2f}s" for s in STAGES), flush=True)
            print("          children peak MB: " + (", ".join(f"{k} {v:.0f}" for k, v in sorted(result["children_mb"].items())) or "none"))
            print("          progress stages (s, run process MB while it ran): "
                  + ", ".join(f"{k} {took:.1f}s {mb:.0f}MB" for k, (took, mb) in result["stage_mb"].items()), flush=True)
    print("\nslope per stage (log ratio / log size ratio; 1.0 = linear):")
    for a, b in zip(sizes, sizes[1:]):
        ta, tb = results[a]["timings"], results[b]["timings"]
        cells = [f"{stage} {slope(ta.get(stage, 0), tb.get(stage, 0), b / a)}" for stage in STAGES]
        cells.append(f"run process peak memory {slope(results[a]['run_peak_mb'], results[b]['run_peak_mb'], b / a)}")
        print(f"  {a} -> {b}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
