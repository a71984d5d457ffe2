"""`gatewise serve` under load on loopback: micro-batching against batch-1 serving, in the same run.

    .venv/bin/python bench/bench_serve.py [--requests 3000] [--seconds 12] [--home DIR]

The registry is built once by the real pipeline (`gatewise run` with the repository's
gatewise.toml) and cached under bench/out/serve/ (git-ignored); --home uses another promoted home.
For each server mode (batch-1: --max-batch 1; micro-batching: the [serve] defaults) and each
concurrency (1, 8, 64 keep-alive connections, one row per request), a bounded load (at most
--requests answers or --seconds, after a warm-up) prints answers/s, p50 and p99 latency, and the
ratios of micro-batching to batch-1 at the same concurrency.

Also printed: the server's CPU time per answer (read from /proc: all its threads, the warm-up
included) against the CPU time of a bare ONNX Runtime call on one encoded row, and of the same
row encoded from a raw table first (CPU, not wall time: other work on these shared cores
stretches a busy loop's wall time several-fold);
and the time from a `gatewise promote` (and `gatewise rollback`) entry reaching the ledger to the
first answer from the version it made live, with the default [serve] poll_s.

The load generator is a raw asyncio HTTP/1.1 client (a few microseconds of CPU per request), but
it shares this machine's cores with the server: the ratios are the figures to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "serve"
REPO = Path(__file__).resolve().parent.parent
MODEL = "arrests"
CONCURRENCY = (1, 8, 64)
LISTENING = re.compile(r"at http://([^/]+):(\d+)/v1/models/")
LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def gatewise(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEWISE_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=env, capture_output=True, text=True, cwd=REPO)


def promoted_home(wanted: Path | None) -> tuple[Path, dict]:
    """A home whose registry has a promoted version and other gated versions; built once and cached."""
    if wanted is not None:
        return wanted, {}
    home, report = OUT / "home", OUT / "run.json"
    if not report.exists():
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        print("building the registry once with `gatewise run` (cached in bench/out/serve/) ...", flush=True)
        done = gatewise(home, "run", "--json")
        if done.returncode != 0:
            sys.exit(f"gatewise run failed ({done.returncode}): {done.stderr[-1500:]}")
        report.write_text(done.stdout)
    return home, json.loads(report.read_text())


class Server:
    """`gatewise serve --port 0` in a subprocess; the port is read from its first line."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {**os.environ, "GATEWISE_HOME": str(home)}
        env.pop("GATEWISE_REGISTRY_URL", None)
        self.lines: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-m", "gatewise.cli", "serve", "--port", "0", *args],
                                        env=env, cwd=OUT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 90
        while not any(LISTENING.search(line) for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"gatewise serve did not start: {' | '.join(self.lines[-5:])}")
            time.sleep(0.05)
        found = next(LISTENING.search(line) for line in self.lines if LISTENING.search(line))
        self.host, self.port = found.group(1), int(found.group(2))
        while not any("serving " in line for line in self.lines):
            if time.monotonic() > deadline:
                self.stop()
                sys.exit(f"gatewise serve loaded nothing: {' | '.join(self.lines[-5:])}")
            time.sleep(0.05)

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request_bytes(host: str, port: int, row: dict) -> bytes:
    body = json.dumps({"rows": [row]}).encode()
    head = (f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.readexactly(int(LENGTH.search(head).group(1)))
    if head[9:12] != b"200":
        raise RuntimeError(f"server answered {head[9:12].decode()}: {body[:200].decode(errors='replace')}")
    return body


async def _load(host: str, port: int, requests: list[bytes], concurrency: int, count: int, seconds: float,
                warmup: int) -> tuple[list[float], float]:
    """``concurrency`` keep-alive connections, each warmed up, then all released at once."""
    latencies: list[float] = []
    issued = warmed = 0
    deadline = 0.0
    all_warm, go = asyncio.Event(), asyncio.Event()

    async def connection(index: int) -> None:
        nonlocal issued, warmed
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in range(warmup):
                writer.write(requests[(index + i) % len(requests)])
                await _answer(reader)
            warmed += 1
            if warmed == concurrency:
                all_warm.set()
            await go.wait()
            while issued < count and time.perf_counter() < deadline:
                issued += 1
                message = requests[(index * 7 + issued) % len(requests)]
                t0 = time.perf_counter()
                writer.write(message)
                await _answer(reader)
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection(i)) for i in range(concurrency)]
    await asyncio.wait_for(all_warm.wait(), 60)
    started = time.perf_counter()
    deadline = started + seconds
    go.set()
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(server: Server, requests: list[bytes], concurrency: int, count: int, seconds: float) -> dict:
    cpu_before = cpu_seconds(server.process.pid)
    latencies, wall = asyncio.run(_load(server.host, server.port, requests, concurrency, count, seconds, warmup=20))
    cpu = cpu_seconds(server.process.pid) - cpu_before  # the warm-up is counted too, and its answers
    latencies.sort()
    return {
        "cpu_ms": 1000 * cpu / (len(latencies) + 20 * concurrency),
        "answers": len(latencies),
        "per_s": len(latencies) / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def bare_onnx_runtime(home: Path, version: str, frame) -> tuple[float, float]:
    """Median CPU seconds of one session.run on one encoded row, and of encode + run from a raw row."""
    from gatewise.registry import Registry
    from gatewise.scoring import OnnxScorer

    with Registry.open(home, create=False) as registry:
        scorer = OnnxScorer(registry.artifact_path(version))
    row = frame.iloc[[0]]
    encoded = scorer.spec.encode(row)

    def median(call, repeats: int) -> float:
        for _ in range(50):
            call()
        samples = []
        for _ in range(repeats):
            t0 = time.process_time()
            call()
            samples.append(time.process_time() - t0)
        return statistics.median(samples)

    return median(lambda: scorer.predict_encoded(encoded), 3000), median(lambda: scorer.predict_proba(row), 300)


def _live_version(home: Path) -> str:
    from gatewise.registry import Registry

    with Registry.open(home, create=False) as registry:
        live = registry.champion(MODEL)
    if live is None:
        sys.exit(f"no production version of {MODEL} in {home}")
    return live.version


def promotion_to_answer(home: Path, report: dict, rows: list[dict], repeats: int) -> list[tuple[str, float, float]]:
    """Seconds from a `gatewise promote`/`rollback` entry reaching the ledger (and from the command's
    start) to the first answer from the version it made live; a client asks continuously, a watcher
    reads the ledger head every 5 ms, the server polls with the default poll_s."""
    import httpx

    from gatewise.registry import Registry

    live = report["promoted"]
    others = [c for c in report["candidates"] if c["status"] == "ok" and c["version"] != live]
    if not others:
        sys.exit("the run registered no second version to promote")
    chosen = next((c for c in others if c["passed"]), others[0])
    other = chosen["version"]
    waive = [arg for gate, result in chosen["gates"].items() if not result["passed"] for arg in ("--waive", gate)]
    copy = OUT / "promote-home"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(home, copy)
    if gatewise(copy, "keys", "init", "--approver", "bench").returncode != 0:
        sys.exit("gatewise keys init --approver failed")
    server = Server(copy)
    answers: list[tuple[float, str]] = []
    heads: list[tuple[float, tuple]] = []
    stop = threading.Event()

    def ask() -> None:
        with httpx.Client(base_url=f"http://{server.host}:{server.port}", timeout=30) as client:
            while not stop.is_set():
                version = client.post(f"/v1/models/{MODEL}/predict", json={"rows": rows[:1]}).json()["version"]
                answers.append((time.monotonic(), version))

    def watch() -> None:
        with Registry.open(copy, create=False) as registry:
            while not stop.wait(0.005):
                head = registry.head()
                if not heads or heads[-1][1] != head:
                    heads.append((time.monotonic(), head))

    threads = [threading.Thread(target=ask, daemon=True), threading.Thread(target=watch, daemon=True)]
    for thread in threads:
        thread.start()
    while not heads or not answers:  # the watcher has the current head and the server answers
        time.sleep(0.01)
    results = []
    try:
        for _ in range(repeats):
            for command, target in (
                (("promote", other, "--approver", "bench", "--reason", "bench: promotion to answer", *waive), other),
                (("rollback", MODEL, "--reason", "bench: rollback to answer"), live),
            ):
                started, before = time.monotonic(), heads[-1][1]
                done = gatewise(copy, *command)
                if done.returncode != 0:
                    sys.exit(f"gatewise {command[0]} failed: {done.stderr[-500:]}")
                deadline = time.monotonic() + 30
                while not any(v == target and t >= started for t, v in answers):
                    if time.monotonic() > deadline:
                        sys.exit(f"no answer from {target} within 30 s of `gatewise {command[0]}`")
                    time.sleep(0.01)
                first = next(t for t, v in answers if v == target and t >= started)
                committed = next(t for t, head in heads if t >= started and head != before)
                results.append((command[0], first - committed, first - started))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="most answers per load (default 3000)")
    parser.add_argument("--seconds", type=float, default=12.0, help="longest load (default 12 s)")
    parser.add_argument("--home", type=Path, help="a gatewise home with a promoted model (default: built once)")
    parser.add_argument("--promotions", type=int, default=3, help="promote/rollback pairs timed (default 3)")
    args = parser.parse_args()

    from sklego.datasets import load_arrests

    from gatewise.config import ServeSettings

    home, report = promoted_home(args.home)
    frame = load_arrests(as_frame=True).drop(columns=["released"]).sample(n=512, random_state=3).reset_index(drop=True)
    rows = json.loads(frame.to_json(orient="records"))
    defaults = ServeSettings()
    modes = {
        "batch-1": ("--max-batch", "1", "--max-wait-ms", "0"),
        f"micro-batch (<= {defaults.max_batch} rows, {defaults.max_wait_ms:g} ms)": (),
    }
    bare_before = bare_onnx_runtime(home, report.get("promoted") or _live_version(home), frame)
    # Both servers run side by side and each concurrency loads them back to back, so that the
    # other work on these shared cores weighs on both modes of a pair alike.
    servers = {mode: Server(home, *flags) for mode, flags in modes.items()}
    results: dict[tuple[str, int], dict] = {}
    try:
        version = next(line for line in servers[next(iter(modes))].lines if "serving " in line).split("serving ")[1].split()[0]
        for concurrency in CONCURRENCY:
            for mode, server in servers.items():
                requests = [request_bytes(server.host, server.port, row) for row in rows]
                results[(mode, concurrency)] = load(server, requests, concurrency, args.requests, args.seconds)
    finally:
        for server in servers.values():
            server.stop()

    results = dict(sorted(results.items(), key=lambda item: list(modes).index(item[0][0])))
    print(f"gatewise serve on loopback, model {version}, one row per request, {os.cpu_count()} CPUs shared by client and server")
    print(f"{'mode':<34}{'conc':>5}{'answers':>9}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'server CPU ms/answer':>22}")
    for (mode, concurrency), r in results.items():
        print(f"{mode:<34}{concurrency:>5}{r['answers']:>9}{r['per_s']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['cpu_ms']:>22.2f}")
    batch1, micro = modes
    print("micro-batching / batch-1 at the same concurrency:")
    for concurrency in CONCURRENCY:
        a, b = results[(batch1, concurrency)], results[(micro, concurrency)]
        print(f"  concurrency {concurrency:>2}: throughput {b['per_s'] / a['per_s']:.2f}x, "
              f"p99 {b['p99_ms']:.2f} ms vs {a['p99_ms']:.2f} ms ({b['p99_ms'] / a['p99_ms']:.2f}x)")

    # CPU time per call, not wall time: other work on these shared cores stretches
    # a busy loop's wall time several-fold, but not the CPU it uses.
    run_s, encode_run_s = (min(pair) for pair in zip(bare_before, bare_onnx_runtime(home, version, frame), strict=True))
    serve_cpu = results[(batch1, 1)]["cpu_ms"] / 1000
    print(f"CPU per call: bare ONNX Runtime on one encoded row {run_s * 1e6:.0f} us; encode one raw row with the "
          f"contract + run {encode_run_s * 1e6:.0f} us; the batch-1 server per answer {serve_cpu * 1e6:.0f} us "
          f"= {serve_cpu / run_s:.0f}x the bare call ({(serve_cpu - encode_run_s) * 1e6:.0f} us beyond encode + run: "
          f"HTTP, JSON, checks, queue, metrics)")
    micro_cpu = results[(micro, 64)]["cpu_ms"] / 1000
    print(f"micro-batching at concurrency 64: {micro_cpu * 1e6:.0f} us of server CPU per answer "
          f"({serve_cpu / micro_cpu:.1f}x less than batch-1 at concurrency 1)")

    if args.home is None or report:
        timings = promotion_to_answer(home, report, rows, args.promotions)
        poll = ServeSettings().poll_s
        for name in ("promote", "rollback"):
            after = [t[1] for t in timings if t[0] == name]
            whole = [t[2] for t in timings if t[0] == name]
            print(f"`gatewise {name}` to the first answer from the new version (poll_s {poll:g}): "
                  f"median {statistics.median(after):.2f} s after its entry reached the ledger (max {max(after):.2f}), "
                  f"{statistics.median(whole):.2f} s from its start; n={len(after)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
