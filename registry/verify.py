"""Verification: one streaming pass that trusts nothing but the ledger's signatures.

The same pass reads the registry database or an exported audit bundle (gatewise.registry.bundle).
Per entry, in chunks that worker processes share: the envelope parses, the payload digest
matches, the signature verifies, the signed chain position matches. In order, in this process:
seq is contiguous from 1, each entry's signed ``prev`` is the digest of the entry before it, each
signer is a key valid at that position, versions are numbered 1, 2, ... per model, promotions and
human decisions rely on signed results; then the head receipts (gatewise.registry.receipt).
From the database it also compares every projection row, field by field, with the entry it came
from, the mutable ``models`` and ``artifacts`` tables with what the ledger implies, and the
stored artifact bytes.

The database's own part (its chunks, projection rows, tables and artifact files) is
gatewise.registry.verify_database; the bundle's is gatewise.registry.bundle. Only the statements
and projections load at import: a worker needs neither SQLAlchemy nor the schema.
"""

from __future__ import annotations

import gc
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gatewise.errors import ExitCode, RegistryError
from gatewise.registry import statements as st
from gatewise.registry.projection import ProjectionError, derive
from gatewise.registry.statements import MANDATORY_GATES

CHUNK = 1000  # entries per read: large enough to amortize a query, small enough to bound memory

# Reads whole entries back by seq at the end of the pass (cited gate results, waivers,
# promotions): seqs -> (seq, envelope JSON text) pairs, in any order.
Reader = Callable[[list[int]], Iterable[tuple[int, str]]]


class VerificationFailed(RegistryError):
    """An operation refused because the registry does not verify (exit 4, as `registry verify`)."""

    exit_code = ExitCode.VERIFY_FAILED


@dataclass(frozen=True)
class Problem:
    """One thing that does not agree: where (an entry, a table row, an artifact) and what.

    It unpacks as the pair ``where, what = problem``; ``seq`` is the ledger entry involved, if any.
    """

    where: str
    what: str
    seq: int | None = None

    def __iter__(self) -> Iterator[str]:
        return iter((self.where, self.what))

    def __getitem__(self, index: int) -> str:
        return (self.where, self.what)[index]

    def __len__(self) -> int:
        return 2

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class VerifyReport:
    ok: bool
    problems: list[Problem]
    entries_checked: int
    rows_checked: int = 0
    artifacts_checked: int = 0
    head: tuple[int, str] | None = None
    keys: list[str] = field(default_factory=list)
    seconds: float = 0.0
    receipts: list[dict[str, Any]] = field(default_factory=list)  # the head receipts checked

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "rows_checked": self.rows_checked,
            "artifacts_checked": self.artifacts_checked,
            "head": {"seq": self.head[0], "digest": self.head[1]} if self.head else None,
            "keys": self.keys,
            "receipts": self.receipts,
            "seconds": round(self.seconds, 3),
            "problems": [{"where": p.where, "what": p.what, "seq": p.seq} for p in self.problems],
        }


class _Summary(NamedTuple):
    """What the in-order pass needs from one entry (small, so that it pickles cheaply: its
    repeated strings are interned, so that one pickle of a chunk carries each of them once)."""

    seq: int
    digest: str | None  # sha256 of the payload; None if unreadable
    signed_prev: str | None  # None once the chunk's own pass checked the link
    keyid: str | None
    sig_ok: bool | None  # None: the worker did not know the key; checked in order instead
    predicate_type: str | None  # None: unreadable, and ``ref`` says where it is
    ref: str  # what the entry is about (a version, run id or key id)
    facts: Any  # type-specific facts for the in-order checks
    unverified: tuple[bytes, bytes] | None = None  # (payload, signature) when sig_ok is None
    artifact: dict[str, Any] | None = None
    time: Any = None  # the signed ledger time

    @property
    def label(self) -> str:
        """``gate-result arrests:v1 fairness``: how problems name the entry."""
        if self.predicate_type is None:
            return self.ref
        if self.predicate_type == st.GATE_RESULT or self.predicate_type == st.DATA_REJECTED:
            return f"{st.short_type(self.predicate_type)} {self.ref} {self.facts[1]}"
        return f"{st.short_type(self.predicate_type)} {self.ref}"


# What one chunk of entries gives the in-order pass: problems, summaries, projection rows checked.
ChunkResult = tuple[list[Problem], list[_Summary], int]

FIRST = object()  # ``check_entry(after=...)`` for the first entry of a chunk: no link to check there
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")  # how the ledger signs times (UTC)


# -- one entry on its own (the same for the database and a bundle) ------------------------------


Opened = tuple[tuple[bytes, str, bytes] | str, bool | None]  # ((payload, keyid, signature) or why not, signature valid)


def open_envelopes(envelopes: Iterable[Any], public_keys: dict[str, bytes]) -> list[Opened]:
    """Open a chunk's envelopes (JSON text or parsed objects) and check their signatures.

    The signatures are checked in one tight loop after all envelopes are opened: the curve code
    and its tables stay in the CPU's caches (interleaved with the rest of the checks, each verify
    cost about 7% more). A signature whose key the caller did not give is left to the in-order
    pass (None).
    """
    opened: list[Any] = []
    for envelope in envelopes:
        try:
            opened.append(st.envelope_parts(envelope) if isinstance(envelope, dict) else st.open_envelope(envelope))
        except st.EnvelopeError as exc:
            opened.append(str(exc))
    valid = st.signature_valid
    results: list[Opened] = []
    for parts in opened:
        if type(parts) is str:
            results.append((parts, False))
            continue
        public = public_keys.get(parts[1])
        results.append((parts, None if public is None else valid(public, parts[0], parts[2])))
    return results


def check_entry(
    seq: int,
    claimed_digest: Any,
    opened: Opened,
    problems: list[Problem],
    columns: tuple[Any, ...] | None = None,
    line: int | None = None,
    after: Any = FIRST,
) -> tuple[_Summary, dict[str, dict[str, Any]] | None]:
    """Check one entry on its own; returns its summary and, if its content is what was signed at
    this position, the projection rows it stands for (else None).

    ``opened`` is what ``open_envelopes`` made of its envelope; ``claimed_digest`` is the digest
    recorded next to it. ``columns`` is the database row (seq, prev_digest, digest,
    predicate_type, subject_sha256, ref, keyid, created_at, envelope), whose index columns must
    equal the signed values; ``line`` the bundle line, to name an unreadable entry. ``after`` is
    the digest of the entry before it in the same chunk (None if unreadable): the link to it is
    checked here, so that only a chunk's first link is left to the in-order pass.
    """
    found: list[str] = []  # named with the best label once the statement is read
    content_ok = True
    parts, sig_ok = opened
    if type(parts) is str:
        found.append(parts)
        return _named(problems, found, _Summary(seq, None, None, None, False, None, _fallback(columns, line), None)), None
    body, keyid, signature = parts
    digest = st.sha256_hex(body)
    if digest != claimed_digest:
        content_ok = False
        found.append(f"payload digest {digest[:16]}... does not match the recorded digest {str(claimed_digest)[:16]}... (payload edited)")
    if sig_ok is False:
        content_ok = False
        found.append(f"signature by key {keyid[:16]} does not verify")
    if columns is not None and keyid != columns[6]:
        found.append(f"signed by key {keyid[:16]} but the row says {str(columns[6])[:16]}")
    try:
        stmt = st.parse_json(body)
        if not isinstance(stmt, dict) or stmt.get("_type") != st.STATEMENT_TYPE:
            raise ProjectionError("not an in-toto Statement v1")
        predicate_type = stmt["predicateType"]
        predicate = stmt["predicate"]
        subject = stmt["subject"][0]["digest"]["sha256"]
        ledger = predicate["ledger"]
        signed_seq, signed_prev, signed_time = ledger["seq"], ledger["prev"], ledger["time"]
        derived = derive(seq, digest, predicate_type, predicate, for_verify=True)
        facts = _facts(predicate_type, predicate, derived)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        found.append(f"statement cannot be read: {exc}")
        return _named(problems, found, _Summary(seq, digest, None, keyid, sig_ok, None, _fallback(columns, line), None)), None
    if signed_seq != seq:
        content_ok = False
        found.append(f"signed seq is {signed_seq}: the entry was moved (swapped, inserted or renumbered)")
    if columns is not None and (columns[1], columns[3], columns[4], columns[5], columns[7]) != (
        signed_prev, predicate_type, subject, derived.ref, signed_time
    ):
        for column, stored, signed in (
            ("prev_digest", columns[1], signed_prev),
            ("predicate_type", columns[3], predicate_type),
            ("subject_sha256", columns[4], subject),
            ("ref", columns[5], derived.ref),
            ("created_at", columns[7], signed_time),
        ):
            if stored != signed:
                found.append(f"ledger column {column} is {_show(stored)} but the signed statement says {_show(signed)}")
    linked = after is not FIRST
    summary = _Summary(
        seq,
        digest,
        None if linked else signed_prev,
        sys.intern(keyid),
        sig_ok,
        sys.intern(predicate_type),  # a str: derive() found its builder
        sys.intern(derived.ref),
        facts,
        (body, signature) if sig_ok is None else None,
        derived.artifact,
        signed_time,
    )
    if linked and after is not None and signed_prev != after:
        found.append(f"signed prev digest {str(signed_prev)[:16]}... is not the digest of entry {seq - 1} ({after[:16]}...): the chain is broken here")
    if found:
        _named(problems, found, summary)
    # Rows are judged only against content that is what was signed at this position.
    return summary, (derived.rows if content_ok else None)


def unreadable_summary(seq: int, label: str) -> _Summary:
    """An entry at ``seq`` whose content cannot be read at all (it breaks no link it cannot show).

    ``seq`` 0: a bundle line without even a position; a gap it may explain is not named again.
    """
    return _Summary(seq, None, None, None, False, None, label, None)


def _fallback(columns: tuple[Any, ...] | None, line: int | None) -> str:
    if columns is not None:
        return _label(columns[3], columns[5])
    return f"ledger.jsonl line {line}"


def _named(problems: list[Problem], found: list[str], summary: _Summary) -> _Summary:
    problems.extend(Problem(f"entry {summary.seq} ({summary.label})", what, summary.seq) for what in found)
    return summary


def _facts(predicate_type: str, p: dict[str, Any], derived: Any) -> Any:
    if predicate_type == st.GATE_RESULT:
        return (sys.intern(p["version"]), sys.intern(p["gate"]), p["passed"])  # strs: derive() checked them
    if predicate_type == st.CANDIDATE:
        return (p["version"], p["model"], p["number"], p["status"], (p.get("parent") or {}).get("version"))
    if predicate_type == st.PROMOTION:
        return (p["version"], p["model"], p.get("previous_version"), tuple((g["gate"], g["seq"], g["digest"]) for g in p["gate_results"]))
    if predicate_type in st.KEY_TYPES:
        from gatewise.registry.keyring import key_facts

        return key_facts(predicate_type, p)
    if predicate_type in st.DECISION_TYPES:
        from gatewise.registry.decisions import decision_facts

        return decision_facts(predicate_type, p)
    if predicate_type == st.DATA_REJECTED:
        return (derived.model, p["gate"])
    return (derived.model,)


def stale_citation(latest: tuple[int, Any, bool] | None, gate: str, cited: Any, version: str) -> str | None:
    """Why a promotion citing entry ``cited`` for ``gate`` does not cite the latest result of that
    gate on ``version`` before it (``latest``: (seq, digest, passed) of that result), or None."""
    if latest is None or latest[0] == cited:
        return None
    verdict = "passed" if latest[2] else "failed"
    return f"cites entry {cited} for {gate}, but the latest result of {gate} for {version} before it is entry {latest[0]} ({verdict})"


def _label(predicate_type: Any, ref: Any) -> str:
    return f"{st.short_type(predicate_type)} {ref}"


def _same(stored: Any, derived: Any) -> bool:
    if isinstance(derived, bool):  # SQLite hands booleans back as 0 and 1
        return isinstance(stored, int) and stored in (0, 1) and bool(stored) is derived
    if isinstance(stored, bool):
        return False
    return stored == derived


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- chunks, in this process or in workers -------------------------------------------------------


def run_chunks(
    spec: tuple[Any, ...],
    tasks: list[tuple[int, ...]],
    public_keys: dict[str, bytes],
    workers: int,
    local: Callable[[tuple[int, ...]], ChunkResult],
) -> Iterator[ChunkResult]:
    """The chunks' results in order, checked in this process (``spec``, ``public_keys`` and
    ``workers`` are kept for callers written for the former worker pool)."""
    for task in tasks:
        yield local(task)


@contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic garbage collection during the pass: it builds no cycles, and each collection
    would walk the growing in-order state (about 3 us per entry)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def worker_count(workers: int | None, entries: int) -> int:
    """Always 1: verification runs in one process (docs/registry.md has the measurement)."""
    return 1


# -- in order -----------------------------------------------------------------------------------


class InOrder:
    """The checks that need the entries in order: chain, key lifecycle, numbering, promotions.

    Fed the chunks' results in ledger order (``absorb``), then ``finish`` with a reader of
    whole entries for the promotions and decisions that cite earlier entries.
    """

    def __init__(self, trusted_keys: Iterable[str], watch: Iterable[int] = ()) -> None:
        from gatewise.registry.decisions import DecisionChecks
        from gatewise.registry.keyring import Keyring

        self.pinned = set(trusted_keys)
        self.problems: list[Problem] = []
        self.entries = 0
        self.rows_checked = 0
        self.artifacts_checked = 0
        self.expected_seq = 1
        self.unplaced = 0  # unreadable bundle lines since the last entry
        self.prev_digest: str | None = st.GENESIS_PREV
        self.last: _Summary | None = None
        self.signers: set[tuple[Any, Any]] = set()  # (keyid, predicate type) pairs known good
        self.keyring = Keyring(self.pinned)  # keys introduced, rotated and revoked so far
        self.decisions = DecisionChecks()  # waivers, approver promotions, rollbacks
        self.models: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, tuple[str, str]] = {}  # version -> (model, status)
        self.numbers: dict[str, int] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        # The latest result of each (version, gate) so far: a promotion that cites it needs no
        # second read of the ledger. Citations of anything else are read back at the end.
        self.latest: dict[tuple[str, str], tuple[int, str | None, bool]] = {}
        self.citations: list[tuple[int, str, str, Any, Any]] = []  # (promotion seq, version, gate, cited seq, digest)
        self.watch = set(watch)  # seqs whose digests the head receipts name
        self.time = ""  # the newest signed time so far: times never go backwards
        self.watched: dict[int, str | None] = {}

    @property
    def head(self) -> tuple[int, str] | None:
        return (self.last.seq, self.last.digest or "") if self.last else None

    def fail(self, summary: _Summary, what: str) -> None:
        self.problems.append(Problem(f"entry {summary.seq} ({summary.label})", what, summary.seq))

    def absorb(self, result: ChunkResult) -> None:
        problems, summaries, rows = result
        self.problems.extend(problems)
        self.rows_checked += rows
        take, named = self.take, tuple.__new__
        for summary in summaries:
            take(named(_Summary, summary))

    def take(self, s: _Summary) -> None:
        if s.seq == 0:  # an unreadable bundle line, already named: it may have held the next entry
            self.unplaced += 1
            self.prev_digest = None
            return
        self.entries += 1
        if s.seq != self.expected_seq and not 0 < s.seq - self.expected_seq <= self.unplaced:
            missing = f"{self.expected_seq}" if s.seq == self.expected_seq + 1 else f"{self.expected_seq}..{s.seq - 1}"
            self.problems.append(Problem(f"entry {missing}", f"missing: the ledger jumps from {self.expected_seq - 1} to {s.seq} (entry deleted)", self.expected_seq))
        self.unplaced = 0
        if s.signed_prev is not None and self.prev_digest is not None and s.signed_prev != self.prev_digest:
            self.fail(s, f"signed prev digest {str(s.signed_prev)[:16]}... is not the digest of entry {s.seq - 1} ({self.prev_digest[:16]}...): the chain is broken here")
        self.expected_seq = s.seq + 1
        self.prev_digest = s.digest
        self.last = s
        if self.watch and s.seq in self.watch:
            self.watched[s.seq] = s.digest
        if s.predicate_type is None or s.facts is None:
            return
        if s.time is not None:
            self._check_time(s)
        if s.sig_ok is None or (s.keyid, s.predicate_type) not in self.signers:
            self._check_signer(s)
        if s.predicate_type == st.GATE_RESULT:  # most entries: kept short
            version, gate, passed = s.facts
            if version not in self.versions:
                self.fail(s, f"gate result for version {version}, which was not registered before it")
            self.latest[version, gate] = (s.seq, s.digest, passed)
            return
        if s.predicate_type == st.CANDIDATE:
            version, model, number, status, parent = s.facts
            expected = self.numbers.get(model, 0) + 1
            if number != expected or version != f"{model}:v{number}":
                self.fail(s, f"version {version} breaks the numbering of model {model} (expected {model}:v{expected})")
            self.numbers[model] = max(number, self.numbers.get(model, 0)) if isinstance(number, int) else expected
            if parent is not None and parent not in self.versions:
                self.fail(s, f"parent version {parent} was not registered before it")
            self.versions[version] = (model, status)
            if s.artifact is not None and s.artifact["sha256"] not in self.artifacts:
                self.artifacts[s.artifact["sha256"]] = dict(s.artifact, version=version)
        elif s.predicate_type == st.PROMOTION:
            self._promotion(s)
        elif s.predicate_type in st.DECISION_TYPES:
            for what in self.decisions.take(s.seq, s.digest, s.facts, self.versions, self.models, self.latest):
                self.fail(s, what)
        if s.predicate_type in (st.RUN, st.CANDIDATE, st.DATA_REJECTED, st.PROMOTION):
            model = s.facts[1] if s.predicate_type in (st.CANDIDATE, st.PROMOTION) else s.facts[0]
            if model is not None and model not in self.models:
                self.models[model] = {"name": model, "created_seq": s.seq, "production_version": None, "production_seq": None}
            if s.predicate_type == st.PROMOTION:
                self.models[model].update(production_version=s.facts[0], production_seq=s.seq)

    def _check_time(self, s: _Summary) -> None:
        """Signed times never go backwards. A cited entry always comes earlier in the chain (checked
        with each citation), so no entry is dated before the entries it cites either."""
        if type(s.time) is not str or not _TIME.fullmatch(s.time):
            self.fail(s, f"signed time {_show(s.time)} is not a UTC time of the form 2026-11-20T10:00:00.000000Z")
            return
        if s.time < self.time:
            self.fail(s, f"is dated {s.time}, before entry {s.seq - 1} ({self.time}): entry times never go backwards (backdated?)")
        self.time = max(self.time, s.time)

    def _promotion(self, s: _Summary) -> None:
        """A promotion must rely on earlier signed passes of every mandatory gate for its version."""
        version, model, previous, relied = s.facts
        if self.versions.get(version, (None, None))[1] != "ok":
            self.fail(s, f"promotes {version}, which is not a registered, unerrored version")
        current = self.models.get(model, {}).get("production_version")
        if previous != current:
            self.fail(s, f"says the previous production version was {previous}, the ledger says {current}")
        missing = [gate for gate in MANDATORY_GATES if gate not in {g for g, _, _ in relied}]
        if missing:
            self.fail(s, f"relies on no result for {', '.join(missing)}")
        for gate, gate_seq, gate_digest in relied:
            stale = stale_citation(self.latest.get((version, gate)), gate, gate_seq, version)
            if stale:
                self.fail(s, stale)
            if type(gate_seq) is int and self.latest.get((version, gate)) == (gate_seq, gate_digest, True):
                continue
            self.citations.append((s.seq, version, gate, gate_seq, gate_digest))

    def _check_signer(self, s: _Summary) -> None:
        # The key valid when the entry was written: introduced before it, not rotated or revoked
        # since, and of the role its type needs (gatewise.registry.keyring has the rules).
        found = self.keyring.take(s.seq, s.keyid, s.predicate_type, s.facts)
        for what in found:
            self.fail(s, what)
        if s.predicate_type in st.KEY_TYPES:
            self.signers.clear()  # the key set changed
        elif not found and s.predicate_type not in st.DECISION_TYPES:
            # Until the next key entry, this key may sign this type again: no need to ask again.
            # (Decisions also name an approver, checked each time.)
            self.signers.add((s.keyid, s.predicate_type))
        if s.sig_ok is None:  # signed by a key the workers were not given: the ledger's key, if any
            # (checked after a key entry is taken, so that the first key can verify itself)
            public = self.keyring.public(s.keyid)
            if public is None or s.unverified is None or not st.signature_valid(public, *s.unverified):
                self.fail(s, f"signature by key {(s.keyid or '?')[:16]} cannot be verified with any key in the ledger")

    def finish(self, read: Reader) -> None:
        """The checks that read cited entries back: promotions' gate results and human decisions."""
        if self.entries == 0:
            self.problems.append(Problem("ledger", "is empty: not even the key entry is there"))
        self._citations(read)
        for seq, label, what in self.decisions.finish(read):
            self.problems.append(Problem(f"entry {seq} ({label})", what, seq))

    def _citations(self, read: Reader) -> None:
        wanted = sorted({c[3] for c in self.citations if type(c[3]) is int and c[3] < c[0]})
        predicates: dict[int, tuple[str, dict[str, Any]]] = {}
        for seq, envelope in read(wanted) if wanted else ():
            try:
                body, _, _ = st.open_envelope(envelope)
                predicates[seq] = (st.sha256_hex(body), st.parse_json(body)["predicate"])
            except (st.EnvelopeError, ValueError, KeyError, TypeError):
                continue
        for seq, version, gate, gate_seq, gate_digest in self.citations:
            digest, predicate = predicates.get(gate_seq, (None, None)) if type(gate_seq) is int and gate_seq < seq else (None, None)
            if (
                digest != gate_digest
                or not isinstance(predicate, dict)
                or predicate.get("version") != version
                or predicate.get("gate") != gate
                or predicate.get("passed") is not True
            ):
                self.problems.append(Problem(f"entry {seq} (promotion {version})", f"relies on entry {gate_seq} as a pass of {gate} for {version}, which it is not", seq))

    def report(self, started: float, receipts: list[dict[str, Any]]) -> VerifyReport:
        return VerifyReport(
            ok=not self.problems,
            problems=sorted(self.problems, key=lambda p: (p.seq is None, p.seq or 0)),
            entries_checked=self.entries,
            rows_checked=self.rows_checked,
            artifacts_checked=self.artifacts_checked,
            head=self.head,
            keys=self.keyring.active_ids(),
            seconds=time.perf_counter() - started,
            receipts=receipts,
        )


def verify_registry(engine: Any, url: str, home: Path, **options: Any) -> VerifyReport:
    """Verify the registry database (gatewise.registry.verify_database has the database's part)."""
    from gatewise.registry.verify_database import verify_registry as verify_database

    return verify_database(engine, url, home, **options)
