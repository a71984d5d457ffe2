"""Human decisions as signed records: approver promotions, waivers of failed gates, rollbacks.

A waiver never turns a failed gate into a pass: the gate_results rows stay failed, the waiver
entry names the failed entries it overrides, and the promotion cites each mandatory gate's
latest result (passed or failed) with the waiver that covers each failure. ``DecisionChecks``
is the part of ``gatewise registry verify`` that re-checks these entries in ledger order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from gatewise.errors import ExitCode, RegistryError, UsageError
from gatewise.registry import statements as st
from gatewise.registry.keyring import load_approver_key
from gatewise.registry.policy_entries import run_loosenings
from gatewise.registry.signed import PROMOTIONS, SignedLedger, gate_order
from gatewise.registry.schema import LedgerEntry, ModelRow
from gatewise.registry.statements import MANDATORY_GATES

PRODUCTION = "production"

_L = LedgerEntry.__table__.c
_M = ModelRow.__table__.c


class PromotionBlocked(RegistryError):
    """A gate result blocks the promotion (a failure nobody waived, or a missing result): exit 3,
    the same code as a pipeline run whose gates blocked every candidate."""

    exit_code = ExitCode.BLOCKED


@dataclass(frozen=True)
class Decision:
    """What a human decision recorded: the entry that moved the alias, and the waiver it relied on."""

    kind: str  # "promotion" or "rollback"
    model: str
    version: str
    previous_version: str | None
    seq: int
    digest: str
    signer: str  # key id
    approver: str | None
    waived: tuple[str, ...] = ()
    waiver_seq: int | None = None
    waiver_digest: str | None = None
    policy: dict[str, Any] | None = None  # the signed policy entry relied on: {"seq", "digest"}; None: built-in defaults

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "model": self.model,
            "version": self.version,
            "previous_version": self.previous_version,
            "entry": {"seq": self.seq, "digest": self.digest},
            "signer": self.signer,
            "approver": self.approver,
            "waived": list(self.waived),
            "waiver": {"seq": self.waiver_seq, "digest": self.waiver_digest} if self.waiver_seq else None,
            "policy": self.policy,
        }


def _reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise UsageError("a human decision needs a --reason")
    return reason.strip()


# -- writes ----------------------------------------------------------------------------------------


def promote(
    registry: Any,
    version: str,
    *,
    reason: str | None = None,
    approver: str | None = None,
    waive: Iterable[str] = (),
    key_file: Path | None = None,
) -> Decision:
    """Move ``version``'s model's production alias to it: the one promotion statement (promotion/v2).

    Without ``approver`` the pipeline key signs, and the latest signed result of each mandatory
    gate must be a pass; the promotion cites those five results. With ``approver`` the approver's
    own key signs: every mandatory gate needs a recorded result, every gate whose latest result
    failed must be named in ``waive`` (and only such gates can be), and a waiver entry naming the
    overridden results comes first; the promotion cites the latest result of every gate. The
    version must not have errored. A gate that blocks raises PromotionBlocked (exit 3).
    """
    if approver is None:
        if waive or key_file is not None:
            raise UsageError("a waiver and --key-file need an approver: give --approver NAME")
        reason = reason.strip() if reason and reason.strip() else "all mandatory gates passed"
    else:
        reason = _reason(reason)
    waive = tuple(dict.fromkeys(waive))
    with registry.write() as (conn, writer):
        ledger = SignedLedger(conn)
        row = ledger.version(version)
        if row.status != "ok":
            raise RegistryError(f"cannot promote {version}: the candidate errored ({row.error})")
        key = load_approver_key(registry, conn, approver, key_file) if approver is not None else None
        latest = ledger.latest_results(version)
        cited = gate_order(latest) if key is not None else [gate for gate in MANDATORY_GATES if gate in latest]
        for gate in waive:
            if gate not in latest:
                known = ", ".join(gate_order(latest)) or "none"
                raise RegistryError(f"cannot waive {gate} for {version}: it has no recorded result (gates with results: {known})")
            if latest[gate].passed:
                raise RegistryError(f"cannot waive {gate} for {version}: its latest result (entry {latest[gate].seq}) passed; only a failed gate can be waived")
        missing = [gate for gate in MANDATORY_GATES if gate not in latest]
        unwaived = [f"{gate} (entry {latest[gate].seq})" for gate in cited if not latest[gate].passed and gate not in waive]
        problems = []
        if missing:
            problems.append(f"no recorded result for {', '.join(missing)}" + (" (a waiver overrides a failed result, never a missing one)" if key else ""))
        if unwaived:
            problems.append(f"failed {', '.join(unwaived)}" + (" and not waived (--waive GATE)" if key else ""))
        # The gates were held to the thresholds signed into the run's entry: none may be looser
        # than the active signed policy (gatewise.registry.policy_entries), waiver or not.
        policy, looser = run_loosenings(ledger, row.run_id)
        if looser:
            problems.append(
                f"its run's [gates] are looser than the signed policy (entry {policy.seq}, set by {policy.approver}): "
                + "; ".join(item.describe() for item in looser)
            )
        if problems:
            raise PromotionBlocked(f"cannot promote {version}: {'; '.join(problems)}")
        current = ledger.live_version(row.model)
        if key is not None and current == version:
            raise RegistryError(f"{version} is already the production version of {row.model}")
        approver_ref = {"name": approver, "keyid": key.keyid} if key is not None else None
        waiver_ref = None
        if waive:
            gates = [{"gate": gate, "seq": latest[gate].seq, "digest": latest[gate].digest} for gate in gate_order(waive)]
            wseq, wdigest = writer.append(
                version,
                row.sha256,
                st.WAIVER,
                {"version": version, "model": row.model, "gates": gates, "approver": approver_ref, "reason": reason},
                key=key,
            )
            waiver_ref = {"seq": wseq, "digest": wdigest}
        relied = [
            {
                "gate": gate,
                "seq": latest[gate].seq,
                "digest": latest[gate].digest,
                "passed": latest[gate].passed,
                "waiver": waiver_ref if gate in waive else None,
            }
            for gate in cited
        ]
        seq, digest = writer.append(
            version,
            row.sha256,
            st.PROMOTION_V2,
            {
                "version": version,
                "model": row.model,
                "alias": PRODUCTION,
                "previous_version": current,
                "reason": reason,
                "approver": approver_ref,
                "gate_results": relied,
                "waivers": [waiver_ref] if waiver_ref else [],
                "policy": policy.ref() if policy else None,  # None: no policy was signed, the built-in defaults
            },
            key=key,
        )
    return Decision(
        "promotion", row.model, version, current, seq, digest, (key or writer.key).keyid, approver, tuple(gate_order(waive)),
        waiver_ref["seq"] if waiver_ref else None, waiver_ref["digest"] if waiver_ref else None, policy.ref() if policy else None,
    )


def rollback(
    registry: Any,
    model: str,
    *,
    reason: str,
    to: str | None = None,
    approver: str | None = None,
    key_file: Path | None = None,
) -> Decision:
    """Move ``model``'s production alias back to ``to`` (default: the production version before
    the current one), a version that was promoted before. Signed by the approver's key if one is
    named, else by the pipeline key."""
    reason = _reason(reason)
    if key_file is not None and approver is None:
        raise UsageError("--key-file names an approver's key: give --approver too")
    with registry.write() as (conn, appender):
        ledger = SignedLedger(conn)
        moves = ledger.moves(model)
        if not moves:
            models = list(conn.execute(select(_M.name).order_by(_M.name)).scalars())
            if model not in models:
                raise RegistryError(f"unknown model '{model}' (known: {', '.join(models) or 'none'})")
            raise RegistryError(f"model {model} has no production version to roll back")
        current = moves[-1].predicate["version"]
        if to is None:
            to = _previous_production(moves, model, current)
        row = ledger.version(to)
        if row.model != model:
            raise RegistryError(f"{to} is a version of model {row.model}, not {model}")
        if to == current:
            raise RegistryError(f"{to} is already the production version of {model}")
        if row.status != "ok":
            raise RegistryError(f"cannot roll back to {to}: the candidate errored ({row.error})")
        promotion = next((m for m in reversed(moves) if m.predicate_type in PROMOTIONS and m.predicate.get("version") == to), None)
        if promotion is None:
            raise RegistryError(f"cannot roll back to {to}: it was never promoted (a rollback only restores a version that passed promotion)")
        key = load_approver_key(registry, conn, approver, key_file) if approver is not None else None
        seq, digest = appender.append(
            to,
            row.sha256,
            st.ROLLBACK,
            {
                "version": to,
                "model": model,
                "alias": PRODUCTION,
                "previous_version": current,
                "reason": reason,
                "approver": {"name": approver, "keyid": key.keyid} if key else None,
                "restores": {"seq": promotion.seq, "digest": promotion.digest},
            },
            key=key,
        )
    signer = key.keyid if key else registry.pipeline_key.keyid
    return Decision("rollback", model, to, current, seq, digest, signer, approver)


def production_stack(moves: list[Any]) -> list[str]:
    """A model's production versions as a stack, from its signed promotions and rollbacks in order:
    a promotion pushes, a rollback pops back to its target."""
    stack: list[str] = []
    for move in moves:
        version = move.predicate.get("version")
        if move.predicate_type == st.ROLLBACK and version in stack:
            while stack[-1] != version:
                stack.pop()
        else:
            stack.append(version)
    return stack


def _previous_production(moves: list[Any], model: str, current: str) -> str:
    earlier = [version for version in production_stack(moves)[:-1] if version != current]
    if not earlier:
        raise RegistryError(f"model {model} has no earlier production version to roll back to (production: {current})")
    return earlier[-1]


# -- kept for gatewise.registry.operations: checked reads, now through the signed keyring ---------


def _public_keys(conn: Connection) -> SignedLedger:
    """The ledger's signed key set (an opaque handle for ``_checked_entry``)."""
    return SignedLedger(conn)


def _checked_entry(conn: Connection, seq: int, keys: SignedLedger, entry: Any = None) -> tuple[str, dict[str, Any]]:
    """(predicate type, predicate) of a ledger entry whose digest, position and signer check out, else RegistryError."""
    if entry is None:
        entry = conn.execute(select(_L.seq, _L.digest, _L.keyid, _L.envelope).where(_L.seq == seq)).first()
        if entry is None:
            raise RegistryError(f"ledger entry {seq} is missing; run `gatewise registry verify`")
    checked = keys.check(entry)
    return checked.predicate_type, checked.predicate


# -- verification, in ledger order -----------------------------------------------------------------


class DecisionFacts(NamedTuple):
    """What the in-order checks need from one decision entry (pickled by verify workers)."""

    kind: str  # waiver | promotion | rollback
    version: str
    model: str
    previous: str | None
    approver: tuple[str, str] | None  # (name, keyid); the keyring checks it against the signer
    gates: tuple[tuple[Any, ...], ...]  # waiver: (gate, seq, digest); promotion: (gate, seq, digest, passed, waiver seq, waiver digest)
    restores: tuple[int, str] | None = None  # rollback: the promotion entry of the version it restores
    policy: tuple[Any, Any] | None = None  # promotion: the signed gating policy entry it relied on (seq, digest)


def decision_facts(predicate_type: str, p: dict[str, Any]) -> DecisionFacts:
    approver = p.get("approver")
    approver = (approver["name"], approver["keyid"]) if approver is not None else None
    if predicate_type == st.WAIVER:
        gates = tuple((g["gate"], g["seq"], g["digest"]) for g in p["gates"])
        return DecisionFacts("waiver", p["version"], p["model"], None, approver, gates)
    if predicate_type in (st.PROMOTION, st.PROMOTION_V2):
        # promotion/v1 (older registries) cites passes only: each citation must be a pass.
        v1 = predicate_type == st.PROMOTION
        gates = tuple(
            (g["gate"], g["seq"], g["digest"], True if v1 else g["passed"], (g.get("waiver") or {}).get("seq"), (g.get("waiver") or {}).get("digest"))
            for g in p["gate_results"]
        )
        policy = p.get("policy")
        policy = (policy.get("seq"), policy.get("digest")) if isinstance(policy, dict) else None
        return DecisionFacts("promotion", p["version"], p["model"], p.get("previous_version"), approver, gates, None, policy)
    restores = p["restores"]
    return DecisionFacts("rollback", p["version"], p["model"], p["previous_version"], approver, (), (restores["seq"], restores["digest"]))


_POLICY = "<gating policy>"  # a citation's "gate" when it cites the policy entry


class _Citation(NamedTuple):
    seq: int  # the citing entry
    label: str
    cited: Any  # the cited entry's seq
    digest: Any
    version: str
    gate: str | None  # None: a promotion is cited
    passed: Any


class DecisionChecks:
    """Waivers, approver promotions and rollbacks, checked in order; cited entries are read at the end."""

    def __init__(self) -> None:
        self.waivers: dict[int, tuple[str | None, str, dict[str, tuple[Any, Any]]]] = {}
        self.citations: list[_Citation] = []

    def take(
        self, seq: int, digest: str | None, f: DecisionFacts, versions: dict[str, tuple[str, str]], models: dict[str, dict[str, Any]],
        latest: dict[tuple[str, str], tuple[int, Any, bool]] | None = None,
    ) -> list[str]:
        """Check one decision entry; ``models`` (the replayed production aliases) is updated;
        ``latest`` is the latest result so far of each (version, gate)."""
        problems = []
        label = f"{'promotion' if f.kind == 'promotion' else f.kind} {f.version}"
        if versions.get(f.version) != (f.model, "ok"):
            problems.append(f"names {f.version}, which is not a registered, unerrored version of model {f.model}")
        if f.kind == "waiver":
            if not f.gates:
                problems.append("waives no gate")
            for gate, cited, cited_digest in f.gates:
                self.citations.append(_Citation(seq, label, cited, cited_digest, f.version, gate, False))
            self.waivers[seq] = (digest, f.version, {gate: (cited, cited_digest) for gate, cited, cited_digest in f.gates})
            return problems
        model = models.setdefault(f.model, {"name": f.model, "created_seq": seq, "production_version": None, "production_seq": None})
        current = model["production_version"]
        if f.previous != current:
            problems.append(f"says the previous production version was {f.previous}, the ledger says {current}")
        if f.kind == "promotion":
            problems.extend(self._promotion(seq, label, f))
            from gatewise.registry.verify import stale_citation

            for gate, gate_seq, *_ in f.gates:
                stale = stale_citation((latest or {}).get((f.version, gate)), gate, gate_seq, f.version)
                if stale:
                    problems.append(stale)
        else:
            if f.version == current:
                problems.append(f"rolls back to {f.version}, which is already in production")
            self.citations.append(_Citation(seq, label, f.restores[0], f.restores[1], f.version, None, None))
        model.update(production_version=f.version, production_seq=seq)
        return problems

    def _promotion(self, seq: int, label: str, f: DecisionFacts) -> list[str]:
        problems = []
        if f.policy is not None:
            self.citations.append(_Citation(seq, label, f.policy[0], f.policy[1], f.version, _POLICY, None))
        cited = {g[0] for g in f.gates}
        missing = [gate for gate in MANDATORY_GATES if gate not in cited]
        if missing:
            problems.append(f"relies on no result for {', '.join(missing)}")
        for gate, gate_seq, gate_digest, passed, waiver_seq, waiver_digest in f.gates:
            self.citations.append(_Citation(seq, label, gate_seq, gate_digest, f.version, gate, passed))
            if passed is True:
                if waiver_seq is not None:
                    problems.append(f"cites waiver entry {waiver_seq} for {gate}, which passed")
                continue
            if waiver_seq is None:
                problems.append(f"relies on a failed result of {gate} (entry {gate_seq}) that no waiver covers")
                continue
            waiver = self.waivers.get(waiver_seq)
            if waiver is None or waiver[0] != waiver_digest or waiver[1] != f.version or waiver[2].get(gate) != (gate_seq, gate_digest):
                problems.append(f"cites entry {waiver_seq} as a waiver of {gate} (entry {gate_seq}) for {f.version}, which it is not")
        return problems

    def finish(self, conn: Any) -> list[tuple[int, str, str]]:
        """Check every cited entry against the ledger; returns (seq, label, what) for each problem.

        ``conn`` is a Connection, or verify's reader from seqs to (seq, envelope) pairs (an audit
        bundle has no database)."""
        found: list[tuple[int, str, str]] = []
        wanted = sorted({c.cited for c in self.citations if isinstance(c.cited, int) and not isinstance(c.cited, bool)})
        statements: dict[int, tuple[str, str, dict[str, Any]]] = {}
        for start in range(0, len(wanted), 500):
            seqs = wanted[start:start + 500]
            rows = conn(seqs) if callable(conn) else conn.execute(select(_L.seq, _L.envelope).where(_L.seq.in_(seqs)))
            for row_seq, envelope in rows:
                try:
                    body, _, _ = st.open_envelope(envelope)
                    stmt = json.loads(body)
                    predicate = stmt["predicate"] if isinstance(stmt["predicate"], dict) else {}
                    statements[int(row_seq)] = (st.sha256_hex(body), stmt["predicateType"], predicate)
                except (st.EnvelopeError, ValueError, KeyError, TypeError):
                    continue
        for c in self.citations:
            digest, ptype, predicate = statements.get(c.cited, (None, None, {})) if isinstance(c.cited, int) else (None, None, {})
            ok = digest == c.digest and isinstance(c.cited, int) and c.cited < c.seq and predicate.get("version") == c.version
            if c.gate == _POLICY:
                if not (digest == c.digest and isinstance(c.cited, int) and c.cited < c.seq and ptype == st.POLICY):
                    found.append((c.seq, c.label, f"relies on entry {c.cited} as its gating policy, which is not an earlier signed policy entry"))
                continue
            if c.gate is None:
                if not (ok and ptype in (st.PROMOTION, st.PROMOTION_V2)):
                    found.append((c.seq, c.label, f"restores {c.version} citing entry {c.cited}, which is not an earlier promotion of {c.version}"))
                continue
            if not (ok and ptype == st.GATE_RESULT and predicate.get("gate") == c.gate and predicate.get("passed") is c.passed):
                verdict = "pass" if c.passed is True else "failure"
                found.append((c.seq, c.label, f"relies on entry {c.cited} as a {verdict} of {c.gate} for {c.version}, which it is not"))
        return found
