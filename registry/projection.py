"""From one signed statement to the typed rows it stands for.

The same function feeds both the writer (which inserts the rows next to the ledger entry) and the
verifier (which re-derives them and compares field by field), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gatewise.registry import statements as st
from gatewise.registry.statements import canonical_json


class ProjectionError(ValueError):
    """A statement whose predicate lacks a field or has one of the wrong type."""


@dataclass
class Derived:
    """What one entry contributes to the projections."""

    ref: str  # what the entry is about: a version, a run id or a key id
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> its one row
    artifact: dict[str, Any] | None = None  # the artifacts row, if these bytes are new
    model: str | None = None  # a model this entry creates if it is not known yet
    production: str | None = None  # the version the model's production alias moves to


def _json(value: Any) -> str:
    # Predicates come from JSON (verify) or from jsonable() (append): no conversion needed.
    return canonical_json(value, clean=True)


class JsonValue:
    """A JSON column's expected value for the verifier: equal to any text holding the same JSON
    value, types included (``1``, ``1.0`` and ``true`` differ), without re-serializing it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        if _orjson is None:
            return other == _json(self.value)
        try:
            mine = _orjson.dumps(self.value, option=_SORTED)
            # The stored text is almost always exactly what orjson writes: then it need not be parsed.
            return other.encode() == mine or _orjson.dumps(_orjson.loads(other), option=_SORTED) == mine
        except (ValueError, TypeError):
            return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(_json(self.value))


try:
    import orjson as _orjson

    _SORTED = _orjson.OPT_SORT_KEYS
except ImportError:  # pragma: no cover
    _orjson = None


def artifact_relpath(sha256: str) -> str:
    return f"artifacts/{sha256}.onnx"


def _get(predicate: dict[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    if name not in predicate:
        raise ProjectionError(f"predicate lacks field '{name}'")
    value = predicate[name]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ProjectionError(f"predicate field '{name}' has type {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _number(predicate: dict[str, Any], name: str) -> float | None:
    """A measured value: a JSON number, null, or one of the non-finite spellings (stored NULL)."""
    value = predicate.get(name)
    if value is None or value in ("NaN", "Infinity", "-Infinity"):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProjectionError(f"predicate field '{name}' is not a number")
    return float(value)


def derive(seq: int, digest: str, predicate_type: str, predicate: dict[str, Any], *, for_verify: bool = False) -> Derived:
    """The rows one entry stands for. ``for_verify`` gives JSON columns as ``JsonValue``s."""
    if not isinstance(predicate, dict):
        raise ProjectionError("predicate is not an object")
    ledger = _get(predicate, "ledger", dict)
    created_at = _get(ledger, "time", str)
    common = {"entry_seq": seq, "entry_digest": digest, "created_at": created_at}
    try:
        builder = _BUILDERS[predicate_type]
    except KeyError:
        raise ProjectionError(f"unknown predicate type {predicate_type}") from None
    return builder(predicate, common, JsonValue if for_verify else _json)


def _key(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    keyid = _get(p, "keyid", str)
    row = {
        "keyid": keyid,
        "algorithm": _get(p, "algorithm", str),
        "public_key": _get(p, "public_key", str),
        "role": _get(p, "role", str),
        "introduced_by": _get(p, "introduced_by", str),
        "entry_seq": common["entry_seq"],
        "created_at": common["created_at"],
    }
    return Derived(ref=keyid, rows={"keys": row, "key_events": _key_event(p, common, "introduction", keyid, row["role"])})


def _run(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    run_id = _get(p, "run_id", str)
    model = _get(p, "model", str)
    row = {
        "run_id": run_id,
        "model": model,
        "settings": enc(_get(p, "settings", dict)),
        "settings_digest": _get(p, "settings_digest", str),
        "data": enc(_get(p, "data", dict)),
        "plugins": enc(_get(p, "plugins", list)),
        **common,
    }
    return Derived(ref=run_id, rows={"runs": row}, model=model)


def _candidate(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    version = _get(p, "version", str)
    model = _get(p, "model", str)
    plugin = _get(p, "plugin", dict)
    artifact = _get(p, "artifact", dict, optional=True)
    parent = _get(p, "parent", dict, optional=True)
    sha256 = _get(artifact, "sha256", str) if artifact else None
    size = _get(artifact, "size_bytes", int) if artifact else None
    row = {
        "name": version,
        "model": model,
        "number": _get(p, "number", int),
        "run_id": _get(p, "run_id", str),
        "candidate": _get(p, "candidate", str),
        "status": _get(p, "status", str),
        "sha256": sha256,
        "size_bytes": size,
        "error": _get(p, "error", str, optional=True),
        "plugin_name": _get(plugin, "name", str),
        "plugin_version": _get(plugin, "version", str),
        "plugin_distribution": _get(plugin, "distribution", str),
        "plugin_code_sha256": _get(plugin, "code_sha256", str),
        "parent_version": _get(parent, "version", str, optional=True) if parent else None,
        **common,
    }
    derived = Derived(ref=version, rows={"versions": row}, model=model)
    if sha256 is not None:
        derived.artifact = {
            "sha256": sha256,
            "size_bytes": size,
            "path": artifact_relpath(sha256),
            "entry_seq": common["entry_seq"],
        }
    return derived


def _gate_row(p: dict[str, Any], common: dict[str, Any], enc: Any, kind: str, version: str | None) -> dict[str, Any]:
    evidence = _get(p, "evidence", dict)
    return {
        "kind": kind,
        "version": version,
        "model": _get(p, "model", str),
        "run_id": _get(p, "run_id", str),
        "gate": _get(p, "gate", str),
        "passed": _get(p, "passed", bool),
        "value": _number(p, "value"),
        "threshold": _number(p, "threshold"),
        "summary": _get(p, "summary", str),
        "details": enc(_get(p, "details", dict)),
        "evidence": enc(evidence),
        "policy_digest": _get(evidence, "policy_digest", str, optional=True) if "policy_digest" in evidence else None,
        "champion_version": _get(evidence, "champion_version", str, optional=True) if "champion_version" in evidence else None,
        **common,
    }


def _gate_result(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    version = _get(p, "version", str)
    return Derived(ref=version, rows={"gate_results": _gate_row(p, common, enc, "candidate", version)})


def _data_rejected(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    run_id = _get(p, "run_id", str)
    model = _get(p, "model", str)
    return Derived(ref=run_id, rows={"gate_results": _gate_row(p, common, enc, "data", None)}, model=model)


def _promotion(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    version = _get(p, "version", str)
    model = _get(p, "model", str)
    row = {
        "version": version,
        "model": model,
        "alias": _get(p, "alias", str),
        "previous_version": _get(p, "previous_version", str, optional=True),
        "reason": _get(p, "reason", str),
        "gate_entries": enc(_get(p, "gate_results", list)),
        **common,
    }
    return Derived(ref=version, rows={"promotions": row}, model=model, production=version)


# -- key lifecycle and human decisions (written by gatewise.registry.keyring and .decisions) ------


def _key_event(p: dict[str, Any], common: dict[str, Any], event: str, keyid: str, role: str | None) -> dict[str, Any]:
    signed_by = "revoked_by" if event == "revocation" else "introduced_by"
    return {
        "entry_seq": common["entry_seq"],
        "entry_digest": common["entry_digest"],
        "event": event,
        "keyid": keyid,
        "name": _get(p, "name", str) if event != "revocation" and "name" in p else None,
        "role": role,
        "replaces": _get(p, "replaces", str) if event == "rotation" else None,
        "reason": _get(p, "reason", str, optional=True) if event != "introduction" else None,
        "signed_by": _get(p, signed_by, str),
        "created_at": common["created_at"],
    }


def _named_key(event: str) -> Any:
    def build(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
        _get(p, "name", str)  # key/v2 and rotations always name the holder
        derived = _key(p, common, enc)
        derived.rows["key_events"] = _key_event(p, common, event, derived.ref, derived.rows["keys"]["role"])
        return derived

    return build


def _key_revocation(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    keyid = _get(p, "keyid", str)
    return Derived(ref=keyid, rows={"key_events": _key_event(p, common, "revocation", keyid, None)})


def _approver(p: dict[str, Any], optional: bool = False) -> tuple[str | None, str | None]:
    approver = _get(p, "approver", dict, optional=optional)
    if approver is None:
        return None, None
    return _get(approver, "name", str), _get(approver, "keyid", str)


def _waiver(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    version = _get(p, "version", str)
    name, keyid = _approver(p)
    row = {
        "version": version,
        "model": _get(p, "model", str),
        "gates": enc(_get(p, "gates", list)),
        "approver": name,
        "approver_keyid": keyid,
        "reason": _get(p, "reason", str),
        **common,
    }
    return Derived(ref=version, rows={"waivers": row})


def _promotion_v2(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    _approver(p, optional=True)  # None: the pipeline promoted on five passes
    _get(p, "waivers", list)
    return _promotion(p, common, enc)


def _rollback(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    version = _get(p, "version", str)
    model = _get(p, "model", str)
    name, keyid = _approver(p, optional=True)
    restores = _get(p, "restores", dict)
    row = {
        "version": version,
        "model": model,
        "alias": _get(p, "alias", str),
        "previous_version": _get(p, "previous_version", str),
        "reason": _get(p, "reason", str),
        "approver": name,
        "approver_keyid": keyid,
        "promotion_seq": _get(restores, "seq", int),
        "promotion_digest": _get(restores, "digest", str),
        **common,
    }
    return Derived(ref=version, rows={"rollbacks": row}, model=model, production=version)


def _deployment(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    # Ledger-only: deployments are read from their signed entries, not from a typed table.
    _get(p, "model", str)
    _get(p, "target", str)
    _get(p, "outcome", str)
    return Derived(ref=_get(p, "version", str))


def _monitoring(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    # Ledger-only, like deployments; ref is the model, since a pass may find no live version.
    _get(p, "drifted", bool)
    return Derived(ref=_get(p, "model", str))


def _policy(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    # Ledger-only: the active policy is read from the signed entries (gatewise.registry.policy_entries).
    _approver(p)
    _get(p, "reason", str)
    _get(p, "policy_digest", str)
    gates = _get(p, "gates", dict)
    for section, thresholds in gates.items():
        if not isinstance(thresholds, dict):
            raise ProjectionError(f"policy section '{section}' is not an object")
    return Derived(ref="gate-policy")


def _run_outcome(p: dict[str, Any], common: dict[str, Any], enc: Any) -> Derived:
    # Ledger-only, like deployments; verify checks it names an earlier run entry, once.
    outcome = _get(p, "outcome", str)
    if outcome not in st.RUN_OUTCOMES:
        raise ProjectionError(f"run outcome '{outcome}' is not one of {', '.join(st.RUN_OUTCOMES)}")
    run = _get(p, "run", dict)
    _get(run, "seq", int)
    _get(run, "digest", str)
    _get(p, "promoted", str, optional=True)
    _get(p, "skipped", list)
    _get(p, "model", str)  # named by the run entry already: no model is created here
    return Derived(ref=_get(p, "run_id", str))


_BUILDERS = {
    st.RUN_OUTCOME: _run_outcome,
    st.POLICY: _policy,
    st.DEPLOYMENT: _deployment,
    st.MONITORING: _monitoring,
    st.KEY: _key,
    st.RUN: _run,
    st.CANDIDATE: _candidate,
    st.GATE_RESULT: _gate_result,
    st.DATA_REJECTED: _data_rejected,
    st.PROMOTION: _promotion,
    st.KEY_V2: _named_key("introduction"),
    st.KEY_ROTATION: _named_key("rotation"),
    st.KEY_REVOCATION: _key_revocation,
    st.WAIVER: _waiver,
    st.PROMOTION_V2: _promotion_v2,
    st.ROLLBACK: _rollback,
}
