"""Appending signed statements to the ledger and writing their projections in the same transaction."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gatewise.registry import statements as st
from gatewise.registry.keys import SigningKey
from gatewise.registry.projection import derive
from gatewise.registry.schema import ENTRY_TABLES, ArtifactRow, LedgerEntry, ModelRow
from gatewise.registry.statements import GENESIS_PREV, sha256_hex, sign_statement

def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)  # Python 3.11 reads the trailing Z as UTC


class LedgerWriter:
    """The one way to append to the ledger: a write transaction's connection (the caller holds the
    write lock), the pipeline's signing key, and ``append``. ``Registry.write()`` hands one out;
    the pipeline, the human decisions and the keyring append through it and nothing else.

    Ledger and projection rows are queued and written by ``flush()`` in one executemany per
    table; call it before reading back what was appended, and before commit.
    """

    def __init__(self, conn: Connection, key: SigningKey) -> None:
        self.conn = conn
        self.key = key
        led = LedgerEntry.__table__.c
        head = conn.execute(select(led.seq, led.digest).order_by(led.seq.desc()).limit(1)).first()
        self.seq, self.prev = (int(head.seq), head.digest) if head else (0, GENESIS_PREV)
        self._queued: dict[str, list[dict[str, Any]]] = {}

    def append(
        self, subject_name: str, subject_sha256: str, predicate_type: str, body: dict[str, Any], *, key: SigningKey | None = None
    ) -> tuple[int, str]:
        """Sign and append one statement (with ``key``, default the pipeline's); returns (seq, entry digest)."""
        signer = key or self.key
        seq = self.seq + 1
        now = utc_now()
        # The chain position is inside the signed predicate: moving, dropping or re-linking an
        # entry breaks its signature, not just a column.
        predicate = {"ledger": {"seq": seq, "prev": self.prev, "time": now}, **st.jsonable(body)}
        stmt = st.statement(subject_name, subject_sha256, predicate_type, predicate)
        envelope, payload = sign_statement(stmt, signer.private, signer.keyid)
        digest = sha256_hex(payload)
        derived = derive(seq, digest, predicate_type, predicate)
        self._queue(
            "ledger",
            {
                "seq": seq,
                "prev_digest": self.prev,
                "digest": digest,
                "predicate_type": predicate_type,
                "subject_sha256": subject_sha256,
                "ref": derived.ref,
                "keyid": signer.keyid,
                "created_at": now,
                "envelope": envelope,
            },
        )
        for table, row in derived.rows.items():
            self._queue(table, row)
        if derived.model is not None or derived.artifact is not None:
            self.flush()  # models and artifacts are read before they are written
            self._project_shared(derived, seq)
        self.seq, self.prev = seq, digest
        return seq, digest

    def _queue(self, table: str, row: dict[str, Any]) -> None:
        self._queued.setdefault(table, []).append(row)

    def flush(self) -> None:
        for table, rows in self._queued.items():
            target = LedgerEntry.__table__ if table == "ledger" else ENTRY_TABLES[table].__table__
            self.conn.execute(insert(target), rows)
        self._queued = {}

    def _project_shared(self, derived: Any, seq: int) -> None:
        models = ModelRow.__table__
        if derived.model is not None:
            known = self.conn.execute(select(models.c.name).where(models.c.name == derived.model)).first()
            if known is None:
                self.conn.execute(insert(models), {"name": derived.model, "created_seq": seq})
        if derived.artifact is not None:
            art = ArtifactRow.__table__
            known = self.conn.execute(select(art.c.sha256).where(art.c.sha256 == derived.artifact["sha256"])).first()
            if known is None:
                self.conn.execute(insert(art), derived.artifact)
        if derived.production is not None:
            self.conn.execute(
                update(models)
                .where(models.c.name == derived.model)
                .values(production_version=derived.production, production_seq=seq)
            )


Appender = LedgerWriter  # the name the operations modules know
