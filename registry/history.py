"""`gatewise registry history MODEL`: every promotion, rollback and waiver of a model, with its signer
and the gate results it relied on. The typed tables find the newest decisions; everything shown is
read from their signed ledger entries (gatewise.registry.signed), and production from the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from gatewise.errors import RegistryError
from gatewise.registry import statements as st
from gatewise.registry.schema import ModelRow, PromotionRow, RollbackRow, WaiverRow
from gatewise.registry.signed import SignedLedger, measured

_M = ModelRow.__table__.c
_P = PromotionRow.__table__
_W = WaiverRow.__table__
_RB = RollbackRow.__table__


DEFAULT_LIMIT = 100


def model_history(registry: Any, model: str, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The model's newest ``limit`` decisions (0: all), in ledger order, JSON-ready.

    Each table is read newest first with the (model, entry_seq) index and cut at ``limit``, so a
    model with years of decisions answers as fast as a new one; ``truncated`` says if more exist.
    """
    if limit < 0:
        raise RegistryError(f"--limit must be 0 (all) or more, got {limit}")
    with registry.reading() as conn:
        known = conn.execute(select(_M.name).where(_M.name == model)).first()
        ledger = SignedLedger(conn)
        live = ledger.production(model)
        if known is None and live is None:
            names = list(conn.execute(select(_M.name).order_by(_M.name)).scalars())
            raise RegistryError(f"unknown model '{model}' (known: {', '.join(names) or 'none'})")
        # The tables find the newest decisions fast; what is shown comes from their signed entries.
        seqs = sorted({int(r.entry_seq) for table in (_P, _W, _RB) for r in _newest(conn, table, model, limit)
                       if r.entry_seq is not None}, reverse=True)
        truncated = bool(limit) and len(seqs) > limit
        signed = ledger.entries(seqs[:limit] if limit else seqs)
        decisions = [e for _, e in sorted(signed.items()) if e.predicate_type in _KINDS and e.predicate.get("model") == model]
        cited = [g.get("seq") for e in decisions for g in _cites(e)]
        cited += [e.predicate.get("restores", {}).get("seq") for e in decisions if e.predicate_type == st.ROLLBACK]
        cited_entries = ledger.entries(cited)
        cited += [g.get("seq") for e in cited_entries.values() if e.predicate_type in (st.PROMOTION, st.PROMOTION_V2) for g in _cites(e)]
        cited_entries.update(ledger.entries(s for s in cited if s not in cited_entries))
        policies = cited_policies(ledger, decisions)
        keys = ledger.keyring.keys

    def signer(entry: Any) -> dict[str, Any]:
        state = keys.get(entry.keyid)
        return {"keyid": entry.keyid, "name": state.name if state else None, "role": state.role if state else None}

    def gates(cites: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        shown = []
        for cite in cites:
            result = cited_entries.get(cite.get("seq"))
            p = result.predicate if result is not None and result.predicate_type == st.GATE_RESULT else None
            shown.append(
                {
                    "gate": cite.get("gate"),
                    "passed": p.get("passed") is True if p is not None else cite.get("passed"),
                    "value": measured(p.get("value")) if p is not None else None,
                    "threshold": measured(p.get("threshold")) if p is not None else None,
                    "seq": cite.get("seq"),
                    "digest": cite.get("digest"),
                    "waived_by": (cite.get("waiver") or {}).get("seq"),
                }
            )
        return shown

    events = []
    for e in decisions:
        p = e.predicate
        kind = _KINDS[e.predicate_type]
        event = {
            "seq": e.seq,
            "digest": e.digest,
            "time": e.time,
            "event": kind,
            "predicate_type": e.predicate_type,
            "version": p.get("version"),
            "previous_version": p.get("previous_version"),
            "reason": p.get("reason"),
            "signer": signer(e),
        }
        event["approver"] = event["signer"]["name"] if event["signer"]["role"] == "approver" else None
        if kind == "promotion":
            waived = [g.get("waiver") for g in _cites(e) if g.get("waiver")]
            event |= {"gate_results": gates(_cites(e)), "waivers": list({w["seq"]: w for w in waived}.values()),
                      "policy": policies.get((p.get("policy") or {}).get("seq")) if p.get("policy") else None}
        elif kind == "waiver":
            event |= {"previous_version": None, "approver": (p.get("approver") or {}).get("name"), "gate_results": gates(_cites(e))}
        else:
            restores = p.get("restores") or {}
            promotion = cited_entries.get(restores.get("seq"))
            event |= {
                "approver": (p.get("approver") or {}).get("name"),
                "restores": {"seq": restores.get("seq"), "digest": restores.get("digest")},
                "gate_results": gates(_cites(promotion)) if promotion is not None else [],
            }
        events.append(event)
    return {"model": model, "production": live.predicate.get("version") if live else None, "events": events, "truncated": truncated}


_KINDS = {st.PROMOTION: "promotion", st.PROMOTION_V2: "promotion", st.WAIVER: "waiver", st.ROLLBACK: "rollback"}


def cited_policies(ledger: SignedLedger, moves: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """The signed policy entries these promotions cite, by seq: {seq, digest, approver, reason, time}.
    A cited entry that is not a policy entry with that digest is a RegistryError (verify names it)."""
    wanted = {(m.predicate.get("policy") or {}).get("seq"): (m.predicate.get("policy") or {}).get("digest") for m in moves
              if isinstance(m.predicate.get("policy"), dict)}
    found = {}
    for seq, entry in ledger.entries(wanted).items():
        if entry.predicate_type != st.POLICY or entry.digest != wanted[seq]:
            raise RegistryError(f"a promotion cites entry {seq} as its gating policy, which it is not: run `gatewise registry verify`")
        found[seq] = {"seq": seq, "digest": entry.digest, "approver": (entry.predicate.get("approver") or {}).get("name"),
                      "reason": entry.predicate.get("reason"), "time": entry.time, "policy_digest": entry.predicate.get("policy_digest")}
    return found


def _cites(entry: Any) -> list[dict[str, Any]]:
    """The gate results a promotion or waiver cites ({gate, seq, digest, ...})."""
    cites = entry.predicate.get("gate_results" if entry.predicate_type != st.WAIVER else "gates")
    return [c for c in cites if isinstance(c, dict)] if isinstance(cites, list) else []



def _newest(conn: Connection, table: Any, model: str, limit: int) -> list[Any]:
    query = select(table).where(table.c.model == model).order_by(table.c.entry_seq.desc())
    # One more than asked, so that the caller can tell whether older decisions exist.
    return list(conn.execute(query.limit(limit + 1) if limit else query))
