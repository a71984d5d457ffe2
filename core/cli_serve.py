"""`gatewise serve`: answer predictions with the live, verified version of one model over HTTP.

FastAPI, uvicorn, ONNX Runtime and the registry load inside the handler, so `gatewise --help`
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from gatewise.errors import UsageError


def add_commands(commands: Any, registry_commands: Any) -> None:
    """Add `gatewise serve`."""
    serve = commands.add_parser(
        "serve",
        help="serve the live version of a model over HTTP (follows promotions and rollbacks)",
        description="Answer POST /v1/models/MODEL/predict with the model's production version. Only bytes whose sha256 "
        "the signed candidate entry names are loaded; the ledger head is polled every [serve] poll_s and a promotion "
        "or rollback is swapped in without a restart. GET /healthz, /readyz (ready once a verified version is loaded) "
        "and /metrics (Prometheus). Stop with Ctrl-C.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    serve.add_argument("--model", help="model to serve (default: the registry's only model)")
    serve.add_argument("--config", type=Path, help="gatewise.toml (default: ./gatewise.toml if present)")
    serve.add_argument("--max-batch", type=_positive_int, metavar="N", help="most rows per micro-batch (default: [serve] max_batch; 1: no batching)")
    serve.add_argument("--max-wait-ms", type=_non_negative, metavar="MS", help="longest wait for a micro-batch to fill (default: [serve] max_wait_ms)")
    serve.add_argument("--url", default=None, help="registry database URL (default: $GATEWISE_REGISTRY_URL, [registry] url of the config, else <home>/registry.db)")
    serve.set_defaults(handler=_serve)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: '{text}'")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: '{text}'")
    return int(text)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"not a number >= 0: '{text}'")
    return value


def _serve(args: argparse.Namespace) -> int:
    from gatewise.config import load_settings, resolve_registry_url
    from gatewise.registry import Registry

    settings = load_settings(args.config)
    registry = Registry.open(Path(args.home), resolve_registry_url(args.url, settings=settings), create=False)
    try:
        model = _model_to_serve(registry, args.model)
        listener = _bind(args.host, args.port)
        _serve_forever(registry, model, listener, args, settings)
    finally:
        registry.close()
    return 0


def _model_to_serve(registry: Any, wanted: str | None) -> str:
    models = registry.models()
    if wanted is not None:
        if wanted not in models:
            raise UsageError(f"unknown model '{wanted}' (known: {', '.join(models) or 'none: run `gatewise run` first'})")
        return wanted
    if len(models) == 1:
        return models[0]
    if not models:
        raise UsageError("the registry has no model yet: run `gatewise run` first")
    raise UsageError(f"the registry has several models: pick one with --model ({', '.join(models)})")


def _bind(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts, so that a busy port or a bad address is one line, exit 2."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)  # clients queue here while the first version loads, instead of being refused
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    listener.set_inheritable(True)
    return listener


def _serve_forever(registry: Any, model: str, listener: socket.socket, args: argparse.Namespace, settings: Any) -> None:
    import uvicorn

    from gatewise.serving_app import ServeOptions, ServingMetrics, create_app
    from gatewise.serving_model import ModelFollower

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gatewise serve: %(message)s"))
    log = logging.getLogger("gatewise.serve")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    serve = settings.serve
    options = ServeOptions(
        max_batch=args.max_batch or serve.max_batch,
        max_wait_ms=serve.max_wait_ms if args.max_wait_ms is None else args.max_wait_ms,
        poll_s=serve.poll_s,
        log_inputs=serve.log_inputs,
        home=Path(args.home),
    )
    metrics = ServingMetrics(model)
    follower = ModelFollower(registry, model, on_loaded=metrics.on_loaded, on_refused=metrics.on_refused)
    app = create_app(follower, options, metrics)
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("model %s at http://%s:%d/v1/models/%s/predict (micro-batch <= %d rows, wait <= %g ms; ledger poll %g s%s)",
                model, shown, port, model, options.max_batch, options.max_wait_ms, options.poll_s,
                "; logging inputs" if options.log_inputs else "")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=10)
    # uvicorn stops gracefully on SIGINT or SIGTERM, then re-raises the signal; both end here as a
    # KeyboardInterrupt after the graceful stop, and a stop that was asked for exits 0.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("stopped")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
