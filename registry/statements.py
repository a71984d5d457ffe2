"""in-toto Statement v1 in DSSE envelopes: canonical JSON, the DSSE PAE, Ed25519 sign and check.

Everything here is standard so that tools outside gatewise can check an entry: the envelope is
DSSE v1 (payloadType ``application/vnd.in-toto+json``), the payload an in-toto Statement v1.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from pathlib import PurePath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gatewise.errors import RegistryError
from gatewise.gate_names import MANDATORY_GATES  # noqa: F401 - re-exported: the five gates no promotion can skip

try:  # parsing only: what is signed and stored is always written by the json module below
    from orjson import loads as parse_json
except ImportError:  # pragma: no cover - orjson comes with prefect, but is not required
    parse_json = json.loads

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_BASE = "https://gatewise.dev/predicates/"

KEY = PREDICATE_BASE + "key/v1"
RUN = PREDICATE_BASE + "run/v1"
CANDIDATE = PREDICATE_BASE + "candidate/v1"
GATE_RESULT = PREDICATE_BASE + "gate-result/v1"
DATA_REJECTED = PREDICATE_BASE + "data-rejected/v1"
PROMOTION = PREDICATE_BASE + "promotion/v1"
# Key lifecycle and human decisions (docs/audit.md): named keys, rotation, revocation; waivers,
# approver-signed promotions that may rely on waivers, rollbacks of the production alias.
KEY_V2 = PREDICATE_BASE + "key/v2"
KEY_ROTATION = PREDICATE_BASE + "key-rotation/v1"
KEY_REVOCATION = PREDICATE_BASE + "key-revocation/v1"
WAIVER = PREDICATE_BASE + "waiver/v1"
PROMOTION_V2 = PREDICATE_BASE + "promotion/v2"
ROLLBACK = PREDICATE_BASE + "rollback/v1"
# Operations: a promoted version handed to a deployer; a monitoring pass over production inputs.
DEPLOYMENT = PREDICATE_BASE + "deployment/v1"
MONITORING = PREDICATE_BASE + "monitoring/v1"
# The gating policy: the thresholds of the five gates, signed by the approver who set them.
POLICY = PREDICATE_BASE + "policy/v1"
# How a run ended (one per run, after its run entry): its outcome, the version promoted, the
# compressors skipped and why.
RUN_OUTCOME = PREDICATE_BASE + "run-outcome/v1"
RUN_OUTCOMES = ("promoted", "blocked", "data_rejected", "interrupted", "failed")
KEY_INTRODUCING = (KEY, KEY_V2, KEY_ROTATION)  # entries that carry a public key
KEY_TYPES = (*KEY_INTRODUCING, KEY_REVOCATION)
DECISION_TYPES = (WAIVER, PROMOTION_V2, ROLLBACK)
NAMES_APPROVER = (*DECISION_TYPES, POLICY)  # entries whose named approver must be their signer
PREDICATE_TYPES = (KEY, RUN, CANDIDATE, GATE_RESULT, DATA_REJECTED, PROMOTION, KEY_V2, KEY_ROTATION, KEY_REVOCATION, WAIVER, PROMOTION_V2, ROLLBACK,
                   DEPLOYMENT, MONITORING, POLICY, RUN_OUTCOME)
_SHORT = {t: t[len(PREDICATE_BASE):].rsplit("/", 1)[0] for t in PREDICATE_TYPES}

GENESIS_PREV = "0" * 64


def short_type(predicate_type: str) -> str:
    """``https://gatewise.dev/predicates/gate-result/v1`` -> ``gate-result``."""
    short = _SHORT.get(predicate_type)
    if short is None:
        short = predicate_type
        if isinstance(predicate_type, str) and predicate_type.startswith(PREDICATE_BASE):
            short = predicate_type[len(PREDICATE_BASE):].rsplit("/", 1)[0]
    return short


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of ``value``: numpy scalars unwrapped, tuples as lists, paths as text.

    Non-finite floats have no JSON form; they are written as the strings ``NaN``, ``Infinity``
    and ``-Infinity`` so that a gate reporting an undefined metric can still be recorded.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(item) for item in value)
    if isinstance(value, PurePath):
        return str(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, pandas series
    if callable(tolist):
        return jsonable(tolist())
    raise RegistryError(f"cannot record a value of type {type(value).__name__} in the registry: {value!r}")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any, *, clean: bool = False) -> str:
    """Sorted keys, no spaces, UTF-8: the one text form gatewise signs and stores.

    ``clean=True`` skips ``jsonable`` for values that already went through it.
    """
    return _ENCODER.encode(value if clean else jsonable(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 <len(type)> <type> <len(body)> <body>``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(body), body)


def statement(subject_name: str, subject_sha256: str, predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": subject_sha256}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def sign_statement(stmt: dict[str, Any], key: Ed25519PrivateKey, keyid: str) -> tuple[str, bytes]:
    """Sign a statement (already ``jsonable``); returns (the DSSE envelope as JSON, the payload bytes)."""
    body = canonical_json(stmt, clean=True).encode("utf-8")
    signature = key.sign(pae(PAYLOAD_TYPE, body))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode("ascii"),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return canonical_json(envelope, clean=True), body


class EnvelopeError(ValueError):
    """An envelope that cannot be read at all (bad JSON, bad base64, wrong shape)."""


def open_envelope(envelope_text: str) -> tuple[bytes, str, bytes]:
    """Parse a DSSE envelope; returns (payload bytes, keyid, signature). Checks the shape only."""
    try:
        envelope = parse_json(envelope_text)
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"envelope is not JSON ({exc})") from None
    return envelope_parts(envelope)


def envelope_parts(envelope: Any) -> tuple[bytes, str, bytes]:
    """``open_envelope`` for an envelope already parsed (an audit bundle line carries it as an object)."""
    if not isinstance(envelope, dict) or envelope.get("payloadType") != PAYLOAD_TYPE:
        raise EnvelopeError(f"envelope payloadType is not {PAYLOAD_TYPE}")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise EnvelopeError("envelope must carry exactly one signature")
    try:
        body = binascii.a2b_base64(envelope["payload"], strict_mode=True)
        signature = binascii.a2b_base64(signatures[0]["sig"], strict_mode=True)
        keyid = str(signatures[0]["keyid"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"envelope payload or signature is not valid base64 ({exc})") from None
    return body, keyid, signature


_PUBLIC_KEYS: dict[bytes, Ed25519PublicKey] = {}


def signature_valid(public_key: bytes, body: bytes, signature: bytes) -> bool:
    try:
        key = _PUBLIC_KEYS.get(public_key)
        if key is None:
            key = _PUBLIC_KEYS[public_key] = Ed25519PublicKey.from_public_bytes(public_key)
        key.verify(signature, pae(PAYLOAD_TYPE, body))
    except (InvalidSignature, ValueError):
        return False
    return True
