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
    """The signed run entry of ``run_id`` (its settings, data fingerprints and trigger), checked
    like every entry that decides (gatewise.registry.signed), with ``entry`` = {"seq", "digest"}.
    RegistryError when there is none."""
    from gatewise.registry.signed import SignedLedger

    with registry.reading() as conn:
        found = SignedLedger(conn).about(run_id, (st.RUN,))
    if not found:
        raise RegistryError(f"no signed run entry for run '{run_id}'; run `gatewise registry verify`")
    entry = found[0]
    if entry.predicate.get("run_id") != run_id:
        raise RegistryError(f"ledger entry {entry.seq} is not the run entry of '{run_id}'; run `gatewise registry verify`")
    return {**entry.predicate, "entry": {"seq": entry.seq, "digest": entry.digest}}


def monitoring_entries(registry: Any, model: str, limit: int = 0) -> list[dict[str, Any]]:
    """The signed monitoring entries of ``model``, newest first (``limit`` 0: all), each checked,
    with ``entry`` = {"seq", "digest"}."""
    from gatewise.registry.signed import SignedLedger

    with registry.reading() as conn:
        found = SignedLedger(conn).about(model, (st.MONITORING,))
    newest = found[::-1][:limit] if limit else found[::-1]
    for entry in newest:
        if entry.predicate.get("model") != model:
            raise RegistryError(f"ledger entry {entry.seq} is not a monitoring entry of {model}; run `gatewise registry verify`")
    return [{**entry.predicate, "entry": {"seq": entry.seq, "digest": entry.digest}} for entry in newest]


def runs_triggered_by(registry: Any, seqs: list[int]) -> dict[int, list[str]]:
    """For each monitoring entry seq, the ids of the runs whose signed run entry names it as their
    trigger (a run names an entry by seq and digest; both must match)."""
    from sqlalchemy import select

    from gatewise.registry.schema import LedgerEntry
    from gatewise.registry.signed import SignedLedger

    wanted = set(seqs)
    if not wanted:
        return {}
    ledger = LedgerEntry.__table__.c
    found: dict[int, list[str]] = {}
    with registry.reading() as conn:
        signed = SignedLedger(conn)
        digests = {seq: entry.digest for seq, entry in signed.entries(wanted).items()}
        # Runs come after the entry that triggered them.
        rows = conn.execute(
            select(ledger.seq, ledger.digest, ledger.keyid, ledger.envelope)
            .where(ledger.predicate_type == st.RUN, ledger.seq > min(wanted))
            .order_by(ledger.seq)
        )
        for row in rows:
            run = signed.check(row).predicate
            trigger = run.get("trigger") or {}
            named = trigger.get("entry") or {}
            if trigger.get("kind") == "monitor" and digests.get(named.get("seq")) == named.get("digest"):
                found.setdefault(int(named["seq"]), []).append(str(run.get("run_id")))
    return found
