"""`gatewise registry verify`: the verify pass (gatewise.registry.verify) fed the database's rows.

In one process, chunk by chunk: the ledger and the projection rows are read with the driver's own
cursors and every row is compared, field by field, with the entry it came from. After the pass:
a census of every table (keys, NOT NULL columns, duplicates, rows per table against the rows the
pass matched), the mutable ``models`` and ``artifacts`` tables against what the ledger implies,
and the stored artifact files.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from gatewise.registry import verify as pass_
from gatewise.registry.projection import artifact_relpath
from gatewise.registry.verify import (
    FIRST,
    ChunkResult,
    InOrder,
    Problem,
    Reader,
    VerifyReport,
    _same,
    _show,
    _Summary,
    check_entry,
    collections_paused,
    open_envelopes,
)

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
                for start in range(int(lo), int(hi) + 1, pass_.CHUNK):
                    state.absorb(check_chunk(engine, start, min(start + pass_.CHUNK - 1, int(hi)), public_keys, queries, matched))
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
