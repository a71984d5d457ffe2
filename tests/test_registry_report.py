"""`gatewise registry report MODEL [VERSION] -o FILE.html` on a real SQLite registry with a signed
policy, a waived failure and a rollback; the page is opened in headless Chromium and screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_registry_support import EVIDENCE, Backend, candidate, verdicts

from gatewise.cli import main
from gatewise.policy import GatePolicy
from gatewise.registry.policy_entries import set_policy

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def told(home, tmp_path):
    registry = Backend(home, None).open()
    registry.introduce_approver("ada")
    gates = GatePolicy().model_dump(mode="json")
    gates["fairness"]["max_demographic_parity_difference"] = 0.45
    set_policy(registry, gates, approver="ada", reason="the data's own disparity by colour")
    registry.record_run("run-1", "arrests", {}, "a" * 64, {"dataset": "e" * 64}, [])
    v1 = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "v1", content=b"one" * 50))
    registry.record_gate_results(v1, verdicts(), EVIDENCE)
    registry.promote(v1)
    v2 = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "v2", content=b"two" * 50))
    registry.record_gate_results(v2, verdicts(failing="fairness"), EVIDENCE)
    registry.approve_promotion(v2, approver="ada", reason="reviewed the parity gap", waive=["fairness"])
    registry.rollback("arrests", reason="complaints from the field", approver="ada")
    registry.close()
    return v1, v2


def test_the_page_tells_the_timeline_decisions_and_verification(told, tmp_path, capsys):
    v1, v2 = told
    page = tmp_path / "arrests.html"
    assert main(["registry", "report", "arrests", "-o", str(page)]) == 0
    html = page.read_text()
    assert "Verified" in html and "<script" not in html and "http" not in html.split("<body>")[1].replace("https://", "")
    assert html.count("in production from") == 1 and f">{v1}</div>" in html and f">{v2}</div>" in html  # the timeline bars
    assert "reviewed the parity gap" in html and "waived</span> by approver ada" in html
    assert "complaints from the field" in html and "gated by policy entry" in html and "the data&#x27;s own disparity" in html
    detail = tmp_path / "v2.html"
    assert main(["registry", "report", "arrests", v2, "-o", str(detail)]) == 0
    assert f"Gate results of {v2}" in detail.read_text() and f"Gate results of {v1}" not in detail.read_text()


def test_report_mistakes_are_one_line(told, tmp_path, capsys):
    assert main(["registry", "report", "nope", "-o", str(tmp_path / "x.html")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["registry", "report", "arrests", "-o", str(tmp_path / "missing" / "x.html")]) == 2
    assert "no directory" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian's chromium package)")
def test_the_page_opens_in_chromium(told, tmp_path):
    page = tmp_path / "arrests.html"
    assert main(["registry", "report", "arrests", "-o", str(page)]) == 0
    shot = tmp_path / "arrests.png"
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--window-size=1280,1800", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered page, not a blank one
    dom = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert "Timeline: which version was in production when" in dom.stdout and "waived" in dom.stdout
    keep = Path(__file__).resolve().parent.parent / ".pytest_cache" / "registry-report.png"
    if keep.parent.is_dir():
        shutil.copy(shot, keep)  # to look at
