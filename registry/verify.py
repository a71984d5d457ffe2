"""Verification: one streaming pass, in one process, that trusts nothing but the ledger's signatures.

The same pass reads the registry database (``verify_registry``) or an exported audit bundle
(gatewise.registry.bundle). Per entry, chunk by chunk: the envelope parses, the payload digest
matches, the signature verifies, the signed chain position matches. In order: seq is contiguous
from 1, each entry's signed ``prev`` is the digest of the entry before it, each signer is a key
valid at that position, times never go backwards, versions are numbered 1, 2, ... per model,
promotions cite the latest result of each gate and human decisions rely on signed results; then
the head receipts (gatewise.registry.receipt). From the database it also compares every
projection row, field by field, with the entry it came from, takes a census of every table
(NULLs, duplicate keys, rows per table against the rows matched), compares the mutable
``models`` and ``artifacts`` tables with what the ledger implies, and hashes the stored artifacts.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import operator
import os
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
from gatewise.registry.projection import ProjectionError, artifact_relpath, derive

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
    if predicate_type in st.KEY_TYPES:
        from gatewise.registry.keyring import key_facts

        return key_facts(predicate_type, p)
    if predicate_type in st.DECISION_TYPES or predicate_type == st.PROMOTION:
        from gatewise.registry.decisions import decision_facts

        return decision_facts(predicate_type, p)
    if predicate_type == st.DATA_REJECTED:
        return (derived.model, p["gate"])
    if predicate_type == st.POLICY:
        from gatewise.registry.policy_entries import policy_facts

        return policy_facts(p)
    if predicate_type == st.RUN_OUTCOME:  # the run it ends, as (seq, digest, model): derive() checked the types
        return (sys.intern(p["run_id"]), (p["run"]["seq"], p["run"]["digest"], p["model"]))
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


# -- chunks ------------------------------------------------------------------------------------------


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
        # The latest result of each (version, gate) so far: a promotion must cite it.
        self.latest: dict[tuple[str, str], tuple[int, str | None, bool]] = {}
        self.watch = set(watch)  # seqs whose digests the head receipts name
        self.time = ""  # the newest signed time so far: times never go backwards
        self.watched: dict[int, str | None] = {}
        self.runs: dict[str, tuple[int, str | None, Any]] = {}  # run id -> its run entry (seq, digest, model)
        self.ended: dict[str, int] = {}  # run id -> the seq of its outcome entry

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
        elif s.predicate_type in st.DECISION_TYPES or s.predicate_type == st.PROMOTION:  # one path for every promotion
            for what in self.decisions.take(s.seq, s.digest, s.facts, self.versions, self.models, self.latest):
                self.fail(s, what)
        if s.predicate_type == st.RUN:
            self.runs.setdefault(s.ref, (s.seq, s.digest, s.facts[0]))
        elif s.predicate_type == st.RUN_OUTCOME:
            self._check_outcome(s)
        if s.predicate_type in (st.RUN, st.CANDIDATE, st.DATA_REJECTED):
            model = s.facts[1] if s.predicate_type == st.CANDIDATE else s.facts[0]
            if model is not None and model not in self.models:
                self.models[model] = {"name": model, "created_seq": s.seq, "production_version": None, "production_seq": None}

    def _check_outcome(self, s: _Summary) -> None:
        """A run's outcome cites its run entry, earlier in the chain, and is its only one."""
        run_id, cited = s.facts
        if self.runs.get(run_id) != tuple(cited):
            self.fail(s, f"cites entry {cited[0]} as the run entry of run {run_id} (model {cited[2]}), which no earlier entry is")
        if run_id in self.ended:
            self.fail(s, f"is a second outcome of run {run_id} (the first is entry {self.ended[run_id]})")
        self.ended.setdefault(run_id, s.seq)

    def _check_time(self, s: _Summary) -> None:
        """Signed times never go backwards. A cited entry always comes earlier in the chain (checked
        with each citation), so no entry is dated before the entries it cites either."""
        if type(s.time) is not str or not _TIME.fullmatch(s.time):
            self.fail(s, f"signed time {_show(s.time)} is not a UTC time of the form 2026-11-20T10:00:00.000000Z")
            return
        if s.time < self.time:
            self.fail(s, f"is dated {s.time}, before entry {s.seq - 1} ({self.time}): entry times never go backwards (backdated?)")
        self.time = max(self.time, s.time)

    def _check_signer(self, s: _Summary) -> None:
        # The key valid when the entry was written: introduced before it, not rotated or revoked
        # since, and of the role its type needs (gatewise.registry.keyring has the rules).
        found = self.keyring.take(s.seq, s.keyid, s.predicate_type, s.facts)
        for what in found:
            self.fail(s, what)
        if s.predicate_type in st.KEY_TYPES:
            self.signers.clear()  # the key set changed
        elif not found and s.predicate_type not in st.NAMES_APPROVER:
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
        for seq, label, what in self.decisions.finish(read):
            self.problems.append(Problem(f"entry {seq} ({label})", what, seq))

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


# -- the registry database ---------------------------------------------------------------------


_ROW_NAMES = {"keys": "keyid", "runs": "run_id", "versions": "name", "promotions": "version",
              "key_events": "keyid", "waivers": "version", "rollbacks": "version"}


def _row_where(table: str, row: dict[str, Any]) -> str:
    if table == "gate_results":
        name = f"{row.get('version') or row.get('run_id')} {row.get('gate')}"
    else:
        name = row.get(_ROW_NAMES.get(table, ""))
    return f"{table} row entry_seq={row.get('entry_seq')} ({name})"


# -- a chunk of the database (possibly in a worker) ---------------------------------------


class _Queries(NamedTuple):
    ledger: str
    tables: dict[str, tuple[str, tuple[str, ...], int]]  # name -> (sql, columns, index of entry_seq)


@functools.cache
def _queries(qmark: bool) -> _Queries:
    """Plain SQL for raw DB-API cursors (``?`` for sqlite3, ``%s`` for psycopg)."""
    from gatewise.registry.schema import ENTRY_TABLES

    mark = "?" if qmark else "%s"
    where = f"BETWEEN {mark} AND {mark}"
    tables = {}
    # Projection tables with a row per entry; artifacts are checked at the end (first bytes win).
    for name, model in ENTRY_TABLES.items():
        if name == "artifacts":
            continue
        columns = tuple(column.name for column in model.__table__.columns)
        tables[name] = (f"SELECT {', '.join(columns)} FROM {name} WHERE entry_seq {where}", columns, columns.index("entry_seq"))
    # SQLite hands the envelope over as bytes, which the JSON parser reads without a text copy.
    envelope = "CAST(envelope AS BLOB)" if qmark else "envelope"
    ledger = (
        f"SELECT seq, prev_digest, digest, predicate_type, subject_sha256, ref, keyid, created_at, {envelope} "
        f"FROM ledger WHERE seq {where} ORDER BY seq"
    )
    return _Queries(ledger, tables)


def check_chunk(
    engine: Any, lo: int, hi: int, public_keys: dict[str, bytes], queries: _Queries | None = None, matched: dict[str, int] | None = None
) -> ChunkResult:
    """Check ledger entries lo..hi and the projection rows they stand for; ``matched`` counts, per
    table, the rows that stand for an entry (the census compares it with the table's row count)."""
    matched = {} if matched is None else matched
    problems: list[Problem] = []
    summaries: list[_Summary] = []
    rows_checked = 0
    queries = queries or _queries(engine.dialect.paramstyle == "qmark")
    # Raw DB-API cursors and plain tuples: this loop is the hot path of a 100k-entry verify.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(queries.ledger, (lo, hi))
        entries = cursor.fetchall()
        stored: dict[str, dict[int, tuple[Any, ...]]] = {}
        for name, (sql, columns, index) in queries.tables.items():
            cursor.execute(sql, (lo, hi))
            rows = stored[name] = {}
            for row in cursor.fetchall():
                if row[index] in rows:  # the first row stays; a reader taking either must not be misled
                    problems.append(Problem(_row_where(name, dict(zip(columns, row))), f"duplicates the row of entry {row[index]}: one entry, one row", row[index]))
                    continue
                rows[row[index]] = row
        cursor.close()
    finally:
        raw.close()
    tables = queries.tables
    after = FIRST
    for entry, opened in zip(entries, open_envelopes([entry[8] for entry in entries], public_keys)):
        seq = entry[0]
        summary, derived_rows = check_entry(seq, entry[2], opened, problems, entry, after=after)
        summaries.append(summary)
        after = summary.digest
        if derived_rows is None:
            for name, rows in stored.items():  # the entry itself failed; its rows cannot be judged against it
                if rows.pop(seq, None) is not None:
                    matched[name] = matched.get(name, 0) + 1
            continue
        for name, expected in derived_rows.items():
            spec = tables.get(name)
            if spec is None:
                continue
            columns = spec[1]
            row = stored[name].pop(seq, None)
            if row is None:
                problems.append(Problem(f"entry {seq} ({summary.label})", f"its {name} row is missing", seq))
                continue
            rows_checked += 1
            matched[name] = matched.get(name, 0) + 1
            values = _getter(columns)(expected)
            if values == tuple(row):
                continue
            problems.extend(_row_differences(name, columns, row, values, seq))
    if any(stored.values()):
        labels = {summary.seq: summary.label for summary in summaries}
        for name, rows in stored.items():
            columns = tables[name][1]
            for seq, row in rows.items():
                where = _row_where(name, dict(zip(columns, row)))
                if seq in labels:
                    problems.append(Problem(where, f"row has no ledger entry behind it (entry {seq} is a {labels[seq]})", seq))
                else:
                    problems.append(Problem(where, f"row names ledger entry {seq}, which does not exist", seq))
    return problems, summaries, rows_checked


def _stored_sha256(home: Path, sha256: Any) -> str:
    """The sha256 of the stored artifact file with this name ("" if there is none).

    Bare file descriptors: Python's ``open()`` and ``Path`` cost several times the hashing of a
    small file here (15,000 artifacts: 0.13 s instead of 1 s).
    """
    try:
        fd = os.open(os.path.join(home, artifact_relpath(str(sha256))), os.O_RDONLY)
    except FileNotFoundError:
        return ""
    try:
        digest = hashlib.sha256()
        while block := os.read(fd, 1 << 20):
            digest.update(block)
        return digest.hexdigest()
    finally:
        os.close(fd)


@functools.cache
def _getter(columns: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return operator.itemgetter(*columns)


def _row_differences(name: str, columns: tuple[str, ...], row: tuple[Any, ...], values: tuple[Any, ...], seq: int) -> list[Problem]:
    named = dict(zip(columns, row))
    found = []
    for column, value in zip(columns, values):
        if not _same(named[column], value):
            shown = named[column]
            if isinstance(value, bool) and shown in (0, 1) and not isinstance(shown, float):
                shown = bool(shown)  # SQLite's 0/1, shown as the boolean it stands for
            found.append(
                Problem(_row_where(name, named), f"field {column} is {_show(shown)} in the table but {_show(value)} in signed entry {seq}", seq)
            )
    return found


# -- the registry database -------------------------------------------------------------------------


def verify_registry(
    engine: Any,
    url: str,
    home: Path,
    *,
    check_artifacts: bool = True,
    trusted_keys: Iterable[str] = (),
    receipts: Iterable[Path] = (),
) -> VerifyReport:
    """Verify the registry database, against ``<home>/head.json`` (which must be there and name the
    ledger's head) and against any older ``receipts`` an auditor kept (which may lag; that is said)."""
    from gatewise.registry import receipt
    from gatewise.registry.database import db_errors
    from gatewise.registry.schema import LedgerEntry
    from sqlalchemy import func, select

    started = time.perf_counter()
    led = LedgerEntry.__table__.c
    # Receipts are read before the ledger, so that an append meanwhile never puts one ahead of it.
    kept = receipt.load_receipts([receipt.receipt_path(home)], required=True)
    kept += receipt.load_receipts(receipts, required=True)
    matched: dict[str, int] = {}
    with db_errors(url):
        with engine.connect() as conn:
            lo, hi = conn.execute(select(func.min(led.seq), func.max(led.seq))).one()
            public_keys = _table_keys(conn)
        state = InOrder(trusted_keys, watch=receipt.watched_seqs(kept))
        if hi is not None:
            queries = _queries(engine.dialect.paramstyle == "qmark")
            with collections_paused():
                for start in range(int(lo), int(hi) + 1, CHUNK):
                    state.absorb(check_chunk(engine, start, min(start + CHUNK - 1, int(hi)), public_keys, queries, matched))
        with engine.connect() as conn:
            state.finish(_database_reader(conn))
            _DatabaseChecks(state, conn, matched).run(home, check_artifacts, hi=int(hi or 0))
    checked = receipt.check_receipts(kept, state, current=1)
    return state.report(started, checked)


def _table_keys(conn: Any) -> dict[str, bytes]:
    """Public keys for the workers, from the ``keys`` table: a hint only. Each key proves its own id
    (sha256), and the in-order pass decides from the ledger whether it may sign where it did."""
    import base64

    from gatewise.registry.keys import keyid_of
    from gatewise.registry.schema import KeyRow
    from sqlalchemy import select

    found = {}
    for keyid, public_b64 in conn.execute(select(KeyRow.__table__.c.keyid, KeyRow.__table__.c.public_key)):
        try:
            public = base64.b64decode(public_b64, validate=True)
        except (ValueError, TypeError):
            continue
        if keyid_of(public) == keyid:
            found[keyid] = public
    return found


def _database_reader(conn: Any) -> Reader:
    from gatewise.registry.schema import LedgerEntry
    from sqlalchemy import select

    led = LedgerEntry.__table__.c

    def read(seqs: list[int]) -> Iterator[tuple[int, str]]:
        for start in range(0, len(seqs), 500):
            for seq, envelope in conn.execute(select(led.seq, led.envelope).where(led.seq.in_(seqs[start:start + 500]))):
                yield int(seq), envelope

    return read


class _DatabaseChecks:
    """After the pass: the census of every table, rows naming no entry, the ``models`` and
    ``artifacts`` tables, the artifact files."""

    def __init__(self, state: InOrder, conn: Any, matched: dict[str, int]) -> None:
        self.state = state
        self.conn = conn
        self.matched = matched

    def run(self, home: Path, check_files: bool, hi: int) -> None:
        self._orphans(hi)
        self._models()
        self._artifacts(home, check_files)
        self._census()

    def _orphans(self, hi: int) -> None:
        from gatewise.registry.schema import ENTRY_TABLES
        from sqlalchemy import or_, select

        for name, model in ENTRY_TABLES.items():
            if name == "artifacts":
                continue
            table = model.__table__
            for row in self.conn.execute(select(table).where(or_(table.c.entry_seq < 1, table.c.entry_seq > hi))):
                data = row._asdict()
                self.state.problems.append(Problem(_row_where(name, data), f"row names ledger entry {data['entry_seq']}, which does not exist", None))

    def _census(self) -> None:
        """Every table: no NULL where the schema says NOT NULL, no duplicate keys, and as many rows
        as the pass matched to signed entries. A row the pass never met (a NULL key, a duplicate
        placed first, an extra row) is named here, so that no row escapes verification."""
        from gatewise.registry.schema import ENTRY_TABLES, LedgerEntry, ModelRow
        from sqlalchemy import func, or_, select

        problems = self.state.problems
        tables = {"ledger": LedgerEntry, "models": ModelRow, **ENTRY_TABLES}
        for name, model in tables.items():
            table = model.__table__
            required = [c for c in table.columns if not c.nullable or c.primary_key]
            for row in self.conn.execute(select(table).where(or_(*(c.is_(None) for c in required))).limit(20)):
                data = row._asdict()
                empty = ", ".join(c.name for c in required if data[c.name] is None)
                problems.append(Problem(_census_where(name, data), f"NULL in {empty}, which the schema requires: no signed entry stands for this row"))
            for key in _keys(table):
                duplicated = select(*key, func.count().label("n")).group_by(*key).having(func.count() > 1).limit(20)
                for row in self.conn.execute(duplicated):
                    shown = ", ".join(f"{c.name}={_show(v)}" for c, v in zip(key, row))
                    problems.append(Problem(f"{name} table", f"{row.n} rows share the key {shown}: a key must be unique"))
            total = self.conn.execute(select(func.count()).select_from(table)).scalar() or 0
            expected = self.state.entries if name == "ledger" else self.matched.get(name, 0)
            if total != expected:
                what = "entries checked" if name == "ledger" else "rows match a signed entry"
                problems.append(Problem(f"{name} table", f"holds {total} rows but {expected} {what}: {total - expected:+d} row(s)"))

    def _models(self) -> None:
        from gatewise.registry.schema import ModelRow
        from sqlalchemy import select

        problems = self.state.problems
        stored: dict[Any, dict[str, Any]] = {}
        for row in self.conn.execute(select(ModelRow.__table__)):
            stored.setdefault(row.name, row._asdict())  # a duplicate is named by the census
        for name, expected in self.state.models.items():
            row = stored.pop(name, None)
            if row is None:
                problems.append(Problem(f"models row {name}", "is missing", expected["created_seq"]))
                continue
            self.state.rows_checked += 1
            self.matched["models"] = self.matched.get("models", 0) + 1
            for column, value in expected.items():
                if not _same(row[column], value):
                    problems.append(
                        Problem(f"models row {name}", f"field {column} is {_show(row[column])} in the table but the ledger implies {_show(value)}", expected["created_seq"])
                    )
        for name in stored:
            problems.append(Problem(f"models row {name}", "no ledger entry names this model"))

    def _artifacts(self, home: Path, check_files: bool) -> None:
        from gatewise.registry.schema import ArtifactRow

        problems = self.state.problems
        columns = ("sha256", "size_bytes", "path", "entry_seq")
        # Plain rows: one per candidate, so as many as a tenth of the ledger.
        cursor = self.conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM {ArtifactRow.__tablename__}")
        stored: dict[Any, dict[str, Any]] = {}
        for row in cursor:
            stored.setdefault(row[0], dict(zip(columns, row)))  # a duplicate is named by the census
        for sha, expected in self.state.artifacts.items():
            version = expected.pop("version")
            row = stored.pop(sha, None)
            if row is None:
                problems.append(Problem(f"artifacts row {sha[:16]}... ({version})", "is missing", expected["entry_seq"]))
            else:
                self.state.rows_checked += 1
                self.matched["artifacts"] = self.matched.get("artifacts", 0) + 1
                if row != expected:
                    for column, value in expected.items():
                        if not _same(row[column], value):
                            problems.append(Problem(f"artifacts row {sha[:16]}... ({version})", f"field {column} is {_show(row[column])} in the table but {_show(value)} in signed entry {expected['entry_seq']}", expected["entry_seq"]))
            if check_files:
                self.state.artifacts_checked += 1
                actual = _stored_sha256(home, sha)
                if actual == sha:
                    continue
                where = f"artifact {sha}.onnx ({version}, entry {expected['entry_seq']})"
                if not actual:
                    problems.append(Problem(where, "file is missing from the artifact store", expected["entry_seq"]))
                else:
                    problems.append(Problem(where, f"file bytes have sha256 {actual[:16]}...: the artifact was replaced or damaged", expected["entry_seq"]))
        for sha, row in stored.items():
            problems.append(Problem(f"artifacts row {sha[:16]}...", "no signed candidate entry has these bytes", row.get("entry_seq")))


def _keys(table: Any) -> list[list[Any]]:
    """The column sets that must be unique: the primary key, unique columns, unique indexes."""
    keys = [list(table.primary_key.columns)] if len(table.primary_key.columns) else []
    keys += [[c] for c in table.columns if c.unique]
    keys += [list(index.columns) for index in table.indexes if index.unique]
    return keys


def _census_where(table: str, row: dict[str, Any]) -> str:
    if table == "ledger":
        return f"ledger row seq={row.get('seq')} (digest {str(row.get('digest'))[:16]}...)"
    if table == "models":
        return f"models row {row.get('name')}"
    if table == "artifacts":
        return f"artifacts row {str(row.get('sha256'))[:16]}... entry_seq={row.get('entry_seq')}"
    return _row_where(table, row)
