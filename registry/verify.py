"""Verification: one streaming pass that trusts nothing but the ledger's signatures.

Per entry (in chunks, spread over processes for large ledgers): the envelope parses, the payload
digest matches, the signature verifies, the signed chain position matches the row, and every
projection row the entry stands for equals, field by field, the row re-derived from it.
In order, in the main process: seq is contiguous from 1, each entry's signed ``prev`` is the
digest of the entry before it, each signer was introduced by an earlier key entry, versions are
numbered 1, 2, ... per model, promotions rely on signed passes; then the mutable ``models`` table,
the ``artifacts`` table and the stored artifact bytes are compared with what the ledger implies.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, func, or_, select, text

from gatewise.registry import statements as st
from gatewise.registry.statements import MANDATORY_GATES
from gatewise.registry.artifacts import artifact_file, file_sha256
from gatewise.registry.database import db_errors
from gatewise.registry.keys import keyid_of
from gatewise.registry.projection import ProjectionError, derive
from gatewise.registry.schema import ENTRY_TABLES, ArtifactRow, LedgerEntry, ModelRow

CHUNK = 2000
PARALLEL_FROM = 20000  # below this many entries, starting processes costs more than it saves

_L = LedgerEntry.__table__.c
# Projection tables checked chunk by chunk; artifacts are checked at the end (first bytes win).
_CHUNK_TABLES = {name: model.__table__ for name, model in ENTRY_TABLES.items() if name != "artifacts"}


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "rows_checked": self.rows_checked,
            "artifacts_checked": self.artifacts_checked,
            "head": {"seq": self.head[0], "digest": self.head[1]} if self.head else None,
            "keys": self.keys,
            "seconds": round(self.seconds, 3),
            "problems": [{"where": p.where, "what": p.what, "seq": p.seq} for p in self.problems],
        }


class _Summary(NamedTuple):
    """What the in-order pass needs from one entry (small, so that it pickles cheaply)."""

    seq: int
    digest: str | None  # sha256 of the payload; None if unreadable
    signed_prev: str | None
    keyid: str | None
    sig_ok: bool | None  # None: the worker did not know the key; checked in order instead
    predicate_type: str | None
    label: str
    facts: tuple[Any, ...] | None  # type-specific facts for the in-order checks
    unverified: tuple[bytes, bytes] | None = None  # (payload, signature) when sig_ok is None
    artifact: dict[str, Any] | None = None


# -- per chunk (possibly in another process) ---------------------------------------------------

def check_chunk(engine: Engine, lo: int, hi: int, public_keys: dict[str, bytes]) -> tuple[list[Problem], list[_Summary], int]:
    """Check entries lo..hi and the projection rows they stand for."""
    problems: list[Problem] = []
    summaries: list[_Summary] = []
    rows_checked = 0
    bounds = {"lo": lo, "hi": hi}
    # Plain SQL and plain tuples: this loop is the hot path of a 100k-entry verify.
    with engine.connect() as conn:
        entries = conn.execute(_LEDGER_SQL, bounds).fetchall()
        stored = {
            name: {row[index]: row for row in conn.execute(sql, bounds).fetchall()}
            for name, (sql, _columns, index) in _TABLE_SQL.items()
        }
    for entry in entries:
        summary, derived_rows = _check_entry(entry, public_keys, problems)
        summaries.append(summary)
        seq = entry[0]
        for name, (_sql, columns, _index) in _TABLE_SQL.items():
            row = stored[name].pop(seq, None)
            if derived_rows is None:
                continue  # the entry itself failed; its rows cannot be judged against it
            expected = derived_rows.get(name)
            if expected is None:
                if row is not None:
                    problems.append(Problem(_row_where(name, dict(zip(columns, row))), f"row has no ledger entry behind it (entry {seq} is a {summary.label})", seq))
                continue
            if row is None:
                problems.append(Problem(f"entry {seq} ({summary.label})", f"its {name} row is missing", seq))
                continue
            rows_checked += 1
            values = tuple([expected[column] for column in columns])
            if values == tuple(row):
                continue
            named = dict(zip(columns, row))
            for column, value in zip(columns, values):
                if not _same(named[column], value):
                    shown = named[column]
                    if isinstance(value, bool) and shown in (0, 1) and not isinstance(shown, float):
                        shown = bool(shown)  # SQLite's 0/1, shown as the boolean it stands for
                    problems.append(
                        Problem(
                            _row_where(name, named),
                            f"field {column} is {_show(shown)} in the table but {_show(value)} in signed entry {seq}",
                            seq,
                        )
                    )
    present = {entry[0] for entry in entries}
    for name, rows in stored.items():
        columns = _TABLE_SQL[name][1]
        for seq, row in rows.items():
            if seq not in present:
                problems.append(Problem(_row_where(name, dict(zip(columns, row))), f"row names ledger entry {seq}, which does not exist", seq))
    return problems, summaries, rows_checked


def _table_sql() -> dict[str, tuple[Any, tuple[str, ...], int]]:
    queries = {}
    for name, table in _CHUNK_TABLES.items():
        columns = tuple(column.name for column in table.columns)
        sql = text(f"SELECT {', '.join(columns)} FROM {name} WHERE entry_seq BETWEEN :lo AND :hi")
        queries[name] = (sql, columns, columns.index("entry_seq"))
    return queries


_TABLE_SQL = _table_sql()
_LEDGER_SQL = text(
    "SELECT seq, prev_digest, digest, predicate_type, subject_sha256, ref, keyid, created_at, envelope "
    "FROM ledger WHERE seq BETWEEN :lo AND :hi ORDER BY seq"
)


def _check_entry(entry: Any, public_keys: dict[str, bytes], problems: list[Problem]) -> tuple[_Summary, dict[str, dict[str, Any]] | None]:
    """Check one entry on its own; returns its summary and, if its content is trustworthy, its rows."""
    seq, prev_col, digest_col, type_col, subject_col, ref_col, keyid_col, time_col, envelope = entry
    found: list[str] = []  # named with the best label once the statement is read
    content_ok = True
    try:
        body, keyid, signature = st.open_envelope(envelope)
    except st.EnvelopeError as exc:
        found.append(str(exc))
        return _named(problems, found, _Summary(seq, None, None, None, False, None, _label(type_col, ref_col, {}), None)), None
    digest = st.sha256_hex(body)
    if digest != digest_col:
        content_ok = False
        found.append(f"payload digest {digest[:16]}... does not match the recorded digest {str(digest_col)[:16]}... (payload edited)")
    public = public_keys.get(keyid)
    sig_ok = None if public is None else st.signature_valid(public, body, signature)
    if sig_ok is False:
        content_ok = False
        found.append(f"signature by key {keyid[:16]} does not verify")
    if keyid != keyid_col:
        found.append(f"signed by key {keyid[:16]} but the row says {str(keyid_col)[:16]}")
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
        return _named(problems, found, _Summary(seq, digest, None, keyid, sig_ok, None, _label(type_col, ref_col, {}), None)), None
    if signed_seq != seq:
        content_ok = False
        found.append(f"signed seq is {signed_seq}: the entry was moved (swapped, inserted or renumbered)")
    if (prev_col, type_col, subject_col, ref_col, time_col) != (signed_prev, predicate_type, subject, derived.ref, signed_time):
        for column, stored, signed in (
            ("prev_digest", prev_col, signed_prev),
            ("predicate_type", type_col, predicate_type),
            ("subject_sha256", subject_col, subject),
            ("ref", ref_col, derived.ref),
            ("created_at", time_col, signed_time),
        ):
            if stored != signed:
                found.append(f"ledger column {column} is {_show(stored)} but the signed statement says {_show(signed)}")
    summary = _Summary(
        seq,
        digest,
        signed_prev,
        keyid,
        sig_ok,
        predicate_type,
        _label(predicate_type, derived.ref, predicate),
        facts,
        (body, signature) if sig_ok is None else None,
        derived.artifact,
    )
    if found:
        _named(problems, found, summary)
    # Rows are judged only against content that is what was signed at this position.
    return summary, (derived.rows if content_ok else None)


def _named(problems: list[Problem], found: list[str], summary: _Summary) -> _Summary:
    problems.extend(Problem(f"entry {summary.seq} ({summary.label})", what, summary.seq) for what in found)
    return summary


def _facts(predicate_type: str, p: dict[str, Any], derived: Any) -> tuple[Any, ...]:
    if predicate_type == st.KEY:
        return (p["keyid"], p["public_key"], p["introduced_by"])
    if predicate_type == st.CANDIDATE:
        return (p["version"], p["model"], p["number"], p["status"], (p.get("parent") or {}).get("version"))
    if predicate_type == st.GATE_RESULT:
        return (p["version"],)
    if predicate_type == st.PROMOTION:
        return (p["version"], p["model"], p.get("previous_version"), tuple((g["gate"], g["seq"], g["digest"]) for g in p["gate_results"]))
    return (derived.model,)


def _label(predicate_type: str, ref: str, predicate: dict[str, Any]) -> str:
    if predicate_type == st.GATE_RESULT or predicate_type == st.DATA_REJECTED:
        gate = predicate.get("gate")
        if isinstance(gate, str):
            return f"{st.short_type(predicate_type)} {ref} {gate}"
    return f"{st.short_type(predicate_type)} {ref}"


_ROW_NAMES = {"keys": "keyid", "runs": "run_id", "versions": "name", "promotions": "version"}


def _row_where(table: str, row: dict[str, Any]) -> str:
    if table == "gate_results":
        name = f"{row.get('version') or row.get('run_id')} {row.get('gate')}"
    else:
        name = row.get(_ROW_NAMES.get(table, ""))
    return f"{table} row entry_seq={row.get('entry_seq')} ({name})"


def _same(stored: Any, derived: Any) -> bool:
    if isinstance(derived, bool):  # SQLite hands booleans back as 0 and 1
        return isinstance(stored, int) and stored in (0, 1) and bool(stored) is derived
    if isinstance(stored, bool):
        return False
    return stored == derived


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- the whole pass --------------------------------------------------------------------------


def verify_registry(
    engine: Engine,
    url: str,
    home: Path,
    *,
    check_artifacts: bool = True,
    trusted_keys: Iterable[str] = (),
    workers: int | None = None,
) -> VerifyReport:
    started = time.perf_counter()
    with db_errors(url):
        with engine.connect() as conn:
            bounds = conn.execute(select(func.min(_L.seq), func.max(_L.seq), func.count())).one()
            key_envelopes = list(conn.execute(select(_L.envelope).where(_L.predicate_type == st.KEY)).scalars())
        public_keys = _public_keys(key_envelopes)
        state = _InOrder(trusted_keys)
        if bounds[2]:
            lo, hi = int(bounds[0]), int(bounds[1])
            for problems, summaries, rows in _chunks(engine, url, lo, hi, int(bounds[2]), public_keys, workers):
                state.problems.extend(problems)
                state.rows_checked += rows
                for summary in summaries:
                    state.take(summary)
        with engine.connect() as conn:
            state.finish(conn, home, check_artifacts, hi=int(bounds[1] or 0))
    return VerifyReport(
        ok=not state.problems,
        problems=sorted(state.problems, key=lambda p: (p.seq is None, p.seq or 0)),
        entries_checked=state.entries,
        rows_checked=state.rows_checked,
        artifacts_checked=state.artifacts_checked,
        head=state.head,
        keys=sorted(state.active),
        seconds=time.perf_counter() - started,
    )


def _public_keys(envelopes: Iterable[str]) -> dict[str, bytes]:
    """Every public key any key entry carries; each proves its own id (sha256 of the key)."""
    found = {}
    for envelope in envelopes:
        try:
            body, _, _ = st.open_envelope(envelope)
            public = base64.b64decode(json.loads(body)["predicate"]["public_key"])
        except (st.EnvelopeError, ValueError, KeyError, TypeError):
            continue
        found[keyid_of(public)] = public
    return found


def _chunks(engine: Engine, url: str, lo: int, hi: int, count: int, public_keys: dict[str, bytes], workers: int | None) -> Iterable[tuple[list[Problem], list[_Summary], int]]:
    ranges = [(start, min(start + CHUNK - 1, hi)) for start in range(lo, hi + 1, CHUNK)]
    workers = min(workers if workers is not None else (os.cpu_count() or 1), len(ranges))
    if workers <= 1 or count < PARALLEL_FROM or engine.url.database in (None, "", ":memory:"):
        for start, end in ranges:
            yield check_chunk(engine, start, end, public_keys)
        return
    # Worker i checks chunks i, i + n, i + 2n, ... and writes them in that order, so reading the
    # chunks in ledger order round-robin over the workers never waits on the wrong pipe.
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gatewise.registry.verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    done = 0
    try:
        for index, proc in enumerate(procs):
            assert proc.stdin is not None
            pickle.dump((url, public_keys, ranges[index::workers]), proc.stdin)
            proc.stdin.close()
        for index in range(len(ranges)):
            result = pickle.load(procs[index % workers].stdout)  # type: ignore[arg-type]
            done += 1
            yield result
    except (EOFError, OSError, pickle.UnpicklingError):
        # A worker could not start or died: finish in this process rather than fail the audit.
        for start, end in ranges[done:]:
            yield check_chunk(engine, start, end, public_keys)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


class _InOrder:
    """The checks that need the entries in order: chain, key trust, numbering, promotions."""

    def __init__(self, trusted_keys: Iterable[str]) -> None:
        self.pinned = set(trusted_keys)
        self.problems: list[Problem] = []
        self.entries = 0
        self.rows_checked = 0
        self.artifacts_checked = 0
        self.expected_seq = 1
        self.prev_digest: str | None = st.GENESIS_PREV
        self.head: tuple[int, str] | None = None
        self.active: dict[str, bytes] = {}  # keys introduced so far
        self.models: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, tuple[str, str]] = {}  # version -> (model, status)
        self.numbers: dict[str, int] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.promotions: list[tuple[int, str, tuple[Any, ...]]] = []

    def fail(self, summary: _Summary, what: str) -> None:
        self.problems.append(Problem(f"entry {summary.seq} ({summary.label})", what, summary.seq))

    def take(self, s: _Summary) -> None:
        self.entries += 1
        if s.seq != self.expected_seq:
            missing = f"{self.expected_seq}" if s.seq == self.expected_seq + 1 else f"{self.expected_seq}..{s.seq - 1}"
            self.problems.append(Problem(f"entry {missing}", f"missing: the ledger jumps from {self.expected_seq - 1} to {s.seq} (entry deleted)", self.expected_seq))
        if s.signed_prev is not None and self.prev_digest is not None and s.signed_prev != self.prev_digest:
            self.fail(s, f"signed prev digest {s.signed_prev[:16]}... is not the digest of entry {s.seq - 1} ({self.prev_digest[:16]}...): the chain is broken here")
        self.expected_seq = s.seq + 1
        self.prev_digest = s.digest
        self.head = (s.seq, s.digest or "")
        if s.predicate_type is None or s.facts is None:
            return
        self._check_signer(s)
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
        elif s.predicate_type == st.GATE_RESULT:
            if s.facts[0] not in self.versions:
                self.fail(s, f"gate result for version {s.facts[0]}, which was not registered before it")
        elif s.predicate_type == st.PROMOTION:
            version, model, previous, relied = s.facts
            if self.versions.get(version, (None, None))[1] != "ok":
                self.fail(s, f"promotes {version}, which is not a registered, unerrored version")
            current = self.models.get(model, {}).get("production_version")
            if previous != current:
                self.fail(s, f"says the previous production version was {previous}, the ledger says {current}")
            self.promotions.append((s.seq, version, relied))
        if s.predicate_type in (st.RUN, st.CANDIDATE, st.DATA_REJECTED, st.PROMOTION):
            model = s.facts[1] if s.predicate_type in (st.CANDIDATE, st.PROMOTION) else s.facts[0]
            if model is not None and model not in self.models:
                self.models[model] = {"name": model, "created_seq": s.seq, "production_version": None, "production_seq": None}
            if s.predicate_type == st.PROMOTION:
                self.models[model].update(production_version=s.facts[0], production_seq=s.seq)

    def _check_signer(self, s: _Summary) -> None:
        if s.sig_ok is None:  # signed by a key the pre-scan did not find; maybe introduced since
            public = self.active.get(s.keyid or "")
            if public is None or s.unverified is None or not st.signature_valid(public, *s.unverified):
                self.fail(s, f"signature by key {(s.keyid or '?')[:16]} cannot be verified with any key in the ledger")
        if s.predicate_type == st.KEY:
            keyid, public_b64, introduced_by = s.facts
            try:
                public = base64.b64decode(public_b64)
            except ValueError:
                public = b""
            if keyid_of(public) != keyid:
                self.fail(s, f"key entry's public key does not hash to its keyid {keyid[:16]}")
            if not self.active:
                if s.seq != 1 or s.keyid != keyid or introduced_by != keyid:
                    self.fail(s, "the first key must be introduced by the first entry and sign itself")
                if self.pinned and keyid not in self.pinned:
                    self.fail(s, f"genesis key {keyid[:16]} is not one of the trusted keys given")
            elif s.keyid not in self.active or introduced_by != s.keyid:
                self.fail(s, f"introduces key {keyid[:16]} without a signature by a key already in the ledger")
                return
            self.active[keyid] = public
            return
        if s.keyid not in self.active:
            self.fail(s, f"signed by key {(s.keyid or '?')[:16]}, which no earlier key entry introduced")

    def finish(self, conn: Any, home: Path, check_artifacts: bool, hi: int) -> None:
        if self.entries == 0:
            self.problems.append(Problem("ledger", "is empty: not even the key entry is there"))
        self._orphans(conn, hi)
        self._promotions(conn)
        self._models(conn)
        self._artifacts(conn, home, check_artifacts)

    def _orphans(self, conn: Any, hi: int) -> None:
        for name, table in _CHUNK_TABLES.items():
            rows = conn.execute(select(table).where(or_(table.c.entry_seq < 1, table.c.entry_seq > hi)))
            for row in rows:
                data = row._asdict()
                self.problems.append(Problem(_row_where(name, data), f"row names ledger entry {data['entry_seq']}, which does not exist", None))

    def _promotions(self, conn: Any) -> None:
        """Each promotion must rely on earlier signed passes of every mandatory gate for its version."""
        for seq, version, relied in self.promotions:
            where = f"entry {seq} (promotion {version})"
            gates = {gate for gate, _, _ in relied}
            missing = [gate for gate in MANDATORY_GATES if gate not in gates]
            if missing:
                self.problems.append(Problem(where, f"relies on no result for {', '.join(missing)}", seq))
            for gate, gate_seq, gate_digest in relied:
                row = conn.execute(select(_L.envelope).where(_L.seq == gate_seq)).first()
                predicate = None
                if row is not None and isinstance(gate_seq, int) and gate_seq < seq:
                    try:
                        body, _, _ = st.open_envelope(row.envelope)
                        if st.sha256_hex(body) == gate_digest:
                            predicate = json.loads(body)["predicate"]
                    except (st.EnvelopeError, ValueError, KeyError):
                        predicate = None
                if (
                    predicate is None
                    or predicate.get("version") != version
                    or predicate.get("gate") != gate
                    or predicate.get("passed") is not True
                ):
                    self.problems.append(Problem(where, f"relies on entry {gate_seq} as a pass of {gate} for {version}, which it is not", seq))

    def _models(self, conn: Any) -> None:
        table = ModelRow.__table__
        stored = {row.name: row._asdict() for row in conn.execute(select(table))}
        for name, expected in self.models.items():
            row = stored.pop(name, None)
            if row is None:
                self.problems.append(Problem(f"models row {name}", "is missing", expected["created_seq"]))
                continue
            self.rows_checked += 1
            for column, value in expected.items():
                if not _same(row[column], value):
                    self.problems.append(
                        Problem(f"models row {name}", f"field {column} is {_show(row[column])} in the table but the ledger implies {_show(value)}", expected["created_seq"])
                    )
        for name in stored:
            self.problems.append(Problem(f"models row {name}", "no ledger entry names this model"))

    def _artifacts(self, conn: Any, home: Path, check_files: bool) -> None:
        table = ArtifactRow.__table__
        stored = {row.sha256: row._asdict() for row in conn.execute(select(table))}
        for sha, expected in self.artifacts.items():
            version = expected.pop("version")
            where = f"artifacts row {sha[:16]}... ({version})"
            row = stored.pop(sha, None)
            if row is None:
                self.problems.append(Problem(where, "is missing", expected["entry_seq"]))
            else:
                self.rows_checked += 1
                for column, value in expected.items():
                    if not _same(row[column], value):
                        self.problems.append(Problem(where, f"field {column} is {_show(row[column])} in the table but {_show(value)} in signed entry {expected['entry_seq']}", expected["entry_seq"]))
            if check_files:
                self.artifacts_checked += 1
                path = artifact_file(home, sha)
                where = f"artifact {path.name} ({version}, entry {expected['entry_seq']})"
                if not path.exists():
                    self.problems.append(Problem(where, "file is missing from the artifact store", expected["entry_seq"]))
                    continue
                actual = file_sha256(path)
                if actual != sha:
                    self.problems.append(Problem(where, f"file bytes have sha256 {actual[:16]}...: the artifact was replaced or damaged", expected["entry_seq"]))
        for sha, row in stored.items():
            self.problems.append(Problem(f"artifacts row {sha[:16]}...", "no signed candidate entry has these bytes", row.get("entry_seq")))
