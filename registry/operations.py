"""Signed entries of operations: a promoted version handed to a deployer, a monitoring pass.

Both are ledger-only statements (no typed table): whoever needs them reads the signed entries.
"""

from __future__ import annotations

from typing import Any

from gatewise.errors import RegistryError
from gatewise.registry import statements as st


def record_deployment(
    registry: Any,
    version: str,
    *,
    target: str,
    deployer: dict[str, Any],
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """Sign one deployment of ``version``: its target, the deployer (name, version, distribution)
    and the outcome ("deployed" or "failed", with ``detail``). Returns (seq, entry digest)."""
    if outcome not in ("deployed", "failed"):
        raise RegistryError(f"unknown deployment outcome '{outcome}' (known: deployed, failed)")
    info = registry.version(version)
    subject = info.sha256 or st.sha256_hex(version.encode())
    with registry.write() as (_conn, appender):
        return appender.append(
            version,
            subject,
            st.DEPLOYMENT,
            {
                "version": version,
                "model": info.model,
                "target": target,
                "deployer": deployer,
                "outcome": outcome,
                "detail": detail or {},
            },
        )


def record_monitoring(registry: Any, model: str, *, version: str | None, drifted: bool, report: dict[str, Any]) -> tuple[int, str]:
    """Sign one monitoring pass over ``model``'s production inputs. Returns (seq, entry digest)."""
    subject = st.sha256_hex(st.canonical_json(st.jsonable(report), clean=True).encode())
    with registry.write() as (_conn, appender):
        return appender.append(
            f"{model}/monitoring",
            subject,
            st.MONITORING,
            {"model": model, "version": version, "drifted": bool(drifted), "report": report},
        )


# -- readers: signed entries only (the projections are not trusted for what a decision reads) ----


def run_entry(registry: Any, run_id: str) -> dict[str, Any]:
    """The signed run entry of ``run_id`` (its settings, data fingerprints and trigger), with
    ``entry`` = {"seq", "digest"}; its digest and signature are checked. RegistryError if absent."""
    from sqlalchemy import select

    from gatewise.registry.database import db_errors
    from gatewise.registry.decisions import _checked_entry, _public_keys
    from gatewise.registry.schema import LedgerEntry

    ledger = LedgerEntry.__table__.c
    with db_errors(registry.url), registry._engine.connect() as conn:  # noqa: SLF001 - same package
        entry = conn.execute(
            select(ledger.seq, ledger.digest, ledger.envelope)
            .where(ledger.ref == run_id, ledger.predicate_type == st.RUN)
            .order_by(ledger.seq)
        ).first()
        if entry is None:
            raise RegistryError(f"no signed run entry for run '{run_id}'; run `gatewise registry verify`")
        _, predicate = _checked_entry(conn, int(entry.seq), _public_keys(conn), entry)
    if predicate.get("run_id") != run_id:
        raise RegistryError(f"ledger entry {entry.seq} is not the run entry of '{run_id}'; run `gatewise registry verify`")
    return {**predicate, "entry": {"seq": int(entry.seq), "digest": entry.digest}}


def monitoring_entries(registry: Any, model: str, limit: int = 0) -> list[dict[str, Any]]:
    """The signed monitoring entries of ``model``, newest first (``limit`` 0: all), each checked,
    with ``entry`` = {"seq", "digest"}."""
    from sqlalchemy import select

    from gatewise.registry.database import db_errors
    from gatewise.registry.decisions import _checked_entry, _public_keys
    from gatewise.registry.schema import LedgerEntry

    ledger = LedgerEntry.__table__.c
    query = (
        select(ledger.seq, ledger.digest, ledger.envelope)
        .where(ledger.ref == model, ledger.predicate_type == st.MONITORING)
        .order_by(ledger.seq.desc())
    )
    if limit:
        query = query.limit(limit)
    found = []
    with db_errors(registry.url), registry._engine.connect() as conn:  # noqa: SLF001 - same package
        keys = _public_keys(conn)
        for entry in conn.execute(query).all():
            _, predicate = _checked_entry(conn, int(entry.seq), keys, entry)
            if predicate.get("model") != model:
                raise RegistryError(f"ledger entry {entry.seq} is not a monitoring entry of {model}; run `gatewise registry verify`")
            found.append({**predicate, "entry": {"seq": int(entry.seq), "digest": entry.digest}})
    return found
