"""`gatewise registry history MODEL`: every promotion, rollback and waiver of a model, with its signer
and the gate results it relied on, read from the typed tables (which `registry verify` checks
against the signed ledger)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from gatewise.errors import RegistryError
from gatewise.registry.database import db_errors
from gatewise.registry.keyring import Keyring
from gatewise.registry.schema import GateResultRow, LedgerEntry, ModelRow, PromotionRow, RollbackRow, WaiverRow

_L = LedgerEntry.__table__.c
_M = ModelRow.__table__.c
_G = GateResultRow.__table__.c
_P = PromotionRow.__table__
_W = WaiverRow.__table__
_RB = RollbackRow.__table__
_CHUNK = 500  # bound parameters per IN (...) query


DEFAULT_LIMIT = 100


def model_history(registry: Any, model: str, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The model's newest ``limit`` decisions (0: all), in ledger order, JSON-ready.

    Each table is read newest first with the (model, entry_seq) index and cut at ``limit``, so a
    model with years of decisions answers as fast as a new one; ``truncated`` says if more exist.
    """
    if limit < 0:
        raise RegistryError(f"--limit must be 0 (all) or more, got {limit}")
    with db_errors(registry.url), registry._engine.connect() as conn:
        production = conn.execute(select(_M.name, _M.production_version).where(_M.name == model)).first()
        if production is None:
            names = list(conn.execute(select(_M.name).order_by(_M.name)).scalars())
            raise RegistryError(f"unknown model '{model}' (known: {', '.join(names) or 'none'})")
        promotions, waivers, rollbacks = (_newest(conn, table, model, limit) for table in (_P, _W, _RB))
        truncated = False
        if limit:
            newest = sorted((int(r.entry_seq) for r in (*promotions, *waivers, *rollbacks)), reverse=True)
            truncated = len(newest) > limit
            if truncated:
                oldest_kept = newest[limit - 1]
                promotions, waivers, rollbacks = (
                    [r for r in rows if int(r.entry_seq) >= oldest_kept] for rows in (promotions, waivers, rollbacks)
                )
        seqs = [int(r.entry_seq) for r in (*promotions, *waivers, *rollbacks)]
        entries = {int(r.seq): r for r in _by_seq(conn, select(_L.seq, _L.keyid, _L.predicate_type), _L.seq, seqs)}
        relied = {int(p.entry_seq): json.loads(p.gate_entries) for p in promotions}
        cited = [g.get("seq") for gates in relied.values() for g in gates]
        cited += [g.get("seq") for w in waivers for g in json.loads(w.gates)]
        gate_rows = {int(g.entry_seq): g for g in _by_seq(conn, select(_G.entry_seq, _G.gate, _G.passed, _G.value, _G.threshold, _G.entry_digest), _G.entry_seq, cited)}
        keys = Keyring.from_tables(conn).keys

    def signer(seq: int) -> dict[str, Any]:
        keyid = entries[seq].keyid if seq in entries else None
        state = keys.get(keyid or "")
        return {"keyid": keyid, "name": state.name if state else None, "role": state.role if state else None}

    def gates(cites: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        shown = []
        for cite in cites:
            row = gate_rows.get(cite.get("seq"))
            shown.append(
                {
                    "gate": cite.get("gate"),
                    "passed": bool(row.passed) if row is not None else cite.get("passed"),
                    "value": row.value if row is not None else None,
                    "threshold": row.threshold if row is not None else None,
                    "seq": cite.get("seq"),
                    "digest": cite.get("digest"),
                    "waived_by": (cite.get("waiver") or {}).get("seq"),
                }
            )
        return shown

    events = []
    for p in promotions:
        seq = int(p.entry_seq)
        waived = [g.get("waiver") for g in relied[seq] if g.get("waiver")]
        events.append(
            _event(seq, p, "promotion", entries, signer(seq))
            | {"gate_results": gates(relied[seq]), "waivers": list({w["seq"]: w for w in waived}.values())}
        )
    for w in waivers:
        seq = int(w.entry_seq)
        events.append(
            _event(seq, w, "waiver", entries, signer(seq))
            | {"previous_version": None, "approver": w.approver, "gate_results": gates(json.loads(w.gates))}
        )
    for r in rollbacks:
        seq = int(r.entry_seq)
        events.append(
            _event(seq, r, "rollback", entries, signer(seq))
            | {
                "approver": r.approver,
                "restores": {"seq": int(r.promotion_seq), "digest": r.promotion_digest},
                "gate_results": gates(relied.get(int(r.promotion_seq), [])),
            }
        )
    events.sort(key=lambda event: event["seq"])
    return {"model": model, "production": production.production_version, "events": events, "truncated": truncated}


def _newest(conn: Connection, table: Any, model: str, limit: int) -> list[Any]:
    query = select(table).where(table.c.model == model).order_by(table.c.entry_seq.desc())
    # One more than asked, so that the caller can tell whether older decisions exist.
    return list(conn.execute(query.limit(limit + 1) if limit else query))


def _event(seq: int, row: Any, kind: str, entries: dict[int, Any], signer: dict[str, Any]) -> dict[str, Any]:
    entry = entries.get(seq)
    return {
        "seq": seq,
        "digest": row.entry_digest,
        "time": row.created_at,
        "event": kind,
        "predicate_type": entry.predicate_type if entry is not None else None,
        "version": row.version,
        "previous_version": getattr(row, "previous_version", None),
        "reason": row.reason,
        "signer": signer,
        "approver": signer["name"] if signer["role"] == "approver" else None,
    }


def _by_seq(conn: Connection, query: Any, column: Any, seqs: Iterable[Any]) -> list[Any]:
    wanted = sorted({s for s in seqs if isinstance(s, int) and not isinstance(s, bool)})
    rows: list[Any] = []
    for start in range(0, len(wanted), _CHUNK):
        rows.extend(conn.execute(query.where(column.in_(wanted[start:start + _CHUNK]))))
    return rows
