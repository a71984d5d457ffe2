"""The registry's tables: the append-only ``ledger`` and the typed projections derived from it.

Only ``ledger`` is the truth. Every other table is rebuilt from it in thought by
``gatewise.registry.verify``; each projection row names the ledger entry (``entry_seq``) that
produced it. Times are ISO-8601 UTC text (``2026-11-20T10:00:00.000000Z``) and JSON columns
hold canonical JSON text, so that a row compares field by field with its signed entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from sqlalchemy import BigInteger, Column, Index, Table, Text, inspect
from sqlmodel import Field, SQLModel


def _seq_pk() -> Column:
    return Column(BigInteger, primary_key=True, autoincrement=False)


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger"

    seq: int = Field(sa_column=_seq_pk(), description="Position in the chain, contiguous from 1.")
    prev_digest: str = Field(description="Digest of the previous entry (64 zeros for the first).")
    digest: str = Field(description="sha256 of this entry's payload (the in-toto statement bytes).")
    predicate_type: str
    subject_sha256: str = Field(index=True)
    ref: str = Field(description="What the entry is about: a version, run id or key id.")
    keyid: str
    created_at: str
    envelope: str = Field(sa_column=Column(Text, nullable=False), description="The DSSE envelope JSON.")

    __table_args__ = (
        Index("ix_ledger_digest", "digest", unique=True),
        Index("ix_ledger_ref_type", "ref", "predicate_type", "seq"),
        # The signed reads (gatewise.registry.signed): the key entries, the newest promotion or
        # candidate of a model, read from the ledger itself rather than from a projection.
        Index("ix_ledger_type_seq", "predicate_type", "seq"),
    )


class KeyRow(SQLModel, table=True):
    __tablename__ = "keys"

    keyid: str = Field(primary_key=True)
    algorithm: str
    public_key: str = Field(description="Raw public key, base64.")
    role: str
    introduced_by: str
    entry_seq: int = Field(sa_type=BigInteger, unique=True)
    created_at: str


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"

    run_id: str = Field(primary_key=True)
    model: str = Field(index=True)
    settings: str = Field(sa_column=Column(Text, nullable=False))
    settings_digest: str
    data: str = Field(sa_column=Column(Text, nullable=False))
    plugins: str = Field(sa_column=Column(Text, nullable=False))
    entry_seq: int = Field(sa_type=BigInteger, unique=True)
    entry_digest: str
    created_at: str


class ModelRow(SQLModel, table=True):
    """The one mutable projection: a model's ``production`` alias moves with each promotion."""

    __tablename__ = "models"

    name: str = Field(primary_key=True)
    created_seq: int = Field(sa_type=BigInteger)
    production_version: Optional[str] = None
    production_seq: Optional[int] = Field(default=None, sa_type=BigInteger)


class VersionRow(SQLModel, table=True):
    __tablename__ = "versions"

    name: str = Field(primary_key=True, description="<model>:v<number>")
    model: str
    number: int
    run_id: str
    candidate: str
    status: str
    sha256: Optional[str] = Field(default=None, index=True)
    size_bytes: Optional[int] = Field(default=None, sa_type=BigInteger)
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    plugin_name: str
    plugin_version: str
    plugin_distribution: str
    plugin_code_sha256: str
    parent_version: Optional[str] = None
    entry_seq: int = Field(sa_type=BigInteger, unique=True)
    entry_digest: str
    created_at: str

    __table_args__ = (
        Index("ix_versions_model_number", "model", "number", unique=True),
        Index("ix_versions_run_candidate", "run_id", "candidate"),
    )


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"

    sha256: str = Field(primary_key=True)
    size_bytes: int = Field(sa_type=BigInteger)
    path: str = Field(description="Relative to the gatewise home: artifacts/<sha256>.onnx")
    entry_seq: int = Field(sa_type=BigInteger, unique=True, description="The first candidate entry with these bytes.")


class GateResultRow(SQLModel, table=True):
    """A gate verdict on a version, or (``version`` NULL) a data gate rejecting a run's data."""

    __tablename__ = "gate_results"

    entry_seq: int = Field(sa_column=_seq_pk())
    entry_digest: str
    kind: str = Field(description="'candidate' or 'data'")
    version: Optional[str] = None
    model: str
    run_id: str
    gate: str
    passed: bool
    value: Optional[float] = None
    threshold: Optional[float] = None
    summary: str = Field(sa_column=Column(Text, nullable=False))
    details: str = Field(sa_column=Column(Text, nullable=False))
    evidence: str = Field(sa_column=Column(Text, nullable=False))
    policy_digest: Optional[str] = None
    champion_version: Optional[str] = None
    created_at: str

    # Listings (registry/queries.py) are newest first under any mix of model / gate / verdict /
    # time filters: each mix has an index with its equality columns first, ending in
    # (created_at, entry_seq), so a query walks one index backwards and stops at its limit.
    __table_args__ = (
        Index("ix_gate_results_version_gate", "version", "gate", "entry_seq"),
        Index("ix_gate_results_run", "run_id"),
        Index("ix_gate_results_passed_time", "passed", "created_at", "entry_seq"),
        Index("ix_gate_results_gate_time", "gate", "passed", "created_at", "entry_seq"),
        Index("ix_gate_results_model_time", "model", "passed", "created_at", "entry_seq"),
        Index("ix_gate_results_model_gate_time", "model", "gate", "passed", "created_at", "entry_seq"),
    )


class PromotionRow(SQLModel, table=True):
    __tablename__ = "promotions"

    entry_seq: int = Field(sa_column=_seq_pk())
    entry_digest: str
    version: str = Field(index=True)
    model: str
    alias: str
    previous_version: Optional[str] = None
    reason: str = Field(sa_column=Column(Text, nullable=False))
    gate_entries: str = Field(sa_column=Column(Text, nullable=False), description="JSON list of {gate, seq, digest}.")
    created_at: str

    __table_args__ = (Index("ix_promotions_model_seq", "model", "entry_seq"),)


class KeyEventRow(SQLModel, table=True):
    """One row per key entry: a key introduced (``introduction``, ``rotation``) or ``revocation``.

    A key's status (active, rotated, revoked) is the replay of these rows (gatewise.registry.keyring).
    """

    __tablename__ = "key_events"

    entry_seq: int = Field(sa_column=_seq_pk())
    entry_digest: str
    event: str = Field(description="'introduction', 'rotation' or 'revocation'")
    keyid: str = Field(description="The key introduced (for a rotation: the successor) or revoked.")
    name: Optional[str] = Field(default=None, description="Who holds the key (an approver's name); NULL in key/v1.")
    role: Optional[str] = Field(default=None, description="'pipeline' or 'approver'; NULL for a revocation.")
    replaces: Optional[str] = Field(default=None, description="A rotation's retired key id.")
    reason: Optional[str] = Field(default=None, sa_column=Column(Text))
    signed_by: str = Field(description="The key id the predicate names as introducing or revoking it.")
    created_at: str


class WaiverRow(SQLModel, table=True):
    """An approver's signed override of failed gate results; the gate_results rows stay failed."""

    __tablename__ = "waivers"

    entry_seq: int = Field(sa_column=_seq_pk())
    entry_digest: str
    version: str = Field(index=True)
    model: str
    gates: str = Field(sa_column=Column(Text, nullable=False), description="JSON list of {gate, seq, digest} overridden.")
    approver: str
    approver_keyid: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_at: str

    __table_args__ = (Index("ix_waivers_model_seq", "model", "entry_seq"),)


class RollbackRow(SQLModel, table=True):
    """The production alias moved back to an earlier promoted version."""

    __tablename__ = "rollbacks"

    entry_seq: int = Field(sa_column=_seq_pk())
    entry_digest: str
    version: str = Field(index=True, description="The version the alias moves back to.")
    model: str
    alias: str
    previous_version: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    approver: Optional[str] = None
    approver_keyid: Optional[str] = None
    promotion_seq: int = Field(sa_type=BigInteger, description="The earlier promotion of the version it restores.")
    promotion_digest: str
    created_at: str

    __table_args__ = (Index("ix_rollbacks_model_seq", "model", "entry_seq"),)


# Projection tables with one row per ledger entry at most, keyed by the entry's seq.
ENTRY_TABLES = {
    "keys": KeyRow,
    "runs": RunRow,
    "versions": VersionRow,
    "gate_results": GateResultRow,
    "promotions": PromotionRow,
    "artifacts": ArtifactRow,
    "key_events": KeyEventRow,
    "waivers": WaiverRow,
    "rollbacks": RollbackRow,
}
ALL_TABLES = ("ledger", *ENTRY_TABLES, "models")


def create_missing_indexes(conn: Any, tables: Iterable[Table]) -> None:
    """Create the declared indexes an older registry lacks (``create_all`` adds them only with a
    new table), so a registry opened for writing gets the query indexes of this version."""
    inspector = inspect(conn)
    for table in tables:
        present = {found["name"] for found in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(conn)
