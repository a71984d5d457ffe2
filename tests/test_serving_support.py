"""Helpers for the serving tests: one promoted registry per session, a real `gatewise serve` process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "gatewise.toml"  # relaxes the fairness limits in the open, so a run promotes
LISTENING = re.compile(r"at http://([^/]+):(\d+)/v1/models/")


def gatewise(home: Path, *args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEWISE_HOME": str(home)}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


APPROVER = "ops"


def run_pipeline(home: Path) -> dict:
    """The real retrain flow once: a registry with a promoted version and its gated siblings, and an
    approver key ("ops") for the tests' own promotions.

    Should the gates block every candidate (the model's quality is not what serving tests are
    about), the parent is promoted on the approver's signed waiver, as an operator would.
    """
    done = gatewise(home, "run", "--config", str(DEMO_CONFIG), "--json")
    if done.returncode not in (0, 3) or not done.stdout.strip():
        pytest.fail(f"gatewise run failed ({done.returncode}): {done.stderr[-2000:]}", pytrace=False)
    report = json.loads(done.stdout)
    approver = gatewise(home, "keys", "init", "--approver", APPROVER)
    assert approver.returncode == 0, approver.stderr
    if not report["promoted"]:
        parent = next(c for c in report["candidates"] if c["name"] == "parent")
        promote(home, parent, "serving tests: promoted on a waiver")
        report["promoted"] = parent["version"]
    return report


def promote(home: Path, candidate: dict, reason: str) -> None:
    """`gatewise promote` with the approver's key, waiving whatever gate the candidate failed (recorded)."""
    waive = [arg for gate, result in candidate["gates"].items() if not result["passed"] for arg in ("--waive", gate)]
    done = gatewise(home, "promote", candidate["version"], "--approver", APPROVER, "--reason", reason, *waive)
    assert done.returncode == 0, done.stderr


def copy_home(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


class Server:
    """`gatewise serve` in a subprocess on a free port; ``stop()`` sends Ctrl-C and waits, bounded."""

    def __init__(self, home: Path, config: Path, *args: str) -> None:
        env = {**os.environ, "GATEWISE_HOME": str(home)}
        env.pop("GATEWISE_REGISTRY_URL", None)
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gatewise.cli", "serve", "--port", "0", "--config", str(config), *args],
            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_for_address(timeout=90)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = LISTENING.search(line)
                if found:
                    return f"http://{found.group(1)}:{found.group(2)}"
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                pytest.fail(f"gatewise serve exited {self.process.returncode}: {' | '.join(self.lines[-5:])}", pytrace=False)
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"gatewise serve did not start in {timeout} s: {' | '.join(self.lines[-5:])}", pytrace=False)

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; server said: {' | '.join(self.lines[-5:])}", pytrace=False)

    def ready_version(self) -> str | None:
        answer = self.client.get("/readyz")
        return answer.json()["version"] if answer.status_code == 200 else None

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        text = self.client.get("/metrics").text
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        if hasattr(self, "client"):
            self.client.close()
        return self.process.returncode


def serve_config(path: Path, **serve: object) -> Path:
    lines = ["[serve]"] + [f"{key} = {json.dumps(value)}" for key, value in serve.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
