"""`gatewise run` on the bundled data against a running Prefect server vs Prefect's temporary one.

Starts `prefect server start` on a free loopback port (a temporary PREFECT_HOME), runs the pipeline
twice against it (the second run is the warm one: the server already knows the flow) and once with
no server configured, and prints each run's wall time and its split, and the ratio of Prefect's own
share between the two modes. Bounded: the server must answer within 120 s, each run within 600 s.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gatewise.toml"
PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_once(home: Path, api_url: str) -> dict:
    env = {**os.environ, "GATEWISE_HOME": str(home), "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("GATEWISE_REGISTRY_URL", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gatewise.cli", "run", "--config", str(CONFIG), "--json"],
                          env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"gatewise run failed ({done.returncode}): {done.stderr[-1500:]}")
    timings = json.loads(done.stdout)["run"]["timings_s"]
    stages = {k: v for k, v in timings.items() if k not in ("total", "prefect_overhead", "preflight")}
    return {
        "wall_s": round(wall, 2),
        "process_start_and_imports_s": round(wall - timings["total"] - timings.get("preflight", 0), 2),
        "preflight_s": timings.get("preflight"),
        "prefect_s": timings["prefect_overhead"],
        "pipeline_s": round(sum(stages.values()), 2),
        "stages_s": stages,
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        tmp_path = Path(tmp)
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        log = open(tmp_path / "server.log", "w")  # noqa: SIM115
        server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            started = time.perf_counter()
            while not healthy(api_url):
                if server.poll() is not None or time.perf_counter() - started > 120:
                    raise SystemExit("prefect server did not answer within 120 s")
                time.sleep(0.5)
            print(f"prefect server healthy after {time.perf_counter() - started:.1f} s")
            home = tmp_path / "home"
            first = run_once(home, api_url)
            warm = run_once(home, api_url)
            temporary = run_once(tmp_path / "home-temp", "")
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            log.close()
    for label, result in (("first run, server", first), ("warm run, server", warm), ("temporary server", temporary)):
        print(f"{label:18s} wall {result['wall_s']:6.1f} s = start+imports {result['process_start_and_imports_s']:.1f}"
              f" + preflight {result['preflight_s']:.1f} + pipeline {result['pipeline_s']:.1f}"
              f" + prefect {result['prefect_s']:.1f}   stages {result['stages_s']}")
    print(f"prefect's share: {temporary['prefect_s'] / max(warm['prefect_s'], 1e-3):.1f}x less with a running server; "
          f"wall {temporary['wall_s'] / warm['wall_s']:.2f}x (target: warm run <= 10 s wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
