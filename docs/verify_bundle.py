#!/usr/bin/env python3
"""Verify a gatewise audit bundle with nothing but Python and the `cryptography` package.

    python verify_bundle.py BUNDLE_DIR --pin FIRST_KEY_ID [--receipt OLD_head.json ...]

A bundle is what `gatewise registry export --bundle DIR` writes (ledger.jsonl, keys.json,
head.json, manifest.json). This script trusts none of it except the first key you pin (its id,
or a unique prefix of at least 16 hex characters, that you got from the operator by another
channel). It checks:

- every entry: the payload's sha256 is its digest, the signed position is its line's seq, seq
  runs 1, 2, 3, ... and each entry's signed ``prev`` is the digest of the entry before it;
- every signature (Ed25519 over the DSSE v1 pre-authentication encoding), with the key valid for
  that entry at that position;
- the key lifecycle, replayed in order: entry 1 introduces the pinned pipeline key and signs
  itself; only an active pipeline key introduces, rotates or revokes keys; a key id is the sha256
  of its public key; a rotated or revoked key signs nothing after;
- roles: waivers and gating policies are signed by an approver's key; a promotion or rollback that
  names an approver by that approver (name and key), otherwise by the pipeline key; everything
  else by the pipeline key;
- decisions: each promotion cites earlier gate results of that version (seq and digest), a failed
  one only with a waiver of it; a pipeline promotion relies on five passes; a cited policy entry
  is an earlier policy entry;
- the head receipt (head.json): signed by the pipeline key of that moment, naming the last entry
  of the ledger by seq and digest (a receipt for an earlier entry is stale: the entries after it
  are vouched for by nothing); any older receipts you kept must name an entry with its digest;
- the manifest's sha256 of each file.

It prints the production version of each model, every decision (who, when, why) and the verdict.
Exit status: 0 verified, 4 verification failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BASE = "https://gatewise.dev/predicates/"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
GENESIS_PREV = "0" * 64
KEY_INTRODUCING = {BASE + "key/v1", BASE + "key/v2", BASE + "key-rotation/v1"}
REVOCATION = BASE + "key-revocation/v1"
WAIVER, POLICY, ROLLBACK = BASE + "waiver/v1", BASE + "policy/v1", BASE + "rollback/v1"
PROMOTIONS = {BASE + "promotion/v1", BASE + "promotion/v2"}
GATE_RESULT = BASE + "gate-result/v1"
RUN, RUN_OUTCOME = BASE + "run/v1", BASE + "run-outcome/v1"
HEAD_RECEIPT = BASE + "head-receipt/v1"
APPROVER_SIGNED = {WAIVER, POLICY}
NAMES_APPROVER = {WAIVER, POLICY, ROLLBACK, *PROMOTIONS}
MANDATORY_GATES = ("accuracy_regression", "fairness", "robustness", "drift", "leakage")


def pae(body: bytes) -> bytes:
    kind = PAYLOAD_TYPE.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def open_envelope(envelope):
    """(payload bytes, keyid, signature) of a DSSE envelope (object or JSON text)."""
    if isinstance(envelope, str):
        envelope = json.loads(envelope)
    if envelope.get("payloadType") != PAYLOAD_TYPE or len(envelope["signatures"]) != 1:
        raise ValueError("not a DSSE envelope with one signature")
    body = binascii.a2b_base64(envelope["payload"], strict_mode=True)
    signature = binascii.a2b_base64(envelope["signatures"][0]["sig"], strict_mode=True)
    return body, str(envelope["signatures"][0]["keyid"]), signature


def signature_ok(public: bytes, body: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, pae(body))
        return True
    except (InvalidSignature, ValueError):
        return False


class Key:
    def __init__(self, keyid, public, role, name, seq):
        self.keyid, self.public, self.role, self.name, self.seq = keyid, public, role, name, seq
        self.ended = None  # (seq, "rotated" | "revoked")

    def who(self):
        return f"approver {self.name}'s key {self.keyid[:16]}" if self.role == "approver" else f"pipeline key {self.keyid[:16]}"


class Verifier:
    def __init__(self, pin: str):
        self.pin = pin
        self.problems: list[str] = []
        self.keys: dict[str, Key] = {}
        self.entries: dict[int, tuple[str, str, dict]] = {}  # seq -> (digest, predicate type, predicate)
        self.decisions: list[str] = []
        self.production: dict[str, str] = {}
        self.policy = None
        self.ended: dict[str, int] = {}  # run id -> the seq of its outcome entry

    def fail(self, seq, what):
        self.problems.append(f"entry {seq}: {what}")

    # -- one entry ----------------------------------------------------------------------------

    def entry(self, expected: int, prev: str, line: str) -> str | None:
        """Check one ledger line at position ``expected``; returns its digest (None: unreadable)."""
        try:
            record = json.loads(line)
            seq, digest = record["seq"], record["digest"]
            body, keyid, signature = open_envelope(record["envelope"])
            stmt = json.loads(body)
            kind, p = stmt["predicateType"], stmt["predicate"]
            ledger = p["ledger"]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            self.fail(expected, f"cannot be read ({type(exc).__name__})")
            return None
        if seq != expected:
            self.fail(expected, f"the line holds entry {seq}: entries are missing or out of order")
        if hashlib.sha256(body).hexdigest() != digest:
            self.fail(seq, "its payload does not hash to its digest (edited)")
        if ledger.get("seq") != seq:
            self.fail(seq, f"was signed as entry {ledger.get('seq')}")
        if ledger.get("prev") != prev:
            self.fail(seq, "its signed prev is not the digest of the entry before it: the chain is broken")
        if kind in KEY_INTRODUCING or kind == REVOCATION:
            self.key_entry(seq, keyid, kind, p, body, signature)
        else:
            self.signed_by(seq, keyid, kind, p, body, signature)
        self.entries[seq] = (digest, kind, p)
        self.decide(seq, digest, kind, p, ledger.get("time"))
        return digest

    def key_entry(self, seq, signer, kind, p, body, signature):
        if kind == REVOCATION:
            authority = self.authority(seq, signer, p.get("revoked_by"), body, signature)
            target = self.keys.get(p.get("keyid"))
            if authority:
                self.fail(seq, f"revocation {authority}")
            elif target is None or target.ended:
                self.fail(seq, f"revokes key {str(p.get('keyid'))[:16]}, which is not an active key")
            else:
                target.ended = (seq, "revoked")
                self.decisions.append(f"entry {seq}: key {target.keyid[:16]} ({target.who()}) revoked: {p.get('reason')}")
            return
        try:
            public = base64.b64decode(p["public_key"], validate=True)
        except (KeyError, binascii.Error, ValueError):
            self.fail(seq, "its public key cannot be read")
            return
        keyid = p.get("keyid")
        if hashlib.sha256(public).hexdigest() != keyid:
            self.fail(seq, f"its public key does not hash to its key id {str(keyid)[:16]}")
        key = Key(keyid, public, p.get("role"), p.get("name"), seq)
        if not self.keys:
            if seq != 1 or signer != keyid or p.get("role") != "pipeline" or kind == BASE + "key-rotation/v1":
                self.fail(seq, "the first entry must introduce a pipeline key that signs itself")
            if not keyid or not keyid.startswith(self.pin):
                self.fail(seq, f"the first key {str(keyid)[:16]} is not the pinned key {self.pin[:16]}: this is another ledger")
            if not signature_ok(public, body, signature):
                self.fail(seq, "its signature does not verify with the key it introduces")
            self.keys[keyid] = key
            self.decisions.append(f"entry {seq}: pipeline key {str(keyid)[:16]} ({p.get('name')}) introduced")
            return
        authority = self.authority(seq, signer, p.get("introduced_by"), body, signature)
        if authority:
            self.fail(seq, f"key entry {authority}")
            return
        if keyid in self.keys or key.role not in ("pipeline", "approver") or (key.role == "approver" and not key.name):
            self.fail(seq, f"introduces key {str(keyid)[:16]} again, or with a bad role or no name")
            return
        if kind == BASE + "key-rotation/v1":
            old = self.keys.get(p.get("replaces"))
            if old is None or old.ended or old.role != key.role or old.name != key.name:
                self.fail(seq, f"rotates key {str(p.get('replaces'))[:16]}, which is not an active key of the same holder")
                return
            old.ended = (seq, "rotated")
        elif key.role == "approver" and any(k.role == "approver" and k.name == key.name and not k.ended for k in self.keys.values()):
            self.fail(seq, f"introduces a second active key for approver {key.name}")
            return
        self.keys[keyid] = key
        verb = "rotated to" if kind == BASE + "key-rotation/v1" else "introduced"
        self.decisions.append(f"entry {seq}: {key.who()} {verb} ({key.name})")

    def authority(self, seq, signer, named, body, signature):
        """Why ``signer`` may not change the key set here, or None."""
        key = self.keys.get(signer)
        if key is None or not signature_ok(key.public, body, signature):
            return "is not signed by a key of the ledger"
        if key.ended or key.role != "pipeline":
            return f"is signed by {key.who()}, not an active pipeline key"
        if named != signer:
            return "names another key as its signer"
        return None

    def signed_by(self, seq, signer, kind, p, body, signature):
        key = self.keys.get(signer)
        if key is None:
            self.fail(seq, f"is signed by key {signer[:16]}, which no earlier entry introduced (forged key?)")
            return
        if not signature_ok(key.public, body, signature):
            self.fail(seq, f"its signature by {key.who()} does not verify")
        if key.ended and seq > key.ended[0]:
            self.fail(seq, f"is signed by {key.who()}, {key.ended[1]} at entry {key.ended[0]}")
        approver = p.get("approver") if kind in NAMES_APPROVER else None
        needs = "approver" if kind in APPROVER_SIGNED or approver else "pipeline"
        if key.role != needs:
            self.fail(seq, f"must be signed by a{'n approver' if needs == 'approver' else ' pipeline'} key, not {key.who()}")
        if approver is not None and (not isinstance(approver, dict) or approver.get("keyid") != signer or approver.get("name") != key.name):
            self.fail(seq, f"names an approver other than its signer ({key.who()})")

    # -- decisions ----------------------------------------------------------------------------

    def cited(self, seq, ref, kind, what):
        """The predicate of an earlier entry of ``kind`` that ``ref`` {seq, digest} names, or None."""
        found = self.entries.get(ref.get("seq")) if isinstance(ref, dict) and isinstance(ref.get("seq"), int) else None
        if found is None or ref["seq"] >= seq or found[0] != ref.get("digest") or found[1] not in kind:
            self.fail(seq, f"cites entry {ref.get('seq') if isinstance(ref, dict) else ref} as {what}, which it is not")
            return None
        return found[2]

    def decide(self, seq, digest, kind, p, time):
        who = (p.get("approver") or {}).get("name") if isinstance(p.get("approver"), dict) else None
        by = f"approver {who}" if who else "the pipeline"
        if kind == POLICY:
            self.policy = (seq, who)
            self.decisions.append(f"entry {seq} {time}: gating policy {str(p.get('policy_digest'))[:16]} set by {by}: {p.get('reason')}")
        elif kind == WAIVER:
            for g in p.get("gates") or []:
                result = self.cited(seq, g, {GATE_RESULT}, f"a result of {g.get('gate')}")
                if result is not None and (result.get("passed") is not False or result.get("version") != p.get("version")):
                    self.fail(seq, f"waives entry {g.get('seq')}, which is not a failed result of {p.get('version')}")
            gates = ", ".join(str(g.get("gate")) for g in p.get("gates") or [])
            self.decisions.append(f"entry {seq} {time}: waiver of {gates} for {p.get('version')} by {by}: {p.get('reason')}")
        elif kind in PROMOTIONS:
            version, model = p.get("version"), p.get("model")
            cites = p.get("gate_results") or []
            if {g.get("gate") for g in cites} < set(MANDATORY_GATES):
                self.fail(seq, f"promotes {version} without a result of every mandatory gate")
            for g in cites:
                result = self.cited(seq, g, {GATE_RESULT}, f"a result of {g.get('gate')} for {version}")
                if result is None:
                    continue
                if result.get("version") != version or result.get("gate") != g.get("gate"):
                    self.fail(seq, f"cites entry {g.get('seq')}, which is not a result of {g.get('gate')} for {version}")
                elif result.get("passed") is not True:
                    waiver = self.cited(seq, g.get("waiver") or {}, {WAIVER}, f"a waiver of {g.get('gate')}")
                    if waiver is None or waiver.get("version") != version:
                        self.fail(seq, f"relies on a failed {g.get('gate')} (entry {g.get('seq')}) that no waiver covers")
            if p.get("policy") is not None:
                self.cited(seq, p["policy"], {POLICY}, "its gating policy")
            policy = f"policy entry {p['policy']['seq']}" if isinstance(p.get("policy"), dict) else "the default thresholds"
            previous = self.production.get(model)
            if p.get("previous_version", previous) != previous:
                self.fail(seq, f"says {p.get('previous_version')} was in production; the ledger says {previous}")
            self.production[model] = version
            self.decisions.append(f"entry {seq} {time}: promotion of {version} (previous {previous or '-'}) by {by}, gated by {policy}: {p.get('reason')}")
        elif kind == ROLLBACK:
            version, model = p.get("version"), p.get("model")
            restored = self.cited(seq, p.get("restores") or {}, PROMOTIONS, f"a promotion of {version}")
            if restored is not None and restored.get("version") != version:
                self.fail(seq, f"restores a promotion of {restored.get('version')}, not {version}")
            previous = self.production.get(model)
            if p.get("previous_version") != previous:
                self.fail(seq, f"says {p.get('previous_version')} was in production; the ledger says {previous}")
            self.production[model] = version
            self.decisions.append(f"entry {seq} {time}: rollback of {model} from {previous} to {version} by {by}: {p.get('reason')}")
        elif kind == RUN_OUTCOME:  # one per run, citing that run's entry
            run_id = p.get("run_id")
            run = self.cited(seq, p.get("run") or {}, {RUN}, f"the run entry of run {run_id}")
            if run is not None and run.get("run_id") != run_id:
                self.fail(seq, f"cites the run entry of run {run.get('run_id')}, not of run {run_id}")
            if run_id in self.ended:
                self.fail(seq, f"is a second outcome of run {run_id} (the first is entry {self.ended[run_id]})")
            self.ended.setdefault(run_id, seq)

    # -- the head receipt -----------------------------------------------------------------------

    def receipt(self, path: Path, head: int, exact: bool):
        try:
            body, keyid, signature = open_envelope(path.read_text(encoding="utf-8"))
            stmt = json.loads(body)
            p = stmt["predicate"]
            seq, digest = p["seq"], p["digest"]
            if stmt["predicateType"] != HEAD_RECEIPT or p["keyid"] != keyid:
                raise ValueError("not a head receipt signed by the key it names")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.problems.append(f"receipt {path.name}: cannot be read ({exc})")
            return
        key = self.keys.get(keyid)
        if key is None or not signature_ok(key.public, body, signature):
            self.problems.append(f"receipt {path.name}: its signature does not verify with a key of the ledger")
        elif key.role != "pipeline" or seq < key.seq or (key.ended and seq > key.ended[0]):
            self.problems.append(f"receipt {path.name}: signed by {key.who()}, not the pipeline key at entry {seq}")
        if seq > head:
            self.problems.append(f"receipt {path.name}: names entry {seq}, but the ledger ends at {head} (entries removed)")
        elif self.entries.get(seq, ("",))[0] != digest:
            self.problems.append(f"receipt {path.name}: entry {seq} has another digest: the ledger was rewritten after it")
        elif exact and seq != head:
            self.problems.append(f"receipt {path.name}: names entry {seq}, not the last entry {head}: stale, nothing vouches for the entries after it")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Verify a gatewise audit bundle offline (standard library + cryptography).")
    parser.add_argument("bundle", type=Path, help="the folder `gatewise registry export --bundle` wrote")
    parser.add_argument("--pin", required=True, metavar="KEYID", help="the first pipeline key's id (or a unique prefix of at least 16 hex)")
    parser.add_argument("--receipt", type=Path, action="append", default=[], metavar="FILE", help="an older head receipt you kept (repeatable)")
    args = parser.parse_args(argv)
    pin = args.pin.lower()
    if len(pin) < 16 or len(pin) > 64 or any(c not in "0123456789abcdef" for c in pin):
        print(f"verify_bundle: error: --pin must be at least 16 hex characters of a key id, got {args.pin!r}", file=sys.stderr)
        return 2
    ledger = args.bundle / "ledger.jsonl"
    if not ledger.is_file():
        print(f"verify_bundle: error: no ledger.jsonl in {args.bundle}", file=sys.stderr)
        return 2
    v = Verifier(pin)
    prev, seq = GENESIS_PREV, 0
    with ledger.open(encoding="utf-8") as lines:
        for seq, line in enumerate(lines, start=1):
            prev = v.entry(seq, prev, line) or "?"
    if seq == 0:
        v.problems.append("the ledger is empty")
    v.receipt(args.bundle / "head.json", seq, exact=True)
    for kept in args.receipt:
        v.receipt(kept, seq, exact=False)
    manifest_path = args.bundle / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for name, facts in (manifest.get("files") or {}).items():
            data = (args.bundle / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != facts.get("sha256"):
                v.problems.append(f"manifest: {name} does not have the sha256 the manifest lists (edited after export)")
    except (OSError, ValueError, AttributeError) as exc:
        v.problems.append(f"manifest: cannot be read ({exc})")

    print("decisions:")
    for line in v.decisions:
        print(f"  {line}")
    print("production:")
    for model, version in sorted(v.production.items()):
        print(f"  {model}: {version}")
    if not v.production:
        print("  (no model has a production version)")
    policy = f"entry {v.policy[0]}, set by approver {v.policy[1]}" if v.policy else "none signed (built-in defaults)"
    print(f"gating policy: {policy}")
    for problem in v.problems:
        print(f"PROBLEM {problem}")
    head = v.entries.get(seq, ("?",))[0]
    if v.problems:
        print(f"FAILED: {len(v.problems)} problem(s) in {seq} entries")
        return 4
    print(f"OK: {seq} entries, {len(v.keys)} keys, head {seq} {head}, first key pinned {pin[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
