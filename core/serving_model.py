"""The model a server answers with: only bytes whose sha256 the signed live entry names, followed
at the ledger head so that a promotion or a rollback is served without a restart.

Serving sits beside the CLI, on top of the registry (like ``cli.py``); heavy libraries load
inside functions.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.encoding import InputSpec
from gatewise.errors import GatewiseError
from gatewise.scoring import score_rows

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger("gatewise.serve")


class RefusedLoad(GatewiseError):
    """The live version's bytes cannot be served; ``reason`` is a short label for /metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One loaded version: an ONNX Runtime session and the input contract, both from the same bytes."""

    model: str
    version: str
    sha256: str
    spec: InputSpec
    session: Any
    row_by_row: bool  # batch-dependent operators: each row is scored alone, as in the gates

    def score(self, features: np.ndarray) -> np.ndarray:
        """P(positive) per row of an encoded matrix; a row's answer never depends on its neighbours."""
        return score_rows(self.session, features, self.row_by_row)


def load_verified(model: str, version: str, expected_sha256: str | None, artifact: Path, threads: int = 2) -> ServedModel:
    """Read ``artifact`` once into memory, hash it, and build the session from those same bytes.

    Raises RefusedLoad unless their sha256 equals ``expected_sha256`` (the signed candidate entry's)
    and they are an ONNX model carrying its input contract.
    """
    import onnx
    import onnxruntime as ort

    from gatewise.scoring import batch_dependent, input_spec_of, session_options

    if not expected_sha256:
        raise RefusedLoad("no_signed_sha256", f"{version}: the registry names no sha256 for it")
    try:
        data = Path(artifact).read_bytes()
    except OSError as exc:
        raise RefusedLoad("unreadable", f"{version}: cannot read its artifact ({exc.strerror or exc})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise RefusedLoad(
            "sha256_mismatch",
            f"{version}: artifact bytes have sha256 {actual[:16]}..., the signed entry names {expected_sha256[:16]}...",
        )
    try:
        proto = onnx.load_model_from_string(data)
        spec = input_spec_of(proto, version)
        session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
    except GatewiseError as exc:
        raise RefusedLoad("no_input_contract", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - signed bytes that do not load are refused, never served
        raise RefusedLoad("invalid_model", f"{version}: ONNX Runtime cannot load it ({type(exc).__name__}: {str(exc)[:160]})") from None
    return ServedModel(model=model, version=version, sha256=actual, spec=spec, session=session,
                       row_by_row=batch_dependent(proto))


class ModelFollower:
    """Keeps ``current`` equal to the model's live version, polling the ledger head.

    ``current`` is swapped by one reference assignment: a request holds the model it started
    with until it is answered, so a swap drops nothing. A refused load keeps the last good model
    (or none at start) and is logged once per version and reason.
    """

    def __init__(
        self,
        registry: Any,
        model: str,
        *,
        on_loaded: Callable[[ServedModel, ServedModel | None], None] = lambda new, old: None,
        on_refused: Callable[[str, str], None] = lambda version, reason: None,
    ) -> None:
        self.registry = registry
        self.model = model
        self.current: ServedModel | None = None
        self._on_loaded = on_loaded
        self._on_refused = on_refused
        self._head: tuple[int, str] | None = None
        self._settled = False  # the live version at _head is loaded or its refusal was reported
        self._reported: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """One poll: when the head moved (or the live version is not loaded), re-read the champion."""
        with self._lock:
            try:
                head = self.registry.head()
                if head == self._head and self._settled:
                    return
                self._head = head
                live = self.registry.champion(self.model)
                if live is None:
                    self._settled = True
                    self._report("-", "no_production_version", f"no production version of '{self.model}' yet")
                    return
                if self.current is not None and (self.current.version, self.current.sha256) == (live.version, live.sha256):
                    self._settled = True
                    return
                path = self.registry.artifact_path(live.version)
            except GatewiseError as exc:
                self._settled = False  # a transient registry error: try again at the next poll
                self._report("-", "registry_error", f"cannot read the registry: {exc}")
                return
            try:
                loaded = load_verified(self.model, live.version, live.sha256, path)
            except RefusedLoad as exc:
                # Retried at every poll (the bytes may be restored), reported once.
                self._settled = False
                keeping = f"; still serving {self.current.version}" if self.current else "; not ready"
                self._report(live.version, exc.reason, f"refused to load {exc}{keeping}")
                return
            previous, self.current = self.current, loaded
            self._settled, self._reported = True, None
            self._on_loaded(loaded, previous)
            note = " (row by row: batch-dependent quantization)" if loaded.row_by_row else ""
            logger.info("serving %s (sha256 %s...)%s%s", loaded.version, loaded.sha256[:16], note,
                           f", was {previous.version}" if previous else "")

    def _report(self, version: str, reason: str, message: str) -> None:
        if self._reported == (version, reason):
            return
        self._reported = (version, reason)
        if reason not in ("no_production_version", "registry_error"):
            self._on_refused(version, reason)
        logger.warning("%s", message)

    def poll(self) -> None:
        """``check()``, logging instead of raising: the follower outlives any one bad poll."""
        try:
            self.check()
        except Exception as exc:  # noqa: BLE001 - e.g. a driver error the registry did not translate
            logger.warning("following the ledger: %s: %s", type(exc).__name__, exc)

    def follow(self, poll_s: float, stop: threading.Event) -> None:
        """Poll every ``poll_s`` seconds until ``stop`` is set (run in a daemon thread)."""
        while not stop.wait(poll_s):
            self.poll()
