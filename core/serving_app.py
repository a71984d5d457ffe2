"""The HTTP face of `gatewise serve`: predict, health, readiness and Prometheus metrics (FastAPI).

``create_app`` wires the pieces: the follower (what version is live and loaded), the micro-batcher
(how rows are scored), the request checks and the optional input log. (No ``from __future__ import annotations``: FastAPI reads the handlers'
annotations at runtime, and ``Request`` is imported inside ``create_app``.)
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewise.serving_model import ModelFollower, ServedModel
from gatewise.serving_requests import MAX_BODY_BYTES, RequestError, check_rows, parse_body

logger = logging.getLogger("gatewise.serve")

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)


@dataclass(frozen=True)
class ServeOptions:
    """How one server runs: the settings of ``[serve]`` plus where the input log goes."""

    max_batch: int
    max_wait_ms: float
    poll_s: float
    log_inputs: bool
    home: Path


class ServingMetrics:
    """The server's Prometheus metrics, in a registry of its own (several apps may share a process)."""

    def __init__(self, model: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.model = model
        self.registry = CollectorRegistry()
        self.requests = Counter("gatewise_serve_requests", "Predict requests answered, by HTTP status.",
                                ["model", "code"], registry=self.registry)
        self.errors = Counter("gatewise_serve_errors", "Predict requests refused or failed, by reason.",
                              ["model", "reason"], registry=self.registry)
        self.latency = Histogram("gatewise_serve_request_seconds", "Time to answer a predict request.",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("gatewise_serve_batch_rows", "Rows scored per micro-batch.",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.loaded = Gauge("gatewise_serve_loaded_version", "1 for the version being served (its labels name it).",
                            ["model", "version", "sha256"], registry=self.registry)
        self.refused = Counter("gatewise_serve_refused_loads", "Loads refused: bytes that a signed live entry does not name.",
                               ["model", "version", "reason"], registry=self.registry)
        self.swaps = Counter("gatewise_serve_swaps", "Versions loaded and swapped in without a restart.",
                             ["model"], registry=self.registry)

    def on_loaded(self, new: ServedModel, old: ServedModel | None) -> None:
        if old is not None:
            with contextlib.suppress(KeyError):
                self.loaded.remove(old.model, old.version, old.sha256)
        self.loaded.labels(new.model, new.version, new.sha256).set(1)
        self.swaps.labels(new.model).inc()

    def on_refused(self, version: str, reason: str) -> None:
        self.refused.labels(self.model, version, reason).inc()

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def create_app(follower: ModelFollower, options: ServeOptions, metrics: ServingMetrics) -> Any:
    """The FastAPI application. Its lifespan loads the live version, then follows the ledger head."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST

    from gatewise.scoring import DECISION_THRESHOLD
    from gatewise.serving_batcher import MicroBatcher
    from gatewise.serving_inputs import InputLog, inputs_dir

    model_name = follower.model
    batcher: MicroBatcher | None = None
    input_log: InputLog | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        nonlocal batcher, input_log
        await asyncio.to_thread(follower.poll)  # the live version, before the first request is read
        stop = threading.Event()
        thread = threading.Thread(target=follower.follow, args=(options.poll_s, stop), name="gatewise-follower", daemon=True)
        thread.start()
        batcher = MicroBatcher(options.max_batch, options.max_wait_ms / 1000.0,
                               on_batch=metrics.batch_rows.labels(model_name).observe)
        scoring = asyncio.create_task(batcher.run())
        if options.log_inputs:
            input_log = InputLog(inputs_dir(options.home, model_name))
        try:
            yield
        finally:
            stop.set()
            scoring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scoring
            batcher.close()
            if input_log is not None:
                await asyncio.to_thread(input_log.close)
            thread.join(timeout=5)

    app = FastAPI(title="gatewise serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def refuse(error: RequestError, reason: str, started: float) -> Any:
        metrics.errors.labels(model_name, reason).inc()
        metrics.requests.labels(model_name, str(error.status)).inc()
        metrics.latency.labels(model_name).observe(time.perf_counter() - started)
        return JSONResponse(error.document(), status_code=error.status)

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Any:
        served = follower.current
        if served is None:
            return JSONResponse({"ready": False, "model": model_name, "reason": "no verified version loaded"}, status_code=503)
        return {"ready": True, "model": model_name, "version": served.version, "sha256": served.sha256}

    @app.get("/metrics")
    async def prometheus() -> Any:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/models/{model}/predict")
    async def predict(model: str, request: Request) -> Any:
        started = time.perf_counter()
        if model != model_name:
            return refuse(RequestError(404, f"unknown model '{model}'; this server serves '{model_name}'", "model"), "unknown_model", started)
        served = follower.current
        if served is None:
            return refuse(RequestError(503, f"no verified version of '{model_name}' is loaded yet", None), "not_ready", started)
        try:
            body = await _read_body(request)
            rows = check_rows(parse_body(body), served.spec)
        except RequestError as error:
            return refuse(error, "too_large" if error.status == 413 else "bad_request", started)
        try:
            scores = await batcher.score(served, rows)
        except Exception as exc:  # noqa: BLE001 - one line in the log, a JSON 500 to the client
            logger.warning("scoring failed on %s: %s: %s", served.version, type(exc).__name__, exc)
            return refuse(RequestError(500, f"scoring failed: {type(exc).__name__}", None), "internal", started)
        if input_log is not None:
            input_log.add(rows)
        metrics.requests.labels(model_name, "200").inc()
        metrics.latency.labels(model_name).observe(time.perf_counter() - started)
        return JSONResponse({
            "model": model_name,
            "version": served.version,
            "predictions": [{"label": int(p >= DECISION_THRESHOLD), "probability": float(p)} for p in scores],
        })

    return app


async def _read_body(request: Any) -> bytes:
    """The body, refused with 413 past MAX_BODY_BYTES without reading the rest into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(413, f"body of {int(declared)} bytes; at most {MAX_BODY_BYTES}", "body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, f"body larger than {MAX_BODY_BYTES} bytes", "body")
        chunks.append(chunk)
    return b"".join(chunks)
