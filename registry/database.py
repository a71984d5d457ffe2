"""Connecting to the registry database (SQLite file or PostgreSQL URL) and serializing appends.

Appends hold a database-wide write lock for their whole transaction, so two runs never read the
same chain head: SQLite ``BEGIN IMMEDIATE`` (in WAL mode), PostgreSQL a transaction-scoped
advisory lock.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from gatewise.errors import RegistryError

URL_ENV = "GATEWISE_REGISTRY_URL"
DB_FILE = "registry.db"
_IMMEDIATE = "gatewise_immediate"


def resolve_url(home: Path, url: str | None) -> str:
    """The explicit URL, else ``$GATEWISE_REGISTRY_URL``, else the SQLite file under the home."""
    if url:
        return url
    env = os.environ.get(URL_ENV)
    if env:
        return env
    return f"sqlite:///{Path(home).resolve() / DB_FILE}"


def display_url(url: str) -> str:
    """The URL without its password, fit for messages; a SQLite URL as its file path."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str, *, writable: bool) -> Engine:
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": 60})
            _sqlite_events(engine, writable)
        elif backend == "postgresql":
            engine = create_engine(parsed, pool_pre_ping=True)
        else:
            raise RegistryError(f"unsupported registry URL {display_url(url)}: use sqlite:/// or postgresql+psycopg://")
    except (ArgumentError, NoSuchModuleError) as exc:
        raise RegistryError(f"bad registry URL {display_url(url)}: {exc}") from None
    except ImportError as exc:  # the URL's driver is an optional install
        raise RegistryError(missing_driver(url, exc.name or str(exc))) from None
    return engine


POSTGRES_INSTALL = "pip install 'gatewise[postgres]'"


def missing_driver(url: str, module: str) -> str:
    """One line: the registry URL's database driver is not installed, and how to install it."""
    where = display_url(url)
    if module.split(".")[0] == "psycopg":
        return f"the registry URL {where} needs the PostgreSQL driver psycopg, which is not installed: {POSTGRES_INSTALL}"
    return (f"the registry URL {where} needs the database driver module {module}, which is not installed: "
            f"install it, or use a postgresql+psycopg:// URL ({POSTGRES_INSTALL})")


def _sqlite_events(engine: Engine, writable: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # The driver's own transaction handling is off; _on_begin emits BEGIN itself so that a
        # write transaction can take the lock up front (BEGIN IMMEDIATE).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        if writable:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the registry's write lock from its first statement to commit."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_IMMEDIATE: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('gatewise.ledger.' || current_schema(), 0))"))
            yield conn


def describe_db_error(url: str, exc: BaseException) -> str:
    """One line saying what is wrong with the database, for a RegistryError."""
    where = display_url(url)
    original = getattr(exc, "orig", None) or exc
    first = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    if isinstance(original, sqlite3.DatabaseError) and "not a database" in first:
        return f"registry database {where} is corrupt or not a SQLite database ({first})"
    lowered = first.lower()
    if isinstance(exc, DBAPIError) and exc.connection_invalidated or any(
        word in lowered for word in ("connect", "connection", "resolve host", "translate host name")
    ):
        return f"cannot reach the registry at {where}: {first}"
    return f"registry database {where}: {first}"


@contextmanager
def db_errors(url: str) -> Iterator[None]:
    """Turn driver errors into one clear RegistryError line."""
    try:
        yield
    except RegistryError:
        raise
    except SQLAlchemyError as exc:
        raise RegistryError(describe_db_error(url, exc)) from None
    except sqlite3.DatabaseError as exc:
        raise RegistryError(describe_db_error(url, exc)) from None


def has_ledger(engine: Engine) -> bool:
    return inspect(engine).has_table("ledger")


@contextmanager
def existing_engine(home: Path, url: str | None) -> Iterator[Engine | None]:
    """A read-only engine on the registry, creating nothing; None where no registry exists yet
    (no SQLite file, or no ledger table). Driver errors become one RegistryError line."""
    url = resolve_url(home, url)
    db_file = sqlite_path(url)
    if db_file is not None and not db_file.exists():
        yield None
        return
    engine = make_engine(url, writable=False)
    try:
        with db_errors(url):
            yield engine if has_ledger(engine) else None
    finally:
        engine.dispose()


def probe(home: Path, url: str | None) -> None:
    """Check, creating nothing, that the registry can be opened: a reachable server, a sound file.

    A SQLite file that does not exist yet passes: the first run creates it.
    """
    with existing_engine(home, url):
        pass
