"""Fixtures and helpers shared by the registry tests: a registry on each backend, raw SQL access.

PostgreSQL runs where ``GATEWISE_TEST_POSTGRES_URL`` names a server (each test gets its own
schema, dropped afterwards); otherwise those tests skip and say why.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from gatewise.registry import Registry
from gatewise.registry.statements import pae, sha256_hex
from gatewise.types import Candidate, GateResult, PluginInfo, sha256_file

POSTGRES_ENV = "GATEWISE_TEST_POSTGRES_URL"
MANDATORY = ("accuracy_regression", "fairness", "robustness", "drift", "leakage")
PLUGIN = PluginInfo(name="int8_dynamic", version="0.1.0", distribution="gatewise", code_sha256="c" * 64)
EVIDENCE = {"policy_digest": "d" * 64, "data": {"train": "1" * 64, "test": "2" * 64}, "champion_version": None}


class Backend:
    """Where a test's registry lives, and a way to run raw SQL on it behind the registry's back."""

    def __init__(self, home: Path, url: str | None) -> None:
        self.home = home
        self.url = url
        self.opened: list[Registry] = []

    def open(self) -> Registry:
        registry = Registry.open(self.home, self.url)
        self.opened.append(registry)
        return registry

    def sql(self, statement: str, *params: object) -> list[tuple]:
        """Run one raw statement outside the registry: sqlite3 on the file, psycopg on PostgreSQL."""
        if self.url is None:
            with sqlite3.connect(self.home / "registry.db") as conn:
                return conn.execute(statement, params).fetchall()
        from sqlalchemy import create_engine

        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                result = conn.exec_driver_sql(statement.replace("?", "%s"), params)
                return result.fetchall() if result.returns_rows else []
        finally:
            engine.dispose()

    def close(self) -> None:
        for registry in self.opened:
            registry.close()


def _postgres_backend(home: Path):
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL backend not tested")
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    schema = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    unreachable = None
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except OperationalError as exc:
        unreachable = str(exc.orig).strip().splitlines()[0]
    if unreachable is not None:  # set on purpose (as CI does) but unreachable: fail, do not skip
        admin.dispose()
        pytest.fail(f"{POSTGRES_ENV} is set but the server cannot be reached: {unreachable}", pytrace=False)
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    backend = Backend(home, url.render_as_string(hide_password=False))
    try:
        yield backend
    finally:
        backend.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request, tmp_path, monkeypatch):
    monkeypatch.delenv("GATEWISE_REGISTRY_URL", raising=False)
    home = tmp_path / "home"
    if request.param == "sqlite":
        backend = Backend(home, None)
        yield backend
        backend.close()
    else:
        yield from _postgres_backend(home)


def onnx_file(directory: Path, name: str, content: bytes | None = None) -> Path:
    """A stand-in artifact: the registry stores and hashes bytes, it never parses ONNX."""
    path = directory / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if content is not None else f"onnx bytes of {name}".encode() * 20)
    return path


def candidate(directory: Path, name: str, parent: str | None = None, content: bytes | None = None) -> Candidate:
    path = onnx_file(directory, name, content)
    return Candidate(name=name, plugin=PLUGIN, status="ok", onnx_path=path, sha256=sha256_file(path),
                     parent=parent, size_bytes=path.stat().st_size)


def verdicts(passed: bool = True, failing: str | None = None, gates: tuple[str, ...] = MANDATORY) -> list[GateResult]:
    return [
        GateResult(gate=g, passed=passed and g != failing, value=0.91, threshold=0.8, summary=f"{g} measured",
                   details={"n": 1500, "ci": [0.89, 0.93], "groups": {"White": 0.9, "Black": 0.88}})
        for g in gates
    ]


def populated(backend: Backend, tmp_path: Path) -> tuple[Registry, dict[str, str]]:
    """A registry with one run, a parent and a compressed child (gated, promoted), an errored candidate."""
    registry = backend.open()
    registry.record_run("run-1", "arrests", {"seed": 42}, "a" * 64,
                        {"dataset": "e" * 64, "train": "1" * 64, "test": "2" * 64, "current": "3" * 64},
                        [{"name": "int8_dynamic", "version": "0.1.0"}])
    parent = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "parent"))
    child = registry.register_candidate("run-1", "arrests", candidate(tmp_path / "in", "int8", parent="parent"))
    errored = registry.register_candidate(
        "run-1", "arrests", Candidate(name="broken", plugin=PLUGIN, status="errored", parent="parent", error="ValueError: bad graph"))
    registry.record_gate_results(parent, verdicts(failing="fairness"), EVIDENCE)
    registry.record_gate_results(child, verdicts(), EVIDENCE)
    registry.promote(child)
    return registry, {"parent": parent, "child": child, "errored": errored}


def forge_entry(backend, seq, prev, predicate_type, predicate, key, subject="0" * 64, ref="arrests:v1"):
    """Append a ledger entry behind the registry's back, chained at ``seq``/``prev`` and signed by ``key``."""
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keyid = sha256_hex(public)
    predicate = {"ledger": {"seq": seq, "prev": prev, "time": "2030-01-01T00:00:00.000000Z"}, **predicate}
    stmt = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": ref, "digest": {"sha256": subject}}],
            "predicateType": predicate_type, "predicate": predicate}
    body = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(pae("application/vnd.in-toto+json", body))
    env = {"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(body).decode(),
           "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}]}
    backend.sql("INSERT INTO ledger (seq, prev_digest, digest, predicate_type, subject_sha256, ref, keyid, created_at, "
                "envelope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                seq, prev, sha256_hex(body), predicate_type, subject, ref, keyid, predicate["ledger"]["time"],
                json.dumps(env))
    return sha256_hex(body), keyid, public
