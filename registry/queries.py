"""The auditor's read-only queries: gate results filtered by model, gate, verdict and time; a
version's full lineage; CSV export. The CLI (`gatewise registry gates | show`) calls these.

Every listing is newest first and bounded (``limit``, default 1,000 rows), so a query on a
registry with millions of gate results builds at most ``limit`` objects; ``limit=None`` streams
every matching row instead. Each filter combination is served by one index of ``gate_results``
that ends in (``created_at``, ``entry_seq``), so the database walks the index backwards and stops
after ``limit`` rows (see docs/registry.md, "Queries").
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, Select, select, text, union_all

from gatewise.errors import RegistryError, UsageError
from gatewise.registry.schema import GateResultRow, ModelRow, PromotionRow, WaiverRow
from gatewise.registry import statements as st
from gatewise.registry.signed import SignedLedger, measured
from gatewise.registry.statements import MANDATORY_GATES

if TYPE_CHECKING:
    from gatewise.registry.registry import Registry

DEFAULT_LIMIT = 1000

# The documented column set of `gatewise registry gates --csv` (docs/registry.md).
CSV_COLUMNS = (
    "seq",  # ledger entry of the verdict
    "time",  # when it was recorded, ISO-8601 UTC
    "model",
    "version",  # empty for a data-gate rejection (kind "data")
    "run_id",
    "kind",  # "candidate" or "data"
    "gate",
    "passed",  # "true" or "false"
    "value",  # empty when not measured
    "threshold",
    "policy_digest",
    "entry_digest",  # sha256 of the signed statement: look it up with `registry verify`
    "summary",
    "waiver",  # a failed verdict an approver waived: "entry N by NAME"; empty otherwise
)

_G = GateResultRow.__table__.c
_M = ModelRow.__table__.c
_P = PromotionRow.__table__.c
_W = WaiverRow.__table__.c

# The listed columns, in GateRecord's field order (a row becomes a record with GateRecord._make).
_LISTED = (
    _G.entry_seq, _G.created_at, _G.model, _G.version, _G.run_id, _G.kind, _G.gate, _G.passed,
    _G.value, _G.threshold, _G.policy_digest, _G.entry_digest, _G.summary,
)  # fmt: skip


class GateRecord(NamedTuple):
    """One signed gate verdict as the listing shows it (details and evidence: `registry show`).

    A NamedTuple rather than a frozen dataclass: a listing builds a thousand of them per query,
    and a tuple is built straight from the database row (its fields are the listed columns).
    """

    seq: int  # ledger entry of the verdict
    time: str  # ISO-8601 UTC, as signed
    model: str
    version: str | None  # None for a data-gate rejection
    run_id: str
    kind: str  # "candidate" or "data"
    gate: str
    passed: bool
    value: float | None
    threshold: float | None
    policy_digest: str | None
    entry_digest: str
    summary: str
    waiver: str | None = None  # "entry N by NAME" when a signed waiver overrides this failed verdict

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    def csv_row(self) -> list[str]:
        return [_csv_cell(getattr(self, column)) for column in CSV_COLUMNS]


@dataclass(frozen=True)
class GateFilter:
    """Which gate results to list. ``None`` means "any"; times are inclusive/exclusive bounds."""

    model: str | None = None
    gate: str | None = None
    passed: bool | None = None  # False: only failures
    since: datetime | None = None  # recorded at or after
    until: datetime | None = None  # recorded before


@dataclass(frozen=True)
class GatePage:
    """The newest ``limit`` matching results; ``truncated`` when more matched."""

    records: list[GateRecord]
    truncated: bool
    limit: int | None


@dataclass(frozen=True)
class Lineage:
    """Where a version came from: run, settings and policy digests, data, plugin, ancestors."""

    version: str
    model: str
    run_id: str
    candidate: str
    plugin: dict[str, str]  # the signed plugin record: name, version, distribution, code_sha256, and (newer entries) provenance
    parent: str | None  # the parent's version name
    ancestors: list[str]  # parent, grandparent, ... up to the version no one derived it from
    settings_digest: str | None  # None if the run was never recorded
    settings: dict[str, Any] | None
    policy_digests: list[str]  # from the signed gate results (one, unless re-gated under another policy)
    data: dict[str, str]  # row-hash fingerprints recorded with the run (dataset, train, test, current)
    gated_data: list[dict[str, str]]  # the data fingerprints each gate verdict names, when they differ from the run's
    champion_versions: list[str]  # champions its gates compared it with
    run_plugins: list[dict[str, Any]]  # every plugin the run recorded
    run_entry: dict[str, Any] | None  # {seq, digest} of the run statement
    candidate_entry: dict[str, Any]  # {seq, digest} of the candidate statement

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- parsing user input -------------------------------------------------------------------------


def parse_when(value: str, option: str = "--since") -> datetime:
    """A date or ISO-8601 time given by a user, as an aware UTC datetime (naive means UTC).

    ``2026-11-20`` is midnight UTC of that day. Anything else unreadable is a UsageError.
    """
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"bad date '{value}' for {option}: use YYYY-MM-DD or an ISO-8601 time such as 2026-11-20T10:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def stored_time(when: datetime) -> str:
    """A datetime in the registry's text form, so that text comparison is time comparison."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- gate results -------------------------------------------------------------------------------


def gate_query(where: GateFilter, limit: int | None) -> Select:
    """The SQL behind ``gate_results``; exposed so that bench/ can time it on a bare connection.

    With a verdict filter (or no limit) it is one walk down one index. With no verdict filter and
    a limit, the passes and the failures are two walks of ``limit`` keys each down the same
    index, read from the index alone; the newest ``limit`` of those keys are merged and only their
    rows are fetched (SQLite cannot merge an ``IN`` on a middle index column into one ordered walk,
    and fetching whole rows for both branches cost about twice as much).
    """
    conditions = []
    if where.model is not None:
        conditions.append(_G.model == where.model)
    if where.gate is not None:
        conditions.append(_G.gate == where.gate)
    if where.since is not None:
        conditions.append(_G.created_at >= stored_time(where.since))
    if where.until is not None:
        conditions.append(_G.created_at < stored_time(where.until))
    newest_first = (_G.created_at.desc(), _G.entry_seq.desc())

    if where.passed is not None or limit is None:
        query = select(*_LISTED).where(*conditions).order_by(*newest_first)
        if where.passed is not None:
            query = query.where(_G.passed == where.passed)
        return query if limit is None else query.limit(limit)

    def keys(passed: bool) -> Select:
        return select(_G.entry_seq, _G.created_at).where(*conditions, _G.passed == passed).order_by(*newest_first).limit(limit)

    both = union_all(select(keys(True).subquery()), select(keys(False).subquery())).subquery()
    chosen = select(both.c.entry_seq).order_by(both.c.created_at.desc(), both.c.entry_seq.desc()).limit(limit)
    return select(*_LISTED).where(_G.entry_seq.in_(chosen)).order_by(*newest_first)


def gate_results(registry: Registry, where: GateFilter = GateFilter(), limit: int | None = DEFAULT_LIMIT) -> GatePage:
    """The newest ``limit`` gate results matching ``where`` (all of them with ``limit=None``).

    An unknown model or gate name is a UsageError naming the known ones; a gate that is known
    (a mandatory gate, or one with results) but has no matching rows gives an empty page.
    """
    if limit is not None and limit < 1:
        raise UsageError(f"bad limit {limit}: give a positive number of rows")
    with registry.reading() as conn:
        _check_names(conn, where)
        rows = list(conn.execute(gate_query(where, None if limit is None else limit + 1)))
        records = _with_waivers(conn, [GateRecord(*row) for row in rows[:limit]])
        _check_signed(conn, records)
    return GatePage(records, truncated=limit is not None and len(rows) > limit, limit=limit)


def _check_signed(conn: Connection, records: list[GateRecord]) -> None:
    """Each listed row must be what its signed entry says, else RegistryError: a listing never
    shows an edited or unbacked row (a row edited to drop out of a filter is `registry verify`'s)."""
    entries = SignedLedger(conn).entries(r.seq for r in records)
    for r in records:
        entry = entries.get(r.seq)
        p = entry.predicate if entry is not None and entry.predicate_type in (st.GATE_RESULT, st.DATA_REJECTED) else None
        differs = "no signed gate result" if p is None else next((
            name for name, signed in (
                ("version", p.get("version") if entry.predicate_type == st.GATE_RESULT else None), ("gate", p.get("gate")),
                ("passed", p.get("passed")), ("value", measured(p.get("value"))), ("threshold", measured(p.get("threshold"))),
                ("summary", p.get("summary")), ("model", p.get("model")), ("run_id", p.get("run_id")), ("time", entry.time),
                ("entry_digest", entry.digest),
            ) if getattr(r, name) != signed or (name == "passed" and bool(r.passed) is not signed)), None)
        if differs:
            raise RegistryError(f"gate_results row entry_seq={r.seq} ({r.version or r.run_id} {r.gate}) does not match its "
                                f"signed entry ({differs}): run `gatewise registry verify`")



def _with_waivers(conn: Connection, records: list[GateRecord]) -> list[GateRecord]:
    """The records, each failed one with the signed waiver that overrides it (if any) named."""
    failed = {r.version for r in records if not r.passed and r.version}
    if not failed:
        return records
    rows = conn.execute(select(_W.entry_seq).where(_W.version.in_(sorted(failed))))
    waived: dict[int, str] = {}
    for entry in SignedLedger(conn).entries(row.entry_seq for row in rows).values():
        if entry.predicate_type != st.WAIVER:
            continue
        name = (entry.predicate.get("approver") or {}).get("name")
        for gate in entry.predicate.get("gates") or []:
            waived.setdefault(gate.get("seq"), f"entry {entry.seq} by {name}")
    return [r._replace(waiver=waived.get(r.seq)) if not r.passed else r for r in records]


def iter_gate_results(registry: Registry, where: GateFilter = GateFilter()) -> Iterator[GateRecord]:
    """Every matching gate result, newest first, streamed (for an export of any size).

    Names are checked before the first row is yielded, so a bad filter fails before anything
    is written.
    """
    with registry.reading() as conn, registry.reading() as checking:
        _check_names(conn, where)
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(gate_query(where, None))
        while batch := [GateRecord(*row) for row in result.fetchmany(500)]:
            batch = _with_waivers(checking, batch)
            _check_signed(checking, batch)  # each row against its signed entry, as a page is
            yield from batch


def check_filter(registry: Registry, where: GateFilter) -> None:
    """Raise UsageError if ``where`` names an unknown model or gate."""
    with registry.reading() as conn:
        _check_names(conn, where)


def known_gates(registry: Registry) -> list[str]:
    """The mandatory gates and every gate name with at least one recorded result, sorted."""
    with registry.reading() as conn:
        return _known_gates(conn)


def write_csv(records: Iterator[GateRecord] | list[GateRecord], handle: IO[str]) -> int:
    """Write ``CSV_COLUMNS`` and one line per record; returns the number of records."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        writer.writerow(record.csv_row())
        count += 1
    return count


# -- one version --------------------------------------------------------------------------------


def lineage(registry: Registry, version: str) -> Lineage:
    """Everything the ledger says a version came from (unknown version: RegistryError)."""
    with registry.reading() as conn:
        ledger = SignedLedger(conn)
        row = ledger.version(version)
        signed_plugin = dict(ledger.candidate(version).predicate.get("plugin") or {})  # type: ignore[union-attr]
        runs = ledger.about(row.run_id, (st.RUN,))
        run = runs[-1].predicate if runs else None
        evidence = [g.predicate.get("evidence") or {} for g in ledger.about(version, (st.GATE_RESULT,))]
        ancestors = _ancestors(ledger, row.parent_version)
        run_entry = {"seq": runs[-1].seq, "digest": runs[-1].digest} if runs else None
    run_data = run.get("data") or {} if run else {}
    policies = sorted({e["policy_digest"] for e in evidence if isinstance(e.get("policy_digest"), str)})
    champions = sorted({e["champion_version"] for e in evidence if isinstance(e.get("champion_version"), str)})
    gated: list[dict[str, str]] = []
    for e in evidence:
        data = e.get("data")
        if isinstance(data, dict) and data != run_data and data not in gated:
            gated.append(data)
    return Lineage(
        version=version,
        model=row.model,
        run_id=row.run_id,
        candidate=row.candidate,
        plugin=signed_plugin,  # the whole signed record: name, version, distribution, code and provenance
        parent=row.parent_version,
        ancestors=ancestors,
        settings_digest=run.get("settings_digest") if run else None,
        settings=run.get("settings") if run else None,
        policy_digests=policies,
        data=run_data,
        gated_data=gated,
        champion_versions=champions,
        run_plugins=run.get("plugins") or [] if run else [],
        run_entry=run_entry,
        candidate_entry={"seq": row.entry_seq, "digest": row.entry_digest},
    )


def show(registry: Registry, version: str) -> dict[str, Any]:
    """``Registry.show(version)`` with its ``lineage`` added: what `gatewise registry show` prints."""
    shown = registry.show(version)
    shown["lineage"] = lineage(registry, version).to_dict()
    shown["plugin"] = shown["lineage"]["plugin"]  # the whole signed record, provenance included
    shown.update(story(registry, version, shown["model"]))
    by_seq = {p["promotion"]["seq"]: p for p in shown["decisions"] if p["event"] == "promotion"}
    for promotion in shown["promotions"]:
        decided = by_seq.get(promotion["entry"]["seq"], {})
        promotion.update(approver=decided.get("approver"), policy=decided.get("policy"), waivers=decided.get("waivers", []))
    return shown


def story(registry: Registry, version: str, model: str) -> dict[str, Any]:
    """The whole story of ``version`` from the signed moves of its model: each promotion, rollback
    and waiver of it (approver, reason, the policy relied on) and when it was in production
    (``in_production``: [{from, until, by, ended_by}], until None while it is live)."""
    from gatewise.registry.history import cited_policies

    with registry.reading() as conn:
        ledger = SignedLedger(conn)
        moves = ledger.moves(model)
        waivers = [w for w in ledger.about(version, (st.WAIVER,)) if w.predicate.get("version") == version]
        policies = cited_policies(ledger, moves)
    periods: list[dict[str, Any]] = []
    for move in moves:
        live = periods and periods[-1]["until"] is None
        if move.predicate.get("version") == version and not live:
            periods.append({"from": move.time, "until": None, "by": _short_move(move), "ended_by": None})
        elif move.predicate.get("version") != version and live:
            periods[-1].update(until=move.time, ended_by=_short_move(move))
    decisions = []
    for move in moves:
        p = move.predicate
        if p.get("version") != version:
            continue
        kind = "rollback" if move.predicate_type == st.ROLLBACK else "promotion"
        decisions.append({
            "event": kind, "time": move.time, "promotion": {"seq": move.seq, "digest": move.digest},
            "approver": (p.get("approver") or {}).get("name"), "reason": p.get("reason"),
            "previous_version": p.get("previous_version"),
            "policy": policies.get((p.get("policy") or {}).get("seq")) if p.get("policy") else None,
            "waivers": [w.get("seq") for w in p.get("waivers") or [] if isinstance(w, dict)],
        })
    for w in waivers:
        p = w.predicate
        decisions.append({
            "event": "waiver", "time": w.time, "promotion": {"seq": w.seq, "digest": w.digest},
            "approver": (p.get("approver") or {}).get("name"), "reason": p.get("reason"),
            "gates": [g.get("gate") for g in p.get("gates") or []],
        })
    decisions.sort(key=lambda d: d["promotion"]["seq"])
    return {"decisions": decisions, "in_production": periods}


def _short_move(move: Any) -> dict[str, Any]:
    kind = "rollback" if move.predicate_type == st.ROLLBACK else "promotion"
    return {"event": kind, "seq": move.seq, "version": move.predicate.get("version")}


def promotions_of(registry: Registry, model: str, limit: int | None = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """A model's promotions, newest first (the projection behind a promotion history)."""
    query = select(PromotionRow.__table__).where(_P.model == model).order_by(_P.entry_seq.desc())
    if limit is not None:
        query = query.limit(limit)
    with registry.reading() as conn:
        return [
            {
                "seq": p.entry_seq,
                "time": p.created_at,
                "version": p.version,
                "previous_version": p.previous_version,
                "reason": p.reason,
                "gate_results": json.loads(p.gate_entries),
                "entry_digest": p.entry_digest,
            }
            for p in conn.execute(query)
        ]


# -- helpers ------------------------------------------------------------------------------------


def _check_names(conn: Connection, where: GateFilter) -> None:
    if where.model is not None and conn.execute(select(_M.name).where(_M.name == where.model)).first() is None:
        known = list(conn.execute(select(_M.name).order_by(_M.name).limit(11)).scalars())
        raise UsageError(f"unknown model '{where.model}' (known: {_names(known)})")
    if where.gate is not None and where.gate not in MANDATORY_GATES:
        if conn.execute(select(_G.entry_seq).where(_G.gate == where.gate).limit(1)).first() is None:
            raise UsageError(f"unknown gate '{where.gate}' (known: {_names(_known_gates(conn))})")


def _known_gates(conn: Connection) -> list[str]:
    # A skip scan over the gate index: one index probe per distinct name, not one per row.
    skip_scan = text(
        "WITH RECURSIVE g(name) AS ("
        " SELECT MIN(gate) FROM gate_results"
        " UNION ALL"
        " SELECT (SELECT MIN(gate) FROM gate_results WHERE gate > g.name) FROM g WHERE g.name IS NOT NULL"
        ") SELECT name FROM g WHERE name IS NOT NULL"
    )
    return sorted({*MANDATORY_GATES, *conn.execute(skip_scan).scalars()})


def _ancestors(ledger: SignedLedger, parent: str | None) -> list[str]:
    chain: list[str] = []
    while parent is not None and parent not in chain:
        chain.append(parent)
        entry = ledger.candidate(parent)
        parent = (entry.predicate.get("parent") or {}).get("version") if entry is not None else None
    return chain


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _names(names: list[str]) -> str:
    if not names:
        return "none"
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


# -- waivers ------------------------------------------------------------------------------------

WAIVER_COLUMNS = ("seq", "time", "model", "version", "gates", "approver", "approver_keyid", "reason", "entry_digest", "promoted_by")


@dataclass(frozen=True)
class WaiverRecord:
    """One signed waiver: which failed results of which version an approver overrode, and why."""

    seq: int
    time: str
    model: str
    version: str
    gates: list[dict[str, Any]]  # {gate, seq, digest} of each failed result overridden
    approver: str
    approver_keyid: str
    reason: str
    entry_digest: str
    promoted_by: list[int]  # the promotion entries that rely on it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def csv_row(self) -> list[str]:
        values = self.to_dict()
        values["gates"] = " ".join(f"{g.get('gate')}@{g.get('seq')}" for g in self.gates)
        values["promoted_by"] = " ".join(map(str, self.promoted_by))
        return [_csv_cell(values[column]) for column in WAIVER_COLUMNS]


def waivers(registry: Registry, model: str | None = None, approver: str | None = None,
            since: datetime | None = None, until: datetime | None = None) -> list[WaiverRecord]:
    """Every signed waiver across all models, oldest first, filtered; each read from its signed entry
    (the waivers table only finds them). An unknown model or approver is a UsageError naming the known ones."""
    with registry.reading() as conn:
        ledger = SignedLedger(conn)
        if model is not None:
            models = list(conn.execute(select(_M.name).order_by(_M.name)).scalars())
            if model not in models:
                raise UsageError(f"unknown model '{model}' (known: {_names(models)})")
        if approver is not None:
            approvers = sorted({k.name for k in ledger.keyring.keys.values() if k.role == "approver" and k.name})
            if approver not in approvers:
                raise UsageError(f"unknown approver '{approver}' (approvers with keys: {_names(approvers)})")
        query = select(_W.entry_seq).order_by(_W.entry_seq)
        if model is not None:
            query = query.where(_W.model == model)
        entries = ledger.entries(conn.execute(query).scalars())
        moves = [e for m in sorted({e.predicate.get("model") for e in entries.values()} - {None}) for e in ledger.moves(m)]
    relied: dict[int, list[int]] = {}
    for move in moves:
        for w in move.predicate.get("waivers") or []:
            if isinstance(w, dict):
                relied.setdefault(w.get("seq"), []).append(move.seq)
    found = []
    for seq, entry in sorted(entries.items()):
        p = entry.predicate
        who = p.get("approver") or {}
        if entry.predicate_type != st.WAIVER or (model is not None and p.get("model") != model):
            continue
        if (approver is not None and who.get("name") != approver) or (since is not None and entry.time < stored_time(since)) \
                or (until is not None and entry.time >= stored_time(until)):
            continue
        found.append(WaiverRecord(seq, entry.time, p.get("model"), p.get("version"), [g for g in p.get("gates") or [] if isinstance(g, dict)],
                                  who.get("name"), who.get("keyid"), p.get("reason"), entry.digest, sorted(relied.get(seq, []))))
    return found


def write_waivers_csv(records: list[WaiverRecord], handle: IO[str]) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(WAIVER_COLUMNS)
    for record in records:
        writer.writerow(record.csv_row())
    return len(records)
