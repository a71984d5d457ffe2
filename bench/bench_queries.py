"""Auditor queries on 1,000,000 gate results: p50/p95 per query, SQLite and PostgreSQL.

    .venv/bin/python bench/bench_queries.py                      # SQLite only
    .venv/bin/python bench/bench_queries.py --postgres URL       # also PostgreSQL (or set GATEWISE_TEST_POSTGRES_URL)

What it measures: the projection query path (``gatewise.registry.queries`` and ``Registry.show``,
through a registry opened read-only, as `gatewise registry gates | show` run them). The tables
are bulk-loaded with plain executemany / COPY in the registry's real schema, with realistic but
synthetic rows; nothing is signed (signing 1M entries would take minutes and says nothing about
queries): the ledger holds unsigned rows for the promotions only (history reads their signer),
and `verify` would reject this database. The history query is
``gatewise.registry.history.model_history`` where this checkout has it, else a model's promotions.

Each query is also timed in the same run against two baselines:
- "before": the same SQL on the same table with the indexes this schema added for listings
  dropped (and the earlier (model, gate, passed) index back), inside a transaction that is rolled
  back, so the cached database is unchanged;
- "pk": a primary-key lookup of one gate result, the cheapest query the table answers.

The databases are cached: SQLite in bench/out/queries-<rows>.db (git-ignored), PostgreSQL in a
schema ``gw_bench_queries_<rows>`` (``--drop`` removes it). ``--rebuild`` makes them afresh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
DATA_VERSION = 2  # bump when the generated rows change, so cached databases are rebuilt
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
GATES = {  # mandatory gates and the chance that a candidate passes each
    "accuracy_regression": 0.93,
    "fairness": 0.85,
    "robustness": 0.95,
    "drift": 0.90,
    "leakage": 0.97,
}
MODELS = {  # share of runs; "rare" has a few hundred results among a million
    "arrests": 30, "credit": 20, "churn": 15, "fraud": 10, "digits": 8, "loans": 6, "claims": 5,
    "triage": 3, "ads": 2, "pricing": 0.95, "rare": 0.05,
}  # fmt: skip
CANDIDATES = (("parent", "torch_mlp"), ("int8_dynamic", "int8_dynamic"), ("int8_static", "int8_static"))
DATA_REJECTION_RATE = 0.02
KEYID = "k" * 64  # the (unsigned) ledger rows name one pipeline key
# The listing indexes this change added to gate_results; "before" drops them.
NEW_INDEXES = (
    "ix_gate_results_passed_time",
    "ix_gate_results_gate_time",
    "ix_gate_results_model_time",
    "ix_gate_results_model_gate_time",
)
OLD_INDEX = ("ix_gate_results_model_gate_passed", ("model", "gate", "passed"))


# -- synthetic registry -------------------------------------------------------------------------


def _digest(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def generate(target: int, seed: int = 7) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Batches of projection rows until ``target`` gate results exist (about 200k versions, 67k runs)."""
    rng = random.Random(seed)
    models, weights = list(MODELS), list(MODELS.values())
    numbers = dict.fromkeys(models, 0)
    production: dict[str, tuple[str, int] | None] = dict.fromkeys(models, None)
    seq, clock, made, run = 0, START, 0, 0
    seen: set[str] = set()
    batch: dict[str, list[dict[str, Any]]] = {}

    def entry() -> tuple[int, str, str]:
        nonlocal seq, clock
        seq += 1
        clock += timedelta(seconds=rng.uniform(10, 110))
        return seq, _digest("entry", seq), clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def add(table: str, row: dict[str, Any]) -> None:
        batch.setdefault(table, []).append(row)

    while made < target:
        run += 1
        model = rng.choices(models, weights)[0]
        run_id = f"run{run:07d}"
        data = {"dataset": _digest("d", run), "train": _digest("tr", run), "test": _digest("te", run), "current": _digest("c", run)}
        policy = _digest("policy", run // 5000)
        s, d, t = entry()
        add("runs", {"run_id": run_id, "model": model, "settings": json.dumps({"seed": run, "gates": {"policy": policy}}),
                     "settings_digest": _digest("settings", run), "data": json.dumps(data, sort_keys=True),
                     "plugins": json.dumps([{"name": p} for _, p in CANDIDATES]), "entry_seq": s, "entry_digest": d,
                     "created_at": t})
        if model not in seen:
            seen.add(model)
            add("models", {"name": model, "created_seq": s, "production_version": None, "production_seq": None})
        evidence = json.dumps({"champion_version": production[model][0] if production[model] else None,
                               "data": data, "policy_digest": policy}, sort_keys=True)
        if rng.random() < DATA_REJECTION_RATE:
            s, d, t = entry()
            add("gate_results", _gate_row(s, d, t, "data", None, model, run_id, "data_validation", False, 0.4, 1.0,
                                          json.dumps({"data": {"dataset": data["dataset"]}}), None, None))
            made += 1
        else:
            passing = []
            parent_version = None
            for name, plugin in CANDIDATES:
                numbers[model] += 1
                version = f"{model}:v{numbers[model]}"
                s, d, t = entry()
                add("versions", {"name": version, "model": model, "number": numbers[model], "run_id": run_id, "candidate": name,
                                 "status": "ok", "sha256": _digest("onnx", version), "size_bytes": 40_000, "error": None,
                                 "plugin_name": plugin, "plugin_version": "0.1.0", "plugin_distribution": "gatewise",
                                 "plugin_code_sha256": _digest("code", plugin), "parent_version": parent_version,
                                 "entry_seq": s, "entry_digest": d, "created_at": t})
                parent_version = parent_version or version
                verdicts = []
                for gate, chance in GATES.items():
                    if made >= target:
                        break
                    passed = rng.random() < chance
                    value = round(rng.uniform(0.8, 0.95) if passed else rng.uniform(0.5, 0.8), 4)
                    s, d, t = entry()
                    add("gate_results", _gate_row(s, d, t, "candidate", version, model, run_id, gate, passed, value, 0.8,
                                                  evidence, policy, production[model][0] if production[model] else None))
                    verdicts.append({"gate": gate, "seq": s, "digest": d, "passed": passed})
                    made += 1
                if len(verdicts) == len(GATES) and all(v["passed"] for v in verdicts):
                    passing.append((version, verdicts))
            if passing:
                version, verdicts = passing[-1]
                s, d, t = entry()
                add("promotions", {"entry_seq": s, "entry_digest": d, "version": version, "model": model, "alias": "production",
                                   "previous_version": production[model][0] if production[model] else None,
                                   "reason": "all mandatory gates passed",
                                   "gate_entries": json.dumps([{k: v[k] for k in ("gate", "seq", "digest")} for v in verdicts]),
                                   "created_at": t})
                # History reads each decision's signer from the ledger: those entries exist (unsigned).
                add("ledger", {"seq": s, "prev_digest": _digest("entry", s - 1), "digest": d,
                               "predicate_type": "https://gatewise.dev/predicates/promotion/v1",
                               "subject_sha256": _digest("onnx", version), "ref": version, "keyid": KEYID,
                               "created_at": t, "envelope": "{}"})
                production[model] = (version, s)
        if len(batch.get("gate_results", ())) >= 20_000 or made >= target:
            if made >= target:
                add("_production", {m: p for m, p in production.items() if p})
            yield batch
            batch = {}


def _gate_row(seq: int, digest: str, time_: str, kind: str, version: str | None, model: str, run_id: str, gate: str,
              passed: bool, value: float, threshold: float, evidence: str, policy: str | None, champion: str | None) -> dict[str, Any]:
    return {"entry_seq": seq, "entry_digest": digest, "kind": kind, "version": version, "model": model, "run_id": run_id,
            "gate": gate, "passed": passed, "value": value, "threshold": threshold,
            "summary": f"{gate} {'passed' if passed else 'failed'}: {value} vs {threshold}",
            "details": json.dumps({"ci": [round(value - 0.02, 4), round(value + 0.02, 4)], "n": 1568}),
            "evidence": evidence, "policy_digest": policy, "champion_version": champion, "created_at": time_}


# -- loading ------------------------------------------------------------------------------------


def _tables() -> list[Any]:
    from sqlmodel import SQLModel

    import gatewise.registry.schema  # noqa: F401  (registers every table)

    return list(SQLModel.metadata.sorted_tables)


def build(engine: Any, rows: int, bulk_insert: Callable[[Any, Any, list[str], list[dict[str, Any]]], None]) -> float:
    """Create the registry's tables, load the rows with their indexes off, then index. Returns seconds."""
    from sqlalchemy import update

    from gatewise.registry.database import write_transaction
    from gatewise.registry.schema import ModelRow, create_missing_indexes

    started = time.perf_counter()
    tables = _tables()
    with write_transaction(engine) as conn:
        for table in reversed(tables):
            table.drop(conn, checkfirst=True)
        for table in tables:
            table.create(conn)
            for index in table.indexes:
                index.drop(conn)
    loaded = 0
    by_name = {table.name: table for table in tables}
    for batch in generate(rows):
        with write_transaction(engine) as conn:
            for name, batch_rows in batch.items():
                if name == "_production":
                    models = ModelRow.__table__
                    for model, (version, seq) in batch_rows[0].items():
                        conn.execute(update(models).where(models.c.name == model).values(production_version=version, production_seq=seq))
                    continue
                bulk_insert(conn, by_name[name], list(batch_rows[0]), batch_rows)
        loaded += len(batch.get("gate_results", ()))
        print(f"\r  loaded {loaded:,} gate results", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    with write_transaction(engine) as conn:
        create_missing_indexes(conn, tables)
    return time.perf_counter() - started


def sqlite_insert(conn: Any, table: Any, columns: list[str], rows: list[dict[str, Any]]) -> None:
    cursor = conn.connection.driver_connection.cursor()
    cursor.executemany(
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [tuple(row[c] for c in columns) for row in rows],
    )


def postgres_copy(conn: Any, table: Any, columns: list[str], rows: list[dict[str, Any]]) -> None:
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row[c] for c in columns))


def sync_indexes(engine: Any) -> None:
    """Make a cached database's indexes those of the schema now (added ones built, dropped ones gone)."""
    from sqlalchemy import inspect

    from gatewise.registry.database import write_transaction
    from gatewise.registry.schema import create_missing_indexes

    tables = _tables()
    with write_transaction(engine) as conn:
        inspector = inspect(conn)
        for table in tables:
            declared = {index.name for index in table.indexes}
            for found in inspector.get_indexes(table.name):
                if found["name"].startswith("ix_") and found["name"] not in declared:
                    conn.exec_driver_sql(f"DROP INDEX {found['name']}")
        create_missing_indexes(conn, tables)


# -- timing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One auditor query: what the CLI runs, and the same SQL for the "before" baseline."""

    name: str
    run: Callable[[Any, random.Random], int]  # (registry, rng) -> rows returned
    sql: Callable[[random.Random], Any] | None  # rng -> the Select, for the baseline


def queries(span_days: float, versions: list[str], models: list[str], history: Callable[[Any, str], int] | None) -> list[Query]:
    from gatewise.registry import queries as q

    gates = [*GATES, "data_validation"]

    def listing(make: Callable[[random.Random], Any]) -> tuple[Callable[[Any, random.Random], int], Callable[[random.Random], Any]]:
        def run(registry: Any, rng: random.Random) -> int:
            return len(q.gate_results(registry, make(rng)).records)

        def sql(rng: random.Random) -> Any:
            return q.gate_query(make(rng), q.DEFAULT_LIMIT + 1)

        return run, sql

    def since(rng: random.Random) -> datetime:
        return START + timedelta(days=rng.uniform(0, span_days))

    shapes: list[tuple[str, Callable[[random.Random], Any]]] = [
        ("gates (newest 1000)", lambda r: q.GateFilter()),
        ("gates --gate G", lambda r: q.GateFilter(gate=r.choice(gates))),
        ("gates --failed", lambda r: q.GateFilter(passed=False)),
        ("gates --gate G --failed", lambda r: q.GateFilter(gate=r.choice(gates), passed=False)),
        ("gates --since D", lambda r: q.GateFilter(since=since(r))),
        ("gates --since D --until D+1d", lambda r: (lambda d: q.GateFilter(since=d, until=d + timedelta(days=1)))(since(r))),
        ("gates --gate G --failed --since D", lambda r: q.GateFilter(gate=r.choice(gates), passed=False, since=since(r))),
        ("gates --model M", lambda r: q.GateFilter(model=r.choice(models))),
        ("gates --model M --failed --since D", lambda r: q.GateFilter(model=r.choice(models), passed=False, since=since(r))),
        ("gates --model M --gate G --failed --since D",
         lambda r: q.GateFilter(model=r.choice(models), gate=r.choice(gates), passed=False, since=since(r))),
    ]
    if "rare" in models:  # a model with a few hundred results among a million (absent from small runs)
        shapes.append(("gates --model rare --gate fairness --failed", lambda r: q.GateFilter(model="rare", gate="fairness", passed=False)))
    found = [Query(name, *listing(make)) for name, make in shapes]
    if history is not None:
        found.append(Query("history MODEL", lambda reg, r: history(reg, r.choice(models)), None))
    found.append(Query("show VERSION (lineage)", lambda reg, r: len(q.show(reg, r.choice(versions))["gate_results"]), None))
    return found


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered), p95


def time_it(fn: Callable[[random.Random], int], reps: int, seed: int = 1, warmup: int = 3) -> tuple[float, float, int]:
    rng = random.Random(seed)
    for _ in range(min(warmup, reps)):
        fn(rng)  # warm the cache and the planner
    rng = random.Random(seed)
    samples, rows = [], 0
    for _ in range(reps):
        started = time.perf_counter()
        rows = fn(rng)
        samples.append((time.perf_counter() - started) * 1000)
    p50, p95 = percentiles(samples)
    return p50, p95, rows


def pk_lookup(engine: Any, top: int) -> Callable[[random.Random], int]:
    from sqlalchemy import select

    from gatewise.registry import queries as q
    from gatewise.registry.schema import GateResultRow

    g = GateResultRow.__table__.c

    def run(rng: random.Random) -> int:
        with engine.connect() as conn:
            rows = [q.GateRecord._make(row) for row in conn.execute(select(*q._LISTED).where(g.entry_seq == rng.randint(1, top)))]  # noqa: SLF001
        return len(rows)

    return run


def before(engine: Any, plan: list[Query], reps: int) -> dict[str, tuple[float, float]]:
    """The same SQL with this change's listing indexes dropped, in a transaction rolled back."""
    from gatewise.registry import queries as q

    results: dict[str, tuple[float, float]] = {}
    with engine.connect() as conn:
        conn = conn.execution_options(gatewise_immediate=True)
        transaction = conn.begin()
        try:
            for name in NEW_INDEXES:
                conn.exec_driver_sql(f"DROP INDEX {name}")
            conn.exec_driver_sql(f"CREATE INDEX {OLD_INDEX[0]} ON gate_results ({', '.join(OLD_INDEX[1])})")
            for query in plan:
                if query.sql is None:
                    continue
                sql = query.sql

                def run(rng: random.Random, sql: Callable[[random.Random], Any] = sql) -> int:
                    return len([q.GateRecord._make(row) for row in conn.execute(sql(rng))][: q.DEFAULT_LIMIT])  # noqa: SLF001

                p50, p95, _ = time_it(run, reps, warmup=1)
                results[query.name] = (p50, p95)
                print(f"  before: {query.name:<46} p95 {p95:9.1f} ms", file=sys.stderr)
        finally:
            transaction.rollback()
    return results


def history_function() -> Callable[[Any, str], int] | None:
    """The history query of `gatewise registry history`, if this checkout has it; else promotions by model."""
    try:
        from gatewise.registry import history as h  # written alongside this benchmark
    except ImportError:
        from gatewise.registry import queries as q

        return lambda registry, model: len(q.promotions_of(registry, model))
    for name in ("model_history", "history"):
        fn = getattr(h, name, None)
        if callable(fn):
            return lambda registry, model, fn=fn: len(_entries(fn(registry, model)))
    return None


def _entries(result: Any) -> Any:
    if isinstance(result, dict):
        return result.get("events", result.get("entries", []))
    return getattr(result, "events", result)


def bench_backend(label: str, engine: Any, url: str, home: Path, reps: int, baseline_reps: int, rows: int) -> list[dict[str, Any]]:
    from sqlalchemy import func, select

    from gatewise.registry import Registry
    from gatewise.registry.schema import GateResultRow, ModelRow, VersionRow

    with engine.connect() as conn:
        top = int(conn.execute(select(func.max(GateResultRow.__table__.c.entry_seq))).scalar() or 0)
        first, last = conn.execute(select(func.min(GateResultRow.__table__.c.created_at), func.max(GateResultRow.__table__.c.created_at))).one()
        rng = random.Random(3)
        count = int(conn.execute(select(func.count()).select_from(VersionRow.__table__)).scalar())
        models = sorted(conn.execute(select(ModelRow.__table__.c.name)).scalars())
        versions = [f"{m}:v{n}" for m, n in conn.execute(
            select(VersionRow.__table__.c.model, VersionRow.__table__.c.number).where(VersionRow.__table__.c.number <= 1000)
        )]
    versions = rng.sample(versions, min(200, len(versions)))
    span_days = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds() / 86400
    print(f"{label}: {rows:,} gate results, {count:,} versions, {span_days:.0f} days", file=sys.stderr)
    history = history_function()
    plan = queries(span_days, versions, models, history)
    results = []
    pk = time_it(pk_lookup(engine, top), max(reps, 100))
    old = before(engine, plan, baseline_reps) if baseline_reps else {}
    with Registry.open(home, url, create=False) as registry:
        for query in plan:
            p50, p95, returned = time_it(lambda r, query=query: query.run(registry, r), reps)
            results.append({
                "backend": label, "query": query.name, "rows": returned, "p50_ms": round(p50, 3), "p95_ms": round(p95, 3),
                "x_pk_p95": round(p95 / pk[1], 1),
                "before_p95_ms": round(old[query.name][1], 1) if query.name in old else None,
                "speedup_p95": round(old[query.name][1] / p95, 1) if query.name in old else None,
            })
    results.append({"backend": label, "query": "baseline: primary-key lookup", "rows": 1, "p50_ms": round(pk[0], 3),
                    "p95_ms": round(pk[1], 3), "x_pk_p95": 1.0, "before_p95_ms": None, "speedup_p95": None})
    return results


def sqlite_engine(path: Path, rows: int, rebuild: bool) -> tuple[Any, str]:
    from gatewise.registry.database import make_engine

    url = f"sqlite:///{path}"
    stamp = path.with_suffix(".json")
    fresh = rebuild or not path.exists() or not stamp.exists() or json.loads(stamp.read_text()).get("version") != DATA_VERSION
    if fresh:
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"), stamp):
            leftover.unlink(missing_ok=True)
    engine = make_engine(url, writable=True)
    if fresh:
        print(f"building {path} ...", file=sys.stderr)
        seconds = build(engine, rows, sqlite_insert)
        stamp.write_text(json.dumps({"version": DATA_VERSION, "rows": rows, "build_s": round(seconds, 1)}))
        print(f"  built in {seconds:.0f} s", file=sys.stderr)
    else:
        sync_indexes(engine)
    engine.dispose()
    return make_engine(url, writable=False), url


def postgres_engine(base: str, rows: int, rebuild: bool, drop: bool) -> tuple[Any, str] | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from gatewise.registry.database import make_engine

    schema = f"gw_bench_queries_{rows}_v{DATA_VERSION}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first() is not None
            if drop or rebuild:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                exists = False
            if drop:
                print(f"dropped schema {schema}", file=sys.stderr)
                return None
            if not exists:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        engine = make_engine(url, writable=True)
        with engine.connect() as conn:
            complete = exists and conn.exec_driver_sql(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'bench_complete'"
            ).first() is not None
        if not complete:
            print(f"building PostgreSQL schema {schema} ...", file=sys.stderr)
            seconds = build(engine, rows, postgres_copy)
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE TABLE bench_complete AS SELECT {seconds:.1f} AS build_s")
            print(f"  built in {seconds:.0f} s", file=sys.stderr)
        else:
            sync_indexes(engine)
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE gate_results")
        return engine, url
    finally:
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="gate results to load (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=60, help="timed repetitions per query")
    parser.add_argument("--baseline-reps", type=int, default=5, help="repetitions per query without the indexes (0: skip)")
    parser.add_argument("--postgres", default=os.environ.get("GATEWISE_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default: $GATEWISE_TEST_POSTGRES_URL)")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL even if a URL is set")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached databases")
    parser.add_argument("--drop", action="store_true", help="drop the cached PostgreSQL schema and stop")
    args = parser.parse_args(argv)

    OUT.mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bench-home-", dir=OUT))  # no artifacts: show() only names their paths
    results: list[dict[str, Any]] = []
    if not args.drop:
        engine, url = sqlite_engine(OUT / f"queries-{args.rows}.db", args.rows, args.rebuild)
        try:
            results += bench_backend("sqlite", engine, url, home, args.reps, args.baseline_reps, args.rows)
        finally:
            engine.dispose()
    if args.postgres and not args.sqlite_only:
        made = postgres_engine(args.postgres, args.rows, args.rebuild, args.drop)
        if made is not None:
            engine, url = made
            try:
                results += bench_backend("postgresql", engine, url, home, args.reps, args.baseline_reps, args.rows)
            finally:
                engine.dispose()
    elif not args.drop:
        print("PostgreSQL skipped: set GATEWISE_TEST_POSTGRES_URL or pass --postgres URL", file=sys.stderr)
    home.rmdir()
    if results:
        report(results)
        (OUT / "bench_queries.json").write_text(json.dumps(results, indent=2))
    return 0


def report(results: list[dict[str, Any]]) -> None:
    header = ("backend", "query", "rows", "p50 ms", "p95 ms", "p95 / pk", "before p95 ms", "speedup")
    rows = [
        (r["backend"], r["query"], str(r["rows"]), f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['x_pk_p95']:.1f}x",
         "-" if r["before_p95_ms"] is None else f"{r['before_p95_ms']:.1f}", "-" if r["speedup_p95"] is None else f"{r['speedup_p95']:.0f}x")
        for r in results
    ]
    widths = [max(len(c) for c in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for backend in sorted({r["backend"] for r in results}):
        mine = [r for r in results if r["backend"] == backend]
        over = [f"{r['query']} ({r['p95_ms']:.0f} ms)" for r in mine if r["p95_ms"] >= 50]
        print(f"{backend}: slowest p95 {max(r['p95_ms'] for r in mine):.1f} ms; "
              + (f"over the 50 ms target: {', '.join(over)}" if over else "every query under the 50 ms target"))


if __name__ == "__main__":
    sys.exit(main())
