"""Which keys a ledger trusts, and when: key introductions, rotations and revocations replayed in order.

One set of rules (``Keyring``) serves verification, the writers (under the write lock) and
``gatewise keys show``, always fed the signed key entries of the ledger (gatewise.registry.signed),
never the ``keys``/``key_events`` projections:

- entry 1 introduces the pipeline key and signs itself;
- only an *active pipeline* key introduces, rotates or revokes a key (the operator vouches for
  every approver; an approver cannot mint keys);
- a rotation retires the old key and introduces its successor with the same role and name;
- an entry must be signed by a key that is active at its position: a key signs nothing after the
  entry that rotated or revoked it;
- a waiver is signed by an approver's key; a promotion or rollback by the approver it names (whose
  name must be that key's holder), or by a pipeline key when it names none; everything else the
  pipeline records is signed by a pipeline key.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection

from gatewise.errors import RegistryError, UsageError
from gatewise.registry import statements as st
from gatewise.registry.keys import (
    SigningKey,
    approver_key_file,
    check_approver_name,
    create_approver_key,
    install_successor,
    keyid_of,
    next_path,
    prepare_key_dir,
    read_key,
    write_successor,
)

PIPELINE, APPROVER = "pipeline", "approver"
ROLES = (PIPELINE, APPROVER)
ACTIVE, ROTATED, REVOKED = "active", "rotated", "revoked"

# What signs what: a waiver or a gating policy needs an approver's key; a promotion or a rollback
# is signed by the approver it names, or else by the pipeline; everything else is the pipeline's.
APPROVER_SIGNED = (st.WAIVER, st.POLICY)



@dataclass
class KeyState:
    keyid: str
    public_key: bytes
    role: str
    name: str | None
    introduced_seq: int
    introduced_by: str
    status: str = ACTIVE
    changed_seq: int | None = None  # the rotation or revocation entry
    successor: str | None = None
    reason: str | None = None
    introduced_at: str | None = None
    changed_at: str | None = None

    def describe(self) -> str:
        """``pipeline key`` or ``approver reviewer's key``: for messages."""
        return f"approver {self.name}'s key" if self.role == APPROVER else f"{self.role} key"

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyid": self.keyid,
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "introduced_seq": self.introduced_seq,
            "introduced_at": self.introduced_at,
            "introduced_by": self.introduced_by,
            "changed_seq": self.changed_seq,
            "changed_at": self.changed_at,
            "successor": self.successor,
            "reason": self.reason,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
        }


class KeyFacts(NamedTuple):
    """What the in-order checks need from one key entry (small: it is pickled by verify workers)."""

    kind: str  # introduction | rotation | revocation
    keyid: str
    public_key: str | None  # base64 of the raw key; None for a revocation
    role: str | None
    name: str | None
    replaces: str | None
    signed_by: str  # the predicate's introduced_by / revoked_by
    reason: str | None = None


def key_facts(predicate_type: str, p: dict[str, Any]) -> KeyFacts:
    if predicate_type == st.KEY_REVOCATION:
        return KeyFacts("revocation", p["keyid"], None, None, None, None, p["revoked_by"], p.get("reason"))
    kind = "rotation" if predicate_type == st.KEY_ROTATION else "introduction"
    return KeyFacts(kind, p["keyid"], p["public_key"], p["role"], p.get("name"), p.get("replaces"), p["introduced_by"], p.get("reason"))


def _pin(text: str) -> str:
    pin = str(text).strip().lower()
    if not 16 <= len(pin) <= 64 or any(c not in "0123456789abcdef" for c in pin):
        raise UsageError(f"bad trusted key id '{text}': give the key id or a prefix of it of at least 16 hex characters")
    return pin


def _short(keyid: str | None) -> str:
    return (keyid or "?")[:16]


class Keyring:
    """The keys of one ledger, replayed in entry order. Each ``take*`` returns the problems found."""

    def __init__(self, pinned: tuple[str, ...] | set[str] = ()) -> None:
        # A pinned key is named by its id or any prefix of it of at least 16 hex (displays show 16).
        self.pinned = {_pin(p) for p in pinned}
        self.keys: dict[str, KeyState] = {}

    # -- queries -------------------------------------------------------------------------------

    def public(self, keyid: str | None) -> bytes | None:
        state = self.keys.get(keyid or "")
        return state.public_key if state else None

    def active_ids(self) -> list[str]:
        return sorted(k for k, state in self.keys.items() if state.status == ACTIVE)

    def active_approver(self, name: str) -> KeyState | None:
        for state in self.keys.values():
            if state.role == APPROVER and state.name == name and state.status == ACTIVE:
                return state
        return None

    def ordered(self) -> list[KeyState]:
        return sorted(self.keys.values(), key=lambda state: state.introduced_seq)

    # -- in order ------------------------------------------------------------------------------

    def take(self, seq: int, signer: str | None, predicate_type: str, facts: Any) -> list[str]:
        """Check one entry's signer (and apply a key entry); returns the problems, if any."""
        if predicate_type in st.KEY_TYPES:
            return self.take_key(seq, signer, facts)
        approver = facts.approver if predicate_type in st.NAMES_APPROVER else None
        problem = self.signer_problem(signer, predicate_type, approver)
        return [problem] if problem else []

    def signer_problem(self, signer: str | None, predicate_type: str, approver: tuple[str, str] | None) -> str | None:
        """Why ``signer`` may not sign an entry of this type at this point, or None."""
        state = self.keys.get(signer or "")
        if state is None:
            return f"signed by key {_short(signer)}, which no earlier key entry introduced"
        if state.status == ROTATED:
            return f"signed by key {_short(signer)} ({state.describe()}) after it was rotated at entry {state.changed_seq} (successor {_short(state.successor)})"
        if state.status == REVOKED:
            return f"signed by key {_short(signer)} ({state.describe()}) after it was revoked at entry {state.changed_seq}"
        needs = APPROVER if predicate_type in APPROVER_SIGNED or approver else PIPELINE
        if state.role != needs:
            return f"{st.short_type(predicate_type)} entries must be signed by {'an approver' if needs == APPROVER else 'a pipeline'} key, but key {_short(signer)} is the {state.describe()}"
        if approver is not None and (approver[1] != signer or approver[0] != state.name):
            return f"names approver {approver[0]} (key {_short(approver[1])}) but is signed by key {_short(signer)} ({state.describe()})"
        return None

    def take_key(self, seq: int, signer: str | None, f: KeyFacts, time: str | None = None) -> list[str]:
        if f.kind == "revocation":
            return self._revoke(seq, signer, f, time)
        problems = []
        public = _b64(f.public_key)
        if keyid_of(public) != f.keyid:
            problems.append(f"key entry's public key does not hash to its keyid {_short(f.keyid)}")
        state = KeyState(f.keyid, public, f.role or "?", f.name, seq, f.signed_by, introduced_at=time)
        if not self.keys:
            if f.kind != "introduction" or seq != 1 or signer != f.keyid or f.signed_by != f.keyid or f.role != PIPELINE:
                problems.append("the first key must be a pipeline key introduced by the first entry and sign itself")
            if self.pinned and not any(str(f.keyid).startswith(p) for p in self.pinned):
                problems.append(f"genesis key {_short(f.keyid)} is not one of the trusted keys given "
                                f"(its id is {f.keyid}; trusted: {', '.join(sorted(self.pinned))})")
            self.keys[f.keyid] = state
            return problems
        verb = "rotates to" if f.kind == "rotation" else "introduces"
        refused = self._authority(signer, f.signed_by)
        if refused:
            return problems + [f"{verb} key {_short(f.keyid)} {refused}"]
        if f.keyid in self.keys:
            return problems + [f"{verb} key {_short(f.keyid)} again (first introduced at entry {self.keys[f.keyid].introduced_seq})"]
        if f.role not in ROLES or (f.role == APPROVER and not f.name):
            return problems + [f"{verb} key {_short(f.keyid)} with role {f.role!r} and name {f.name!r}: a key is a pipeline key or a named approver's"]
        if f.kind == "rotation":
            old = self.keys.get(f.replaces or "")
            if old is None or old.status != ACTIVE:
                was = "no earlier key entry introduced" if old is None else f"was {old.status} at entry {old.changed_seq}"
                return problems + [f"rotates key {_short(f.replaces)}, which {was}"]
            if old.role != f.role or (old.role == APPROVER and old.name != f.name):
                return problems + [f"rotates the {old.describe()} to a key of role {f.role} named {f.name}"]
            old.status, old.changed_seq, old.successor, old.reason, old.changed_at = ROTATED, seq, f.keyid, f.reason, time
        elif f.role == APPROVER and (current := self.active_approver(f.name or "")) is not None:
            return problems + [f"introduces a second active key for approver {f.name} (key {_short(current.keyid)} since entry {current.introduced_seq}): rotate it instead"]
        self.keys[f.keyid] = state
        return problems

    def _revoke(self, seq: int, signer: str | None, f: KeyFacts, time: str | None) -> list[str]:
        refused = self._authority(signer, f.signed_by)
        if refused:
            return [f"revokes key {_short(f.keyid)} {refused}"]
        target = self.keys.get(f.keyid)
        if target is None:
            return [f"revokes key {_short(f.keyid)}, which no earlier key entry introduced"]
        if target.status == REVOKED:
            return [f"revokes key {_short(f.keyid)} again (revoked at entry {target.changed_seq})"]
        target.status, target.changed_seq, target.reason, target.changed_at = REVOKED, seq, f.reason, time
        return []

    def _authority(self, signer: str | None, named: str) -> str | None:
        """Why ``signer`` may not change the key set, or None."""
        state = self.keys.get(signer or "")
        if state is None:
            return "without a signature by a key already in the ledger"
        if state.status != ACTIVE:
            return f"with key {_short(signer)} ({state.describe()}), which was {state.status} at entry {state.changed_seq}"
        if state.role != PIPELINE:
            return f"with key {_short(signer)} ({state.describe()}): only an active pipeline key may introduce, rotate or revoke keys"
        if named != signer:
            return f"but names key {_short(named)} as its signer, not {_short(signer)}"
        return None

def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        return b""


def _signed_keyring(conn: Connection) -> Keyring:
    """The key set from the ledger's signed key entries (never from the keys tables)."""
    from gatewise.registry.signed import SignedLedger

    return SignedLedger(conn).keyring


def _b64text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- checks before signing -------------------------------------------------------------------------


def ensure_key(conn: Connection, key: SigningKey, *, role: str = PIPELINE, name: str | None = None) -> KeyState:
    """The ledger's record of ``key`` if it may sign now as ``role`` (and approver ``name``), else RegistryError."""
    state = _signed_keyring(conn).keys.get(key.keyid)
    what = f"approver key {key.path}" if role == APPROVER else f"signing key {key.path}"
    if state is None:
        fix = f"the operator introduces it with `gatewise keys init --approver {name}`" if role == APPROVER else "restore the registry's key file"
        raise RegistryError(f"the {what} (keyid {_short(key.keyid)}) is not a key of this registry: {fix}")
    if state.role != role:
        raise RegistryError(f"the {what} (keyid {_short(key.keyid)}) is the {state.describe()}, not a{'n approver' if role == APPROVER else ' pipeline'} key")
    if name is not None and state.name != name:
        raise RegistryError(f"the {what} (keyid {_short(key.keyid)}) is approver {state.name}'s, not {name}'s")
    if state.status == ROTATED:
        successor = next_path(key.path)
        hint = "copy the current key file from the machine that rotated it"
        if successor.exists():
            try:
                if read_key(successor).keyid == state.successor:
                    hint = f"an interrupted rotation left the new key in {successor}: `mv {successor} {key.path}`"
            except RegistryError:
                pass
        raise RegistryError(
            f"the {what} (keyid {_short(key.keyid)}) was rotated at entry {state.changed_seq} "
            f"(successor {_short(state.successor)}): {hint}"
        )
    if state.status == REVOKED:
        raise RegistryError(f"the {what} (keyid {_short(key.keyid)}) was revoked at entry {state.changed_seq}: it signs nothing more")
    return state


def load_approver_key(registry: Any, conn: Connection, name: str, key_file: Path | None) -> SigningKey:
    """An approver's own key, checked to be their active key in this ledger."""
    path, _ = approver_key_file(registry.home, name, key_file)
    if not path.exists():
        raise RegistryError(f"no key for approver {name} at {path}: the operator creates one with `gatewise keys init --approver {name}`")
    key = read_key(path, f"approver key of {name}")
    ensure_key(conn, key, role=APPROVER, name=name)
    return key


# -- writes (through gatewise.registry.Registry) -----------------------------------------------------


def list_keys(registry: Any) -> list[KeyState]:
    with registry.reading() as conn:
        return _signed_keyring(conn).ordered()


def introduce_approver(registry: Any, name: str, key_file: Path | None = None) -> tuple[KeyState, int, bool]:
    """Create (or read) an approver's personal key and introduce it, signed by the pipeline key.

    Returns the key's state, the entry's seq, and whether the key file was created now.
    """
    check_approver_name(name)
    created: Path | None = None
    try:
        with registry.write() as (conn, appender):
            ring = _signed_keyring(conn)
            current = ring.active_approver(name)
            if current is not None:
                raise RegistryError(
                    f"approver {name} already has an active key {_short(current.keyid)} (introduced at entry "
                    f"{current.introduced_seq}): rotate it with `gatewise keys rotate --approver {name}`"
                )
            key, made = create_approver_key(registry.home, name, key_file)
            created = key.path if made else None
            if key.keyid in ring.keys:
                known = ring.keys[key.keyid]
                raise RegistryError(f"the key in {key.path} (keyid {_short(key.keyid)}) is already the {known.describe()} ({known.status}): a key is introduced once")
            pipeline = registry.pipeline_key
            seq, _ = appender.append(
                f"key:{key.keyid}",
                key.keyid,
                st.KEY_V2,
                {
                    "keyid": key.keyid,
                    "algorithm": "ed25519",
                    "public_key": _b64text(key.public_key),
                    "role": APPROVER,
                    "name": name,
                    "introduced_by": pipeline.keyid,
                },
            )
    except BaseException:
        if created is not None:
            created.unlink(missing_ok=True)
        raise
    state = KeyState(key.keyid, key.public_key, APPROVER, name, seq, pipeline.keyid)
    return state, seq, created is not None


def rotate_key(registry: Any, approver: str | None = None, key_file: Path | None = None, reason: str | None = None) -> tuple[KeyState, KeyState, int, SigningKey]:
    """Replace the pipeline key (signed by it) or an approver's key (signed by the pipeline key).

    The successor is written to ``<key file>.next`` first and moved over the old file once the
    rotation entry is committed. Returns (old state, new state, entry seq, the new key).
    """
    pipeline = registry.pipeline_key
    new: SigningKey | None = None
    try:
        with registry.write() as (conn, appender):
            ring = _signed_keyring(conn)
            if approver is None:
                old = ring.keys[pipeline.keyid]
                path = pipeline.path
            else:
                check_approver_name(approver)
                found = ring.active_approver(approver)
                if found is None:
                    raise RegistryError(f"approver {approver} has no active key to rotate: introduce one with `gatewise keys init --approver {approver}`")
                old = found
                path, ours = approver_key_file(registry.home, approver, key_file)
                if path.exists() and read_key(path, f"approver key of {approver}").keyid != old.keyid:
                    raise RegistryError(f"{path} does not hold approver {approver}'s active key {_short(old.keyid)}: name the right file with --key-file")
                prepare_key_dir(path, ours)
            _stale_successor(path, ring)
            new = write_successor(path)
            seq, _ = appender.append(
                f"key:{new.keyid}",
                new.keyid,
                st.KEY_ROTATION,
                {
                    "keyid": new.keyid,
                    "algorithm": "ed25519",
                    "public_key": _b64text(new.public_key),
                    "role": old.role,
                    "name": old.name or old.role,
                    "replaces": old.keyid,
                    "reason": reason,
                    "introduced_by": pipeline.keyid,
                },
            )
    except BaseException:
        if new is not None:
            new.path.unlink(missing_ok=True)
        raise
    installed = install_successor(path, new)
    old.status, old.changed_seq, old.successor, old.reason = ROTATED, seq, new.keyid, reason
    return old, KeyState(new.keyid, new.public_key, old.role, old.name or old.role, seq, pipeline.keyid), seq, installed


def _stale_successor(path: Path, ring: Keyring) -> None:
    successor = next_path(path)
    if not successor.exists():
        return
    try:
        keyid = read_key(successor).keyid
    except RegistryError:
        keyid = None
    if keyid in ring.keys:
        raise RegistryError(f"an interrupted rotation left the new key in {successor}: `mv {successor} {path}` before rotating again")


def revoke_key(registry: Any, keyid: str | None = None, approver: str | None = None, reason: str = "") -> tuple[KeyState, int]:
    """Revoke a key (by key id or id prefix, or an approver's active key), signed by the pipeline key."""
    if not reason or not reason.strip():
        raise UsageError("a revocation needs a --reason")
    pipeline = registry.pipeline_key
    with registry.write() as (conn, appender):
        ring = _signed_keyring(conn)
        target = _find_key(ring, keyid, approver)
        if target.keyid == pipeline.keyid:
            raise RegistryError(
                f"key {_short(target.keyid)} is the pipeline key in use: rotate it with `gatewise keys rotate` "
                "(a rotated key signs nothing more), then revoke the old key if it was compromised"
            )
        if target.status == REVOKED:
            raise RegistryError(f"key {_short(target.keyid)} ({target.describe()}) was already revoked at entry {target.changed_seq}")
        seq, _ = appender.append(
            f"key:{target.keyid}",
            target.keyid,
            st.KEY_REVOCATION,
            {"keyid": target.keyid, "reason": reason, "revoked_by": pipeline.keyid},
        )
    target.status, target.changed_seq, target.reason = REVOKED, seq, reason
    return target, seq


def _find_key(ring: Keyring, keyid: str | None, approver: str | None) -> KeyState:
    if (keyid is None) == (approver is None):
        raise UsageError("name the key to revoke: a KEYID (or a unique prefix of 8+ characters) or --approver NAME")
    if approver is not None:
        found = ring.active_approver(check_approver_name(approver))
        if found is None:
            raise RegistryError(f"approver {approver} has no active key")
        return found
    prefix = (keyid or "").lower()
    if len(prefix) < 8:
        raise UsageError(f"key id {keyid!r} is too short: give at least 8 characters")
    matches = [state for k, state in ring.keys.items() if k.startswith(prefix)]
    if not matches:
        known = ", ".join(f"{_short(s.keyid)} ({s.describe()})" for s in ring.ordered()) or "none"
        raise RegistryError(f"unknown key {keyid} (known: {known})")
    if len(matches) > 1:
        raise RegistryError(f"key id prefix {keyid} matches {len(matches)} keys: give more characters")
    return matches[0]
