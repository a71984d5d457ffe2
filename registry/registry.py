"""The registry's Python API: record runs, candidates, gate verdicts and promotions; query; verify.

Every write is one signed ledger entry (or several in one transaction) plus its projection rows.
The registry stores, signs and verifies statements; it never judges a model itself, except that
``promote`` refuses a version without a signed pass from each of the five mandatory gates.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlmodel import SQLModel

from gatewise.errors import RegistryError, UsageError
from gatewise.registry import statements as st
from gatewise.registry.statements import MANDATORY_GATES
from gatewise.registry.artifacts import artifact_file, store_artifact
from gatewise.registry.database import (
    db_errors,
    display_url,
    has_ledger,
    make_engine,
    resolve_url,
    sqlite_path,
    write_transaction,
)
from gatewise.registry.keyring import ensure_key
from gatewise.registry.keys import SigningKey, load_or_create_key
from gatewise.registry.ledger import LedgerWriter, parse_time
from gatewise.registry.receipt import record_head
from gatewise.registry.signed import PROMOTIONS, SignedLedger, VersionRecord, measured, version_record
from gatewise.registry.schema import (
    ENTRY_TABLES,
    LedgerEntry,
    ModelRow,
    RunRow,
    VersionRow,
    create_missing_indexes,
)
from gatewise.registry.verify import VerifyReport
from gatewise.types import Candidate, GateResult

PRODUCTION = "production"

_V = VersionRow.__table__.c
_M = ModelRow.__table__.c
_L = LedgerEntry.__table__.c
_R = RunRow.__table__.c


@dataclass(frozen=True)
class VersionInfo:
    """One registered candidate version, as queries return it."""

    version: str  # "<model>:v<number>"
    model: str
    number: int
    sha256: str | None  # None for an errored candidate
    status: str  # "ok" or "errored"
    plugin: str
    parent: str | None  # the parent's version name, when the parent was registered
    created: datetime
    promoted: bool  # has ever been promoted
    artifact: Path | None
    production: bool = False  # is the model's production version now
    run_id: str = ""
    candidate: str = ""
    error: str | None = None


def _sha256_text(text: str) -> str:
    return st.sha256_hex(text.encode("utf-8"))


def _hex64(text: str | None) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class Registry:
    """Open with ``Registry.open(home)``; close with ``close()`` (or use it as a context manager)."""

    def __init__(self, home: Path, url: str, engine: Engine, key: SigningKey | None) -> None:
        self.home = Path(home)
        self.url = url
        self._engine = engine
        self._key = key

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, home: Path, url: str | None = None, *, create: bool = True, operator: str | None = None) -> Registry:
        """Open the registry; with ``create`` (the default) make its tables and key on first use.

        ``create=False`` opens an existing registry for reading only: no file, table or key is
        made, and a missing registry is a RegistryError. ``operator`` names the holder of the
        pipeline key when this open introduces it (entry 1); "pipeline" when not given.
        """
        home = Path(home)
        url = resolve_url(home, url)
        where = display_url(url)
        db_file = sqlite_path(url)
        if not create and db_file is not None and not db_file.exists():
            raise RegistryError(f"no registry at {db_file}: run `gatewise run` first")
        if create and db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(url, writable=create)
        try:
            with db_errors(url):
                if not create:
                    if not has_ledger(engine):
                        raise RegistryError(f"no registry at {where}: run `gatewise run` first")
                    return cls(home, url, engine, None)
                # Under the write lock, so that processes starting together do not race.
                with write_transaction(engine) as conn:
                    SQLModel.metadata.create_all(conn, tables=_tables())
                    create_missing_indexes(conn, _tables())
            key = load_or_create_key(home)
            registry = cls(home, url, engine, key)
            registry._introduce_key(operator)
            return registry
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _introduce_key(self, operator: str | None = None) -> None:
        """The first entry of a ledger introduces the pipeline key; later opens must hold it."""
        key = self.pipeline_key
        with db_errors(self.url), write_transaction(self._engine) as conn:
            keys: list[str] = []
            if conn.execute(select(_L.seq).limit(1)).first() is not None:
                keys = list(SignedLedger(conn).keyring.keys)
                if key.keyid in keys:
                    ensure_key(conn, key)  # a rotated or revoked key signs nothing more
                    return
                raise RegistryError(
                    f"the signing key {key.path} (keyid {key.keyid[:16]}) is not a key of the registry at "
                    f"{display_url(self.url)} (its keys: {', '.join(k[:16] for k in keys) or 'none'}): "
                    "restore the original key file or use the registry it belongs to"
                )
            appender = LedgerWriter(conn, key)
            appender.append(
                f"key:{key.keyid}",
                key.keyid,
                st.KEY_V2,  # the one key statement of new entries (key/v1 is still read)
                {
                    "keyid": key.keyid,
                    "algorithm": "ed25519",
                    "public_key": _b64(key.public_key),
                    "role": "pipeline",
                    "name": operator or "pipeline",
                    "introduced_by": key.keyid,
                },
            )
            appender.flush()
        record_head(self.home, key, (0, st.GENESIS_PREV), (appender.seq, appender.prev), self._engine)

    @property
    def pipeline_key(self) -> SigningKey:
        """The pipeline's signing key of this process (its ``repr`` never shows the private key)."""
        if self._key is None:
            raise RegistryError("this registry was opened read-only")
        return self._key

    @contextmanager
    def write(self) -> Iterator[tuple[Connection, LedgerWriter]]:
        """The one write path: a locked write transaction yielding ``(conn, writer)``.

        ``writer.append(subject_name, subject_sha256, predicate_type, predicate)`` signs with the
        pipeline key (``writer.key``); the head receipt is re-signed after commit. The pipeline,
        the human decisions, the keyring and the operations' entries all append through it.
        Driver errors become one RegistryError line.
        """
        key = self.pipeline_key
        with db_errors(self.url), write_transaction(self._engine) as conn:
            ensure_key(conn, key)  # under the lock: a key rotated or revoked meanwhile signs nothing
            writer = LedgerWriter(conn, key)
            start = (writer.seq, writer.prev)
            yield conn, writer
            writer.flush()
        record_head(self.home, key, start, (writer.seq, writer.prev), self._engine)  # signed head receipt, after commit

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read connection; driver errors become one RegistryError line."""
        with db_errors(self.url), self._engine.connect() as conn:
            yield conn

    # -- writes ----------------------------------------------------------------------------

    def record_run(
        self,
        run_id: str,
        model: str,
        settings: dict[str, Any],
        settings_digest: str,
        data: dict[str, str],
        plugins: list[dict[str, Any]],
        trigger: dict[str, Any] | None = None,
    ) -> str:
        """Record the start of a run: its settings, data fingerprints, plugins and what started it
        (``trigger``: a deployment, a schedule or a monitoring entry; None for a run by hand).
        Returns the entry digest."""
        subject = settings_digest if _hex64(settings_digest) else _sha256_text(str(settings_digest))
        with self.write() as (conn, appender):
            if conn.execute(select(_R.run_id).where(_R.run_id == run_id)).first():
                raise RegistryError(f"run '{run_id}' is already recorded")
            _, digest = appender.append(
                f"run:{run_id}",
                subject,
                st.RUN,
                {
                    "run_id": run_id,
                    "model": model,
                    "settings": settings,
                    "settings_digest": settings_digest,
                    "data": data,
                    "plugins": plugins,
                    "trigger": trigger,
                },
            )
        return digest

    def record_data_rejection(self, run_id: str, model: str, result: GateResult) -> str:
        """Record that a data gate rejected a run's data (nothing was trained). Returns the entry digest."""
        with self.write() as (conn, appender):
            run = conn.execute(select(_R.data).where(_R.run_id == run_id)).first()
            data = json.loads(run.data) if run else {}
            dataset = data.get("dataset")
            subject = dataset if _hex64(dataset) else _sha256_text(f"run:{run_id}")
            _, digest = appender.append(
                f"run:{run_id}/data",
                subject,
                st.DATA_REJECTED,
                {"run_id": run_id, "model": model, **_gate_fields(result), "evidence": {"data": data}},
            )
        return digest

    def record_outcome(self, run_id: str, outcome: str, *, promoted: str | None = None,
                       skipped: Iterable[Candidate] = (), error: str | None = None) -> str:
        """Sign how the run ended (one of ``st.RUN_OUTCOMES``), once, citing its run entry: the
        version it promoted, each compressor entry skipped with its reason, and for a failed run
        what stopped it. Returns the entry digest."""
        if outcome not in st.RUN_OUTCOMES:
            raise UsageError(f"unknown run outcome '{outcome}' (known: {', '.join(st.RUN_OUTCOMES)})")
        with self.write() as (conn, appender):
            ledger = SignedLedger(conn)
            run = next((e for e in ledger.about(run_id, (st.RUN,)) if e.predicate.get("run_id") == run_id), None)
            if run is None:
                raise RegistryError(f"run '{run_id}' has no signed run entry: its outcome cannot be recorded")
            if ledger.about(run_id, (st.RUN_OUTCOME,)):
                raise RegistryError(f"run '{run_id}' already has a signed outcome")
            _, digest = appender.append(f"run:{run_id}/outcome", run.digest, st.RUN_OUTCOME, {
                "run_id": run_id,
                "model": run.predicate["model"],
                "run": {"seq": run.seq, "digest": run.digest},
                "outcome": outcome,
                "promoted": promoted,
                "skipped": [{"candidate": c.name, "reason": c.error, "plugin": c.plugin.record()} for c in skipped],
                "error": error,
            })
        return digest

    def register_candidate(self, run_id: str, model: str, candidate: Candidate) -> str:
        """Register a candidate as the model's next version ("<model>:v<N>"); returns that name.

        An ``ok`` candidate's ONNX bytes are copied into the artifact store after their sha256
        is checked against ``candidate.sha256``; an errored one is recorded with its error.
        """
        artifact: dict[str, Any] | None = None
        if candidate.status == "ok":
            if candidate.onnx_path is None or not candidate.sha256:
                raise UsageError(f"candidate '{candidate.name}' has status ok but no ONNX file or sha256")
            sha, size = store_artifact(self.home, Path(candidate.onnx_path), candidate.sha256)
            artifact = {"sha256": sha, "size_bytes": size}
        elif candidate.status != "errored":
            raise UsageError(f"candidate '{candidate.name}' has unknown status '{candidate.status}'")
        error = None if candidate.status == "ok" else (candidate.error or "errored without a message")
        plugin = candidate.plugin
        with self.write() as (conn, appender):
            ledger = SignedLedger(conn)
            last = ledger.newest_candidate(model)  # the numbering follows the signed entries
            number = int(last.predicate["number"]) + 1 if last is not None else 1
            version = f"{model}:v{number}"
            parent = None
            if candidate.parent:
                # The table finds the parent's version; its signed entry must say it is that candidate.
                names = conn.execute(
                    select(_V.name).where(_V.run_id == run_id, _V.candidate == candidate.parent).order_by(_V.entry_seq.desc())
                ).scalars()
                signed = (ledger.candidate(name) for name in names)
                parent_version = next((e.predicate["version"] for e in signed if e is not None and e.predicate.get("run_id") == run_id
                                       and e.predicate.get("candidate") == candidate.parent), None)
                parent = {"candidate": candidate.parent, "version": parent_version}
            subject = artifact["sha256"] if artifact else _sha256_text(error or "")
            appender.append(
                version,
                subject,
                st.CANDIDATE,
                {
                    "version": version,
                    "model": model,
                    "number": number,
                    "run_id": run_id,
                    "candidate": candidate.name,
                    "status": candidate.status,
                    "artifact": artifact,
                    "error": error,
                    "plugin": plugin.record(),
                    "parent": parent,
                },
            )
        return version

    def record_gate_results(self, version: str, results: Iterable[GateResult], evidence: dict[str, Any]) -> list[str]:
        """Sign one entry per gate verdict on ``version``; returns their entry digests, in order.

        ``evidence`` ({"policy_digest", "data", "champion_version"}) is recorded with each one.
        """
        results = list(results)
        digests = []
        with self.write() as (conn, appender):
            row = self._version_row(conn, version)
            subject = row.subject
            for result in results:
                _, digest = appender.append(
                    version,
                    subject,
                    st.GATE_RESULT,
                    {
                        "version": version,
                        "model": row.model,
                        "run_id": row.run_id,
                        **_gate_fields(result),
                        "evidence": evidence,
                    },
                )
                digests.append(digest)
        return digests

    def promote(self, version: str, reason: str = "all mandatory gates passed") -> str:
        """Move the model's production alias to ``version``, signed by the pipeline key; returns
        the promotion entry digest (gatewise.registry.decisions.promote, without an approver).

        Refused unless the version has an artifact and the latest signed result of each mandatory
        gate, read and checked from the ledger, is a pass. The promotion cites those entries.
        """
        from gatewise.registry.decisions import promote

        return promote(self, version, reason=reason).digest

    # -- keys and human decisions (gatewise.registry.keyring, .decisions, .history) ---------

    def keys(self) -> list[Any]:
        """Every key the ledger introduced, with role, name and status (``KeyState``s)."""
        from gatewise.registry.keyring import list_keys

        return list_keys(self)

    def introduce_approver(self, name: str, key_file: Path | None = None) -> Any:
        """Create an approver's personal key (or read ``key_file``) and introduce it, signed by the pipeline key."""
        from gatewise.registry.keyring import introduce_approver

        return introduce_approver(self, name, key_file)

    def rotate_key(self, approver: str | None = None, key_file: Path | None = None, reason: str | None = None) -> Any:
        """Replace the pipeline key, or an approver's key; the old key signs nothing after it."""
        from gatewise.registry.keyring import rotate_key

        old, new, seq, key = rotate_key(self, approver, key_file, reason)
        if approver is None:
            self._key = key  # this process signs on with the new pipeline key
        return old, new, seq

    def revoke_key(self, keyid: str | None = None, *, approver: str | None = None, reason: str) -> Any:
        """Revoke a key (by id or unique prefix, or an approver's active key)."""
        from gatewise.registry.keyring import revoke_key

        return revoke_key(self, keyid, approver, reason)

    def approve_promotion(self, version: str, *, approver: str, reason: str, waive: Iterable[str] = (), key_file: Path | None = None) -> Any:
        """Promote on an approver's own signature, waiving failed gates (see gatewise.registry.decisions)."""
        from gatewise.registry.decisions import promote

        return promote(self, version, approver=approver, reason=reason, waive=waive, key_file=key_file)

    def rollback(self, model: str, *, reason: str, to: str | None = None, approver: str | None = None, key_file: Path | None = None) -> Any:
        """Move the production alias back to an earlier promoted version (default: the previous one)."""
        from gatewise.registry.decisions import rollback

        return rollback(self, model, reason=reason, to=to, approver=approver, key_file=key_file)

    def history(self, model: str, limit: int = 100) -> dict[str, Any]:
        """The newest ``limit`` (0: all) promotions, rollbacks and waivers of ``model``, with signers
        and the gate results relied on."""
        from gatewise.registry.history import model_history

        return model_history(self, model, limit)

    # -- queries ---------------------------------------------------------------------------

    def champion(self, model: str) -> VersionInfo | None:
        """The model's live production version, read from the signed ledger alone; None before its
        first promotion.

        Guarantee: the version named by the newest promotion or rollback entry of ``model`` whose
        payload matches its digest, whose signature names its own chain position, and whose signer
        was a key valid for that entry at that position (the ledger's key entries, replayed and
        checked); ``sha256`` and ``artifact`` come from that version's own signed candidate entry.
        No projection row is read. If either entry does not verify, RegistryError: never an older
        version instead.
        """
        with db_errors(self.url), self._engine.connect() as conn:
            ledger = SignedLedger(conn)
            move = ledger.production(model)
            if move is None:
                return None
            record = self._version_row(conn, move.predicate["version"], ledger)
            return self._info(record, promoted=True, production=True)

    def versions(self, model: str | None = None) -> list[VersionInfo]:
        """All versions (of one model), by model then number; each as its signed candidate entry says.

        The versions table serves as an index only: a row with no signed candidate entry of that
        name behind it is not listed (`registry verify` names it).
        """
        query = select(_V.name, _V.entry_seq)
        if model is not None:
            query = query.where(_V.model == model)
        with db_errors(self.url), self._engine.connect() as conn:
            ledger = SignedLedger(conn)
            rows = list(conn.execute(query))
            entries = ledger.entries(row.entry_seq for row in rows)
            records = {}
            for row in rows:
                entry = entries.get(row.entry_seq)
                if entry is not None and entry.predicate_type == st.CANDIDATE and entry.predicate.get("version") == row.name:
                    record = version_record(entry)
                    if model is None or record.model == model:
                        records[record.name] = record
            live = {m: ledger.production(m) for m in {r.model for r in records.values()}}
            production = {move.predicate.get("version") for move in live.values() if move is not None}
            promoted = ledger.promoted(records)
        ordered = sorted(records.values(), key=lambda r: (r.model, r.number))
        return [self._info(r, promoted=r.name in promoted, production=r.name in production) for r in ordered]

    def version(self, version: str) -> VersionInfo:
        """One version, as its signed candidate entry says; unknown version: RegistryError."""
        with db_errors(self.url), self._engine.connect() as conn:
            ledger = SignedLedger(conn)
            record = self._version_row(conn, version, ledger)
            move = ledger.production(record.model)
            return self._info(record, promoted=bool(ledger.promoted([version])),
                              production=move is not None and move.predicate.get("version") == version)

    def models(self) -> list[str]:
        with db_errors(self.url), self._engine.connect() as conn:
            return list(conn.execute(select(_M.name).order_by(_M.name)).scalars())

    def artifact_path(self, version: str) -> Path:
        """Where the version's ONNX bytes are stored, named by the sha256 of its signed candidate entry."""
        with db_errors(self.url), self._engine.connect() as conn:
            row = self._version_row(conn, version)
        if row.sha256 is None:
            raise RegistryError(f"version {version} errored and has no artifact")
        return artifact_file(self.home, row.sha256)

    def show(self, version: str) -> dict[str, Any]:
        """Everything recorded about one version, JSON-ready, read from its signed entries."""
        with db_errors(self.url), self._engine.connect() as conn:
            ledger = SignedLedger(conn)
            row = self._version_row(conn, version, ledger)
            runs = ledger.about(row.run_id, (st.RUN,))
            ended = [e for e in ledger.about(row.run_id, (st.RUN_OUTCOME,)) if e.predicate.get("run_id") == row.run_id]
            gates = ledger.about(version, (st.GATE_RESULT,))
            promotions = ledger.about(version, PROMOTIONS)
            move = ledger.production(row.model)
        run = runs[-1] if runs else None
        return {
            "version": version,
            "model": row.model,
            "number": row.number,
            "status": row.status,
            "error": row.error,
            "sha256": row.sha256,
            "size_bytes": row.size_bytes,
            "artifact": str(artifact_file(self.home, row.sha256)) if row.sha256 else None,
            "plugin": {
                "name": row.plugin_name,
                "version": row.plugin_version,
                "distribution": row.plugin_distribution,
                "code_sha256": row.plugin_code_sha256,
            },
            "candidate": row.candidate,
            "parent": row.parent_version,
            "created": row.created_at,
            "production": move is not None and move.predicate.get("version") == version,
            "entry": {"seq": row.entry_seq, "digest": row.entry_digest},
            "run": None
            if run is None
            else {
                "run_id": run.predicate["run_id"],
                "settings_digest": run.predicate.get("settings_digest"),
                "data": run.predicate.get("data"),
                "plugins": run.predicate.get("plugins"),
                "created": run.time,
                "entry": {"seq": run.seq, "digest": run.digest},
                "outcome": None if not ended else {  # how the run ended; None while it runs (or for a run before outcomes)
                    **{k: ended[0].predicate.get(k) for k in ("outcome", "promoted", "skipped", "error")},
                    "entry": {"seq": ended[0].seq, "digest": ended[0].digest},
                },
            },
            "gate_results": [
                {
                    "gate": g.predicate.get("gate"),
                    "passed": g.predicate.get("passed") is True,
                    "value": measured(g.predicate.get("value")),
                    "threshold": measured(g.predicate.get("threshold")),
                    "summary": g.predicate.get("summary"),
                    "details": g.predicate.get("details"),
                    "evidence": g.predicate.get("evidence"),
                    "created": g.time,
                    "entry": {"seq": g.seq, "digest": g.digest},
                }
                for g in gates
            ],
            "promotions": [
                {
                    "alias": p.predicate.get("alias"),
                    "previous_version": p.predicate.get("previous_version"),
                    "reason": p.predicate.get("reason"),
                    "gate_results": p.predicate.get("gate_results"),
                    "created": p.time,
                    "entry": {"seq": p.seq, "digest": p.digest},
                }
                for p in promotions
            ],
        }

    def head(self) -> tuple[int, str] | None:
        """The last entry's (seq, digest): worth writing down to detect a later truncation."""
        with db_errors(self.url), self._engine.connect() as conn:
            row = conn.execute(select(_L.seq, _L.digest).order_by(_L.seq.desc()).limit(1)).first()
        return (int(row.seq), row.digest) if row else None

    def verify(self, *, check_artifacts: bool = True, trusted_keys: Iterable[str] = (), receipts: Iterable[Path] = ()) -> VerifyReport:
        """Re-check the whole ledger, every table row and every stored artifact, against
        ``<home>/head.json`` and any older ``receipts`` kept elsewhere; the outcome is recorded in
        the home for the read commands' warning (gatewise.registry.verified)."""
        from gatewise.registry.verify import verify_registry

        from gatewise.registry.freshness import record_verification

        report = verify_registry(
            self._engine, self.url, self.home, check_artifacts=check_artifacts, trusted_keys=tuple(trusted_keys), receipts=tuple(receipts)
        )
        record_verification(self.home, report)
        return report

    def verification_warning(self) -> str | None:
        """One line for read commands when the last `registry verify` failed, or checked an older
        ledger head than the current one (or never ran here); None when it is current and passed."""
        from gatewise.registry.freshness import staleness

        return staleness(self.home, self.head())

    # -- helpers ---------------------------------------------------------------------------

    def _version_row(self, conn: Connection, version: str, ledger: SignedLedger | None = None) -> VersionRecord:
        return (ledger or SignedLedger(conn)).version(version)

    def _info(self, row: VersionRecord, *, promoted: bool, production: bool) -> VersionInfo:
        return VersionInfo(
            version=row.name,
            model=row.model,
            number=row.number,
            sha256=row.sha256,
            status=row.status,
            plugin=row.plugin_name,
            parent=row.parent_version,
            created=parse_time(row.created_at),
            promoted=promoted,
            artifact=artifact_file(self.home, row.sha256) if row.sha256 else None,
            production=production,
            run_id=row.run_id,
            candidate=row.candidate,
            error=row.error,
        )


def _tables() -> list[Any]:
    return [LedgerEntry.__table__, ModelRow.__table__, *(model.__table__ for model in ENTRY_TABLES.values())]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _gate_fields(result: GateResult) -> dict[str, Any]:
    return {
        "gate": result.gate,
        "passed": bool(result.passed),
        "value": result.value,
        "threshold": result.threshold,
        "summary": result.summary,
        "details": result.details,
    }

