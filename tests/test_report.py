"""`gatewise report RUN`: one self-contained HTML page, checked in a real headless Chromium.

The registry is real (SQLite, signed entries) and the gate results are real verdicts of the gate
functions on the arrests stand-in: a parent that passes and a "last logit / 1000" child that
fails the accuracy gate on score fidelity. No Prefect run is needed to record them.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_gates_support import arrests_inputs, arrests_model
from test_registry_support import EVIDENCE, candidate

from gatewise.gates import run_mandatory_gates
from gatewise.registry import Registry

RUN = "rep0rt000001"
RED = (0xC6, 0x28, 0x28)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A home whose registry holds one run: a passing parent and a flattened child that fails."""
    home = tmp_path_factory.mktemp("report") / "home"
    parent_inputs = arrests_inputs()
    logit = np.log(np.clip(parent_inputs.scores, 1e-9, 1 - 1e-9) / np.clip(1 - parent_inputs.scores, 1e-9, 1))
    flattened = 1 / (1 + np.exp(-logit / 1000))
    child_inputs = arrests_inputs(candidate="logit_div_1000", scores=flattened, parent_scores=parent_inputs.scores,
                                  parent_predict_proba=arrests_model().predict_proba)
    registry = Registry.open(home)
    try:
        registry.record_run(RUN, "arrests", {}, "e" * 64, {"train": "1" * 64}, [])
        files = tmp_path_factory.mktemp("files")
        parent = registry.register_candidate(RUN, "arrests", candidate(files, "parent"))
        child = registry.register_candidate(RUN, "arrests", candidate(files, "logit_div_1000", parent="parent"))
        for version, inputs, latency in ((parent, parent_inputs, 0.05), (child, child_inputs, 0.04)):
            evidence = {**EVIDENCE, "benchmark": {"p50_ms_batch1": latency}}
            registry.record_gate_results(version, run_mandatory_gates(inputs), evidence)
    finally:
        registry.close()
    return home


def gatewise(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEWISE_HOME": str(home)}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def page(recorded, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "run.html"
    done = gatewise(recorded, "report", RUN, "-o", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {path}"
    return path


def test_the_page_is_one_self_contained_file_with_every_section(page):
    from html.parser import HTMLParser

    class Sources(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [value for name, value in attrs if name in ("src", "href") and value and "//" in value]

    text = page.read_text()
    parser = Sources()
    parser.feed(text)
    assert parser.found == []  # nothing fetched: plotly.js is inlined, the page opens offline
    for heading in ("Candidates x gates", "Accuracy against latency and size", "Drift per column",
                    "Per-group metric against the parent and the champion"):
        assert heading in text
    assert 'class="fail"' in text and "accuracy_regression failed (max_score_difference" in text


def test_an_unknown_run_is_one_line_and_exit_2(recorded):
    done = gatewise(recorded, "report", "no-such-run")
    assert done.returncode == 2
    assert done.stderr.strip() == "gatewise: error: no run 'no-such-run' in the registry (see `gatewise registry ls`)"


def _png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """Width, height, bytes per pixel and the unfiltered rows of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, [], None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0
    step = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(b"".join(chunks)), width * step, bytearray(), bytearray(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - step] if x >= step else 0
            up, corner = previous[x], previous[x - step] if x >= step else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows += line
        previous = line
    return width, height, step, bytes(rows)


def test_headless_chromium_shows_the_failed_gate_in_red_with_its_reason(page, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (apt-get install chromium): the browser check needs one")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,900"]
    shot = tmp_path / "report.png"
    done = subprocess.run([browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    width, height, step, rows = _png_pixels(shot.read_bytes())
    red = sum(
        1 for i in range(0, len(rows), step * 7)  # every 7th pixel is plenty
        if abs(rows[i] - RED[0]) < 12 and abs(rows[i + 1] - RED[1]) < 12 and abs(rows[i + 2] - RED[2]) < 12
    )
    assert red > 50, f"no red cell visible in the {width}x{height} screenshot"
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    failed = dom[dom.index('class="fail"'):]
    assert "background:#c62828" in failed.split(">")[0].replace(" ", "")
    assert "accuracy_regression failed (max_score_difference" in failed[:2000]
