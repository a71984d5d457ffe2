"""`gatewise serve` end to end: a real registry built by the real pipeline, a real uvicorn server in a
subprocess, real HTTP. Answers, micro-batching, refused bytes, promotion and rollback without a
restart, bad requests, input logging.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from test_serving_support import Server, copy_home, gatewise, promote, run_pipeline, serve_config

pytestmark = pytest.mark.e2e

MODEL = "arrests"
PREDICT = f"/v1/models/{MODEL}/predict"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One real `gatewise run`: a promoted version and its gated siblings (parent and compressed children)."""
    home = tmp_path_factory.mktemp("serving") / "home"
    report = run_pipeline(home)
    assert report["promoted"], "the demo run promoted nothing"
    return home, report


@pytest.fixture(scope="module")
def rows():
    from sklego.datasets import load_arrests

    frame = load_arrests(as_frame=True).drop(columns=["released"]).sample(n=300, random_state=7)
    return frame.reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def scorer_for(home: Path, version: str):
    from gatewise.registry import Registry
    from gatewise.scoring import OnnxScorer

    with Registry.open(home, create=False) as registry:
        return OnnxScorer(registry.artifact_path(version))


def another_version(report: dict, prefer: str) -> dict:
    """A registered version that is not live, the ``prefer`` candidate when it is one."""
    others = [c for c in report["candidates"] if c["status"] == "ok" and c["version"] != report["promoted"]]
    assert others, "the run registered no second version"
    return next((c for c in others if c["name"] == prefer), others[0])


async def _concurrent(url: str, bodies: list[dict], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(body: dict) -> httpx.Response:
            async with gate:
                return await client.post(PREDICT, json=body)

        return await asyncio.gather(*(one(body) for body in bodies))


def concurrent_posts(url: str, bodies: list[dict], concurrency: int = 64) -> list[httpx.Response]:
    return asyncio.run(_concurrent(url, bodies, concurrency))


@pytest.fixture(scope="module")
def server(pipeline, tmp_path_factory):
    """A server on the pipeline's registry that waits up to 20 ms to fill micro-batches of up to 32 rows."""
    home, _ = pipeline
    config = serve_config(tmp_path_factory.mktemp("serve-config") / "gatewise.toml", max_batch=32, max_wait_ms=20.0)
    server = Server(home, config)
    server.wait_for(server.ready_version, what="/readyz")
    yield server
    assert server.stop() == 0


def test_answers_equal_onnx_runtime_scoring_of_the_same_rows(pipeline, server, rows):
    home, report = pipeline
    assert server.client.get("/healthz").json() == {"status": "ok"}
    ready = server.client.get("/readyz").json()
    assert ready["ready"] is True and ready["version"] == report["promoted"]
    expected = scorer_for(home, report["promoted"]).predict_proba(rows)

    # One request with every row, and the same rows as concurrent one-row requests that the
    # server micro-batches: both equal ONNX Runtime on the same bytes.
    whole = server.client.post(PREDICT, json={"rows": records(rows)})
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["version"] == report["promoted"] and answer["model"] == MODEL
    got = np.array([p["probability"] for p in answer["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert [p["label"] for p in answer["predictions"]] == [int(p >= 0.5) for p in got]

    batches_before = server.metric("gatewise_serve_batch_rows_count")
    singles = concurrent_posts(server.url, [{"rows": [row]} for row in records(rows)], concurrency=64)
    assert all(r.status_code == 200 for r in singles)
    one_by_one = np.array([r.json()["predictions"][0]["probability"] for r in singles])
    np.testing.assert_allclose(one_by_one, expected, rtol=0, atol=1e-6)
    batches = server.metric("gatewise_serve_batch_rows_count") - batches_before
    assert 0 < batches < len(rows), "concurrent requests were not micro-batched"


def test_bad_requests_get_4xx_naming_the_field_and_good_ones_still_answer(server, rows):
    good = records(rows.head(1))[0]
    cases = [
        (b"{not json", 400, "body"),
        (json.dumps([good]).encode(), 422, "rows"),
        (json.dumps({"rows": []}).encode(), 422, "rows"),
        (json.dumps({"rows": ["a row"]}).encode(), 422, "rows[0]"),
        (json.dumps({"rows": [{k: v for k, v in good.items() if k != "age"}]}).encode(), 422, "rows[0].age"),
        (json.dumps({"rows": [good, {**good, "year": "2002"}]}).encode(), 422, "rows[1].year"),
        (json.dumps({"rows": [{**good, "checks": True}]}).encode(), 422, "rows[0].checks"),
        (json.dumps({"rows": [{**good, "age": float("nan")}]}).encode(), 422, "rows[0].age"),  # the NaN literal
        (json.dumps({"rows": [{**good, "age": None}]}).encode(), 422, "rows[0].age"),
        (json.dumps({"rows": [{**good, "colour": "Green"}]}).encode(), 422, "rows[0].colour"),
        (json.dumps({"rows": [{**good, "sex": 3.5}]}).encode(), 422, "rows[0].sex"),
        (b" " * (10 * 1024 * 1024), 413, "body"),
    ]
    for body, status, field in cases:
        answer = server.client.post(PREDICT, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == status, (field, answer.text)
        assert answer.json()["field"] == field, answer.text
        assert answer.json()["error"]
    streamed = server.client.post(PREDICT, content=iter([b" " * 65536] * 160))  # chunked, no length given
    assert streamed.status_code == 413 and streamed.json()["field"] == "body"
    unknown = server.client.post("/v1/models/nope/predict", json={"rows": [good]})
    assert unknown.status_code == 404 and unknown.json()["field"] == "model"

    # Unknown columns are ignored; the server kept serving through all of the above.
    answer = server.client.post(PREDICT, json={"rows": [{**good, "note": "extra"}]})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
    assert server.metric("gatewise_serve_errors_total", reason="bad_request") >= 10
    assert server.metric("gatewise_serve_errors_total", reason="too_large") >= 2


def test_swapped_artifact_bytes_are_refused_at_start(pipeline, rows, tmp_path):
    home, report = pipeline
    copy = copy_home(home, tmp_path / "home")
    from gatewise.registry import Registry

    with Registry.open(copy, create=False) as registry:
        live = registry.artifact_path(report["promoted"])
        other = registry.artifact_path(another_version(report, "int8_static")["version"])
    live.chmod(0o644)
    live.write_bytes(other.read_bytes())  # a valid model, but not the bytes the signed entry names

    server = Server(copy, serve_config(tmp_path / "gatewise.toml", poll_s=0.2))
    try:
        refusal = server.wait_for(lambda: [line for line in server.lines if "refused" in line], what="a refusal line")
        assert len(refusal) == 1 and report["promoted"] in refusal[0] and "sha256" in refusal[0]
        time.sleep(0.6)  # a few polls later: still refused, still reported once
        assert len([line for line in server.lines if "refused" in line]) == 1
        assert server.client.get("/readyz").status_code == 503
        answer = server.client.post(PREDICT, json={"rows": records(rows.head(1))})
        assert answer.status_code == 503
        assert server.metric("gatewise_serve_refused_loads_total", reason="sha256_mismatch") == 1
        assert server.client.get("/healthz").status_code == 200
    finally:
        assert server.stop() == 0


class _Traffic:
    """A client that keeps asking while promotions and rollbacks happen; records every answer."""

    def __init__(self, url: str, row: dict) -> None:
        self.answers: list[tuple[float, int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, row), daemon=True)
        self._thread.start()

    def _run(self, url: str, row: dict) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not self._stop.is_set():
                answer = client.post(PREDICT, json={"rows": [row]})
                version = answer.json().get("version") if answer.status_code == 200 else None
                self.answers.append((time.monotonic(), answer.status_code, version))

    def first_answer_from(self, version: str, after: float) -> float | None:
        return next((t for t, _, v in self.answers if v == version and t >= after), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_promotion_and_rollback_are_served_without_a_restart(pipeline, rows, tmp_path):
    home, report = pipeline
    copy = copy_home(home, tmp_path / "home")
    first, candidate = report["promoted"], another_version(report, "int8_dynamic")
    second = candidate["version"]
    server = Server(copy, serve_config(tmp_path / "gatewise.toml", poll_s=0.2, max_batch=64, max_wait_ms=20.0))
    traffic = None
    try:
        assert server.wait_for(server.ready_version, what="/readyz") == first
        pid = server.process.pid
        traffic = _Traffic(server.url, records(rows.head(1))[0])

        promote(copy, candidate, "serve the compressed model")
        promoted_at = time.monotonic()
        server.wait_for(lambda: traffic.first_answer_from(second, promoted_at), timeout=20, what=f"answers from {second}")

        # int8_dynamic computes activation scales per batch: the server and the gates' scorer score
        # its rows one by one, so a row's answer is the same alone, in one request of many rows,
        # micro-batched, or in the gates' whole-table scoring.
        sample = rows.head(48)
        scorer = scorer_for(copy, second)
        assert scorer.row_by_row == (candidate["name"] == "int8_dynamic")
        expected = np.concatenate([scorer.predict_proba(sample.iloc[[i]]) for i in range(len(sample))])
        np.testing.assert_allclose(scorer.predict_proba(sample), expected, rtol=0, atol=0 if scorer.row_by_row else 1e-6)
        together = server.client.post(PREDICT, json={"rows": records(sample)}).json()
        assert together["version"] == second
        singles = concurrent_posts(server.url, [{"rows": [row]} for row in records(sample)], concurrency=48)
        np.testing.assert_allclose([p["probability"] for p in together["predictions"]], expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose([r.json()["predictions"][0]["probability"] for r in singles], expected, rtol=0, atol=1e-6)

        rolled = gatewise(copy, "rollback", MODEL, "--reason", "back to the first version")
        assert rolled.returncode == 0, rolled.stderr
        rolled_at = time.monotonic()
        server.wait_for(lambda: traffic.first_answer_from(first, rolled_at), timeout=20, what=f"answers from {first} again")
        assert server.ready_version() == first
        traffic.stop()

        statuses = {status for _, status, _ in traffic.answers}
        assert statuses == {200}, f"requests failed during the swaps: {statuses}"
        assert server.process.pid == pid and server.process.poll() is None
        assert server.metric("gatewise_serve_loaded_version", version=first) == 1
        assert server.metric("gatewise_serve_swaps_total") == 3
    finally:
        if traffic is not None:
            traffic.stop()
        assert server.stop() == 0


def test_a_promotion_with_swapped_bytes_keeps_the_last_good_model(pipeline, rows, tmp_path):
    home, report = pipeline
    copy = copy_home(home, tmp_path / "home")
    first, candidate = report["promoted"], another_version(report, "int8_static")
    second = candidate["version"]
    from gatewise.registry import Registry

    with Registry.open(copy, create=False) as registry:
        target = registry.artifact_path(second)
    target.chmod(0o644)
    target.write_bytes(target.read_bytes().replace(b"gatewise.input_spec", b"gatewise.input_spek"))
    server = Server(copy, serve_config(tmp_path / "gatewise.toml", poll_s=0.2))
    try:
        assert server.wait_for(server.ready_version, what="/readyz") == first
        promote(copy, candidate, "try another compressed model")
        refusal = server.wait_for(lambda: [line for line in server.lines if "refused" in line], what="a refusal line")
        assert second in refusal[0] and "sha256" in refusal[0] and f"still serving {first}" in refusal[0]
        answer = server.client.post(PREDICT, json={"rows": records(rows.head(2))})
        assert answer.status_code == 200 and answer.json()["version"] == first
        assert server.metric("gatewise_serve_refused_loads_total", version=second) == 1
    finally:
        assert server.stop() == 0


def test_only_signed_entries_decide_what_is_served(pipeline, rows, tmp_path):
    """An alias row edited behind the registry's back, or a promotion entry signed by a stranger's
    key, changes nothing: the server keeps answering with the signed live version."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from gatewise.registry import Registry
    from gatewise.registry import statements as st
    from test_registry_support import Backend, forge_entry

    home, report = pipeline
    copy = copy_home(home, tmp_path / "home")
    first, other = report["promoted"], another_version(report, "int8_static")
    server = Server(copy, serve_config(tmp_path / "gatewise.toml", poll_s=0.2))
    backend = Backend(copy, None)
    try:
        assert server.wait_for(server.ready_version, what="/readyz") == first
        assert backend.sql("UPDATE models SET production_version = ? WHERE name = ?", other["version"], MODEL) == []
        # A signed write that moves the head, so that the server reads the live version again.
        assert gatewise(copy, "keys", "init", "--approver", "auditor").returncode == 0
        time.sleep(1.0)  # several polls
        assert server.ready_version() == first
        assert not [line for line in server.lines if "cannot read the registry" in line or "refused" in line]
        with Registry.open(copy, create=False) as registry:
            seq, digest = registry.head()
        forge_entry(backend, seq + 1, digest, st.PROMOTION,
                    {"version": other["version"], "model": MODEL, "alias": "production", "previous_version": first,
                     "reason": "forged", "gate_results": []},
                    Ed25519PrivateKey.generate(), subject=other["sha256"], ref=other["version"])
        reported = server.wait_for(lambda: [line for line in server.lines if "cannot read the registry" in line],
                                   what="the forged entry to be reported")
        assert len(reported) == 1 and str(seq + 1) in reported[0], reported
        answer = server.client.post(PREDICT, json={"rows": records(rows.head(1))})
        assert answer.status_code == 200 and answer.json()["version"] == first
        assert server.metric("gatewise_serve_swaps_total") == 1
    finally:
        backend.close()
        assert server.stop() == 0


def test_log_inputs_writes_the_raw_feature_columns_to_parquet(pipeline, rows, tmp_path):
    home, _ = pipeline
    copy = copy_home(home, tmp_path / "home")
    server = Server(copy, serve_config(tmp_path / "gatewise.toml", log_inputs=True))
    try:
        server.wait_for(server.ready_version, what="/readyz")
        sent = rows.head(25)
        for start in range(0, 25, 5):
            assert server.client.post(PREDICT, json={"rows": records(sent.iloc[start : start + 5])}).status_code == 200
        assert server.client.post(PREDICT, json={"rows": [{"age": 3}]}).status_code == 422  # refused rows are not logged
    finally:
        assert server.stop() == 0  # a graceful stop writes what is buffered
    files = sorted((copy / "serving" / "inputs" / MODEL).glob("*.parquet"))
    assert len(files) == 1
    logged = pd.read_parquet(files[0])
    assert sorted(logged.columns) == sorted(sent.columns)
    pd.testing.assert_frame_equal(logged[sent.columns].reset_index(drop=True),
                                  sent.astype({c: "float64" for c in ("year", "age", "checks")}).reset_index(drop=True),
                                  check_dtype=False)


def test_cli_errors_are_one_line_with_exit_2(pipeline, tmp_path):
    home, _ = pipeline
    unknown = gatewise(home, "serve", "--model", "nope", "--port", "0")
    assert unknown.returncode == 2 and unknown.stderr.strip().count("\n") == 0
    assert "unknown model 'nope'" in unknown.stderr and MODEL in unknown.stderr
    missing = gatewise(tmp_path / "empty", "serve", "--port", "0")
    assert missing.returncode == 2 and "no registry" in missing.stderr
    assert not (tmp_path / "empty").exists()
    bad = serve_config(tmp_path / "bad.toml", max_batch=0)
    config = gatewise(home, "serve", "--config", str(bad), "--port", "0")
    assert config.returncode == 2 and "serve.max_batch" in config.stderr
    port = gatewise(home, "serve", "--port", "99999")
    assert port.returncode == 2 and "not a TCP port" in port.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = gatewise(home, "serve", "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr
