"""Reading the signed ledger itself, for everything that decides: which keys may sign, which version
is live, which bytes a version is, what a version's latest gate results are.

Nothing here trusts a projection row. An entry is used only if its payload hashes to its digest,
it sits at the position its signature names, and it is signed by a key that the ledger's own key
entries (replayed in order, each one checked) made valid for that entry's type at that position.
An entry that fails any of this stops the read with one RegistryError line (fail closed): the
reader never falls back to an older entry, which would quietly roll production back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from gatewise.errors import RegistryError
from gatewise.registry import statements as st
from gatewise.registry.schema import LedgerEntry
from gatewise.registry.statements import MANDATORY_GATES

_L = LedgerEntry.__table__.c
_ROW = (_L.seq, _L.digest, _L.keyid, _L.envelope)
MOVES = (st.PROMOTION, st.PROMOTION_V2, st.ROLLBACK)  # entries that move a production alias
PROMOTIONS = (st.PROMOTION, st.PROMOTION_V2)
_VERIFY = "run `gatewise registry verify`"


@dataclass(frozen=True)
class Signed:
    """One ledger entry whose digest, position and signature checked out."""

    seq: int
    digest: str
    predicate_type: str
    predicate: dict[str, Any]
    subject: str  # the statement's subject sha256
    keyid: str

    @property
    def time(self) -> str:
        return self.predicate["ledger"]["time"]


class GateVerdict(NamedTuple):
    """The latest signed result of one gate on one version."""

    gate: str
    seq: int
    digest: str
    passed: bool


class SignedLedger:
    """Checked reads of one connection's ledger. The key set is read (and checked) once."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._ring: Any = None

    # -- keys --------------------------------------------------------------------------------------

    @property
    def keyring(self) -> Any:
        """The ledger's key set: every key entry replayed in order, each signature checked by the
        key that was valid for it (the first key signs itself)."""
        if self._ring is None:
            self._ring = self._replay_keys()
        return self._ring

    def _replay_keys(self) -> Any:
        from gatewise.registry.keyring import Keyring, key_facts

        ring = Keyring()
        rows = self.conn.execute(
            select(*_ROW).where(_L.predicate_type.in_(st.KEY_TYPES), _L.seq.is_not(None)).order_by(_L.seq)
        )
        for row in rows:
            body, keyid, signature, stmt = _open(row)
            try:
                facts = key_facts(stmt["predicateType"], stmt["predicate"])
            except (KeyError, TypeError):
                raise _unverified(row.seq, "its key statement cannot be read") from None
            # The genesis key proves itself; every later key entry is signed by a key already in.
            public = ring.public(keyid) if ring.keys else _public_of(facts)
            if public is None or not st.signature_valid(public, body, signature):
                raise _unverified(row.seq, "its signature does not verify with a key of the ledger")
            found = ring.take_key(int(row.seq), keyid, facts, stmt["predicate"]["ledger"].get("time"))
            if found:
                raise _unverified(row.seq, found[0])
        if not ring.keys:
            raise RegistryError(f"the ledger introduces no key: {_VERIFY}")
        return ring

    def signer_problem(self, keyid: str, seq: int, predicate_type: str, predicate: dict[str, Any]) -> str | None:
        """Why ``keyid`` could not sign this entry at ``seq``, or None (the rules of gatewise.registry.keyring)."""
        from gatewise.registry.keyring import APPROVER, APPROVER_SIGNED, PIPELINE

        state = self.keyring.keys.get(keyid)
        if state is None or seq < state.introduced_seq or seq == state.introduced_seq != 1:
            return f"key {keyid[:16]} was not introduced before it"
        if state.changed_seq is not None and seq > state.changed_seq:
            return f"key {keyid[:16]} ({state.describe()}) was {state.status} at entry {state.changed_seq}"
        if predicate_type in st.KEY_TYPES:
            return None  # checked by the replay
        approver = predicate.get("approver") if predicate_type in st.NAMES_APPROVER else None
        needs = APPROVER if predicate_type in APPROVER_SIGNED or approver else PIPELINE
        if state.role != needs:
            return f"it must be signed by {'an approver' if needs == APPROVER else 'a pipeline'} key, not the {state.describe()}"
        if approver is not None and (not isinstance(approver, dict) or approver.get("keyid") != keyid or approver.get("name") != state.name):
            return f"it names an approver other than the signer ({state.describe()})"
        return None

    # -- entries ----------------------------------------------------------------------------------

    def check(self, row: Any) -> Signed:
        """The entry of a ledger row (seq, digest, keyid, envelope), checked; else RegistryError."""
        body, keyid, signature, stmt = _open(row)
        public = self.keyring.public(keyid)
        if public is None or not st.signature_valid(public, body, signature):
            raise _unverified(row.seq, f"its signature by key {keyid[:16]} does not verify")
        predicate = stmt["predicate"]
        problem = self.signer_problem(keyid, int(row.seq), stmt["predicateType"], predicate)
        if problem:
            raise _unverified(row.seq, problem)
        return Signed(int(row.seq), row.digest, stmt["predicateType"], predicate, stmt["subject"][0]["digest"]["sha256"], keyid)

    def entries(self, seqs: Iterable[Any]) -> dict[int, Signed]:
        """The checked entries at these seqs (None and non-integers ignored; a missing seq is absent)."""
        wanted = sorted({s for s in seqs if isinstance(s, int) and not isinstance(s, bool)})
        found: dict[int, Signed] = {}
        for start in range(0, len(wanted), 500):
            for row in self.conn.execute(select(*_ROW).where(_L.seq.in_(wanted[start:start + 500]))):
                found[int(row.seq)] = self.check(row)
        return found

    def about(self, ref: str, predicate_types: tuple[str, ...]) -> list[Signed]:
        """Every entry about ``ref`` (a version, run id or key id) of these types, in ledger order."""
        rows = self.conn.execute(
            select(*_ROW).where(_L.ref == ref, _L.predicate_type.in_(predicate_types), _L.seq.is_not(None)).order_by(_L.seq)
        )
        return [self.check(row) for row in rows]

    def candidate(self, version: str) -> Signed | None:
        """The signed candidate entry that registered ``version``, or None if there is none."""
        found = [entry for entry in self.about(version, (st.CANDIDATE,)) if entry.predicate.get("version") == version]
        if len(found) > 1:
            raise RegistryError(f"version {version} is registered by more than one entry ({', '.join(str(e.seq) for e in found)}): {_VERIFY}")
        return found[0] if found else None

    def newest_candidate(self, model: str) -> Signed | None:
        """The newest signed candidate entry of ``model`` (its number is the model's last)."""
        rows = self.conn.execute(select(_L.seq, _L.ref).where(_L.predicate_type == st.CANDIDATE, _L.seq.is_not(None)).order_by(_L.seq.desc()))
        prefix = f"{model}:v"
        for seq, ref in rows:
            if isinstance(ref, str) and ref.startswith(prefix):
                entry = self.entries([int(seq)]).get(int(seq))
                if entry is not None and entry.predicate.get("model") == model:
                    return entry
        return None

    def version(self, version: str) -> VersionRecord:
        """The version as its signed candidate entry registered it; unknown version: RegistryError."""
        entry = self.candidate(version)
        if entry is None:
            from gatewise.registry.schema import VersionRow

            names = VersionRow.__table__.c.name
            found = list(self.conn.execute(select(names).order_by(VersionRow.__table__.c.entry_seq.desc()).limit(11)).scalars())
            known = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "") if found else "none"
            raise RegistryError(f"unknown version '{version}' (known: {known})")
        return version_record(entry)

    def live_version(self, model: str) -> str | None:
        """The name of ``model``'s live production version (see ``production``), or None."""
        move = self.production(model)
        return move.predicate.get("version") if move is not None else None

    def production(self, model: str) -> Signed | None:
        """The newest signed promotion or rollback of ``model``: the entry that made its live version."""
        rows = self.conn.execute(
            select(_L.seq, _L.ref).where(_L.predicate_type.in_(MOVES), _L.seq.is_not(None)).order_by(_L.seq.desc())
        )
        prefix = f"{model}:v"
        found = None
        for seq, ref in rows:
            if not isinstance(ref, str) or not ref.startswith(prefix):
                continue
            entry = self.entries([int(seq)]).get(int(seq))
            if entry is not None and entry.predicate.get("model") == model:
                found = entry
                break
        # A second opinion, for a newest move whose ``ref`` or ``predicate_type`` column was edited
        # to hide it from the search above: the alias row's seq, used only if its entry is a signed
        # move of this model newer than the one found (an edited row alone changes nothing).
        from gatewise.registry.schema import ModelRow

        models = ModelRow.__table__.c
        hints = self.conn.execute(select(models.production_seq).where(models.name == model, models.production_seq.is_not(None)))
        newer = sorted({h for (h,) in hints if isinstance(h, int) and h > (found.seq if found else 0)}, reverse=True)
        for seq, entry in sorted(self.entries(newer).items(), reverse=True) if newer else ():
            if entry.predicate_type in MOVES and entry.predicate.get("model") == model:
                return entry
        return found

    def moves(self, model: str) -> list[Signed]:
        """Every signed promotion and rollback of ``model``, in ledger order."""
        rows = self.conn.execute(select(*_ROW, _L.ref).where(_L.predicate_type.in_(MOVES), _L.seq.is_not(None)).order_by(_L.seq))
        prefix = f"{model}:v"
        checked = [self.check(row) for row in rows if isinstance(row.ref, str) and row.ref.startswith(prefix)]
        return [entry for entry in checked if entry.predicate.get("model") == model]

    def promoted(self, versions: Iterable[str]) -> set[str]:
        """Which of these versions a signed promotion ever named."""
        names = sorted(set(versions))
        found: set[str] = set()
        for start in range(0, len(names), 500):
            chunk = names[start:start + 500]
            rows = self.conn.execute(select(*_ROW).where(_L.ref.in_(chunk), _L.predicate_type.in_(PROMOTIONS), _L.seq.is_not(None)))
            found.update(entry.predicate.get("version") for entry in map(self.check, rows))
        return found & set(names)

    def latest_results(self, version: str) -> dict[str, GateVerdict]:
        """The latest signed result of every gate recorded for ``version``, by gate name."""
        latest: dict[str, GateVerdict] = {}
        for entry in self.about(version, (st.GATE_RESULT,)):
            p = entry.predicate
            if p.get("version") != version or not isinstance(p.get("gate"), str):
                raise _unverified(entry.seq, f"it is not a gate result of {version}")
            latest[p["gate"]] = GateVerdict(p["gate"], entry.seq, entry.digest, p.get("passed") is True)
        return latest


class VersionRecord(NamedTuple):
    """A version as its signed candidate entry registered it (field names as in the versions table)."""

    name: str
    model: str
    number: int
    run_id: str
    candidate: str
    status: str
    sha256: str | None
    size_bytes: int | None
    error: str | None
    plugin_name: str
    plugin_version: str
    plugin_distribution: str
    plugin_code_sha256: str
    parent_version: str | None
    entry_seq: int
    entry_digest: str
    created_at: str
    subject: str  # the statement's subject: the artifact's sha256, or a digest of the error


def version_record(entry: Signed) -> VersionRecord:
    p = entry.predicate
    artifact, plugin, parent = p.get("artifact") or {}, p.get("plugin") or {}, p.get("parent") or {}
    return VersionRecord(
        p["version"], p["model"], p["number"], p["run_id"], p["candidate"], p["status"], artifact.get("sha256"),
        artifact.get("size_bytes"), p.get("error"), plugin.get("name"), plugin.get("version"), plugin.get("distribution"),
        plugin.get("code_sha256"), parent.get("version"), entry.seq, entry.digest, entry.time, entry.subject,
    )


def measured(value: Any) -> float | None:
    """A signed measured value as the tables hold it: a number, or None (also NaN and infinities)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def gate_order(gates: Iterable[str]) -> list[str]:
    """The mandatory gates in their fixed order, then any others by name."""
    gates = set(gates)
    return [g for g in MANDATORY_GATES if g in gates] + sorted(gates - set(MANDATORY_GATES))


def _open(row: Any) -> tuple[bytes, str, bytes, dict[str, Any]]:
    """Payload, signer, signature and statement of a row whose digest and position match its payload."""
    try:
        body, keyid, signature = st.open_envelope(row.envelope)
        stmt = json.loads(body)
        signed_seq = stmt["predicate"]["ledger"]["seq"]
        stmt["subject"][0]["digest"]["sha256"]
        stmt["predicateType"]
    except (st.EnvelopeError, ValueError, KeyError, IndexError, TypeError):
        raise _unverified(row.seq, "it cannot be read") from None
    if st.sha256_hex(body) != row.digest:
        raise _unverified(row.seq, "its payload does not match its digest")
    if row.seq is None or signed_seq != row.seq:
        raise _unverified(row.seq, f"it was signed as entry {signed_seq}")
    return body, keyid, signature, stmt


def _public_of(facts: Any) -> bytes | None:
    import base64
    import binascii

    try:
        return base64.b64decode(facts.public_key or "", validate=True)
    except (binascii.Error, ValueError):
        return None


def _unverified(seq: Any, why: str) -> RegistryError:
    return RegistryError(f"ledger entry {seq} does not verify ({why}): {_VERIFY}")
