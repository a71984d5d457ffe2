"""Signed head receipts: the newest entry's seq and digest, kept outside the database.

Deleting the newest entries (and their rows) leaves a ledger whose chain and signatures are all
intact; only a record kept elsewhere shows that it once was longer. After every append the
registry writes ``<home>/head.json``: a DSSE envelope, signed with the pipeline key, over an
in-toto statement naming the head entry. `gatewise registry verify` and `gatewise audit verify`
check the ledger against it, and against any older receipts an auditor kept.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewise.registry import statements as st

RECEIPT_FILE = "head.json"
RECEIPT_DIR_ENV = "GATEWISE_RECEIPT_DIR"  # a second place every receipt is published to
HEAD_RECEIPT = st.PREDICATE_BASE + "head-receipt/v1"
_LOCK_FILE = ".head.json.lock"

log = logging.getLogger(__name__)


class ReceiptError(ValueError):
    """A head receipt that cannot be read (bad JSON, bad envelope, not a head receipt)."""


@dataclass(frozen=True)
class Receipt:
    seq: int
    digest: str
    time: str
    keyid: str  # the key that signed the envelope
    text: str  # the envelope, as written
    body: bytes
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "digest": self.digest, "time": self.time, "keyid": self.keyid}


def receipt_path(home: Path) -> Path:
    return Path(home) / RECEIPT_FILE


def make_receipt(key: Any, seq: int, digest: str, time: str) -> str:
    """The receipt for head (seq, digest), signed with ``key`` (a SigningKey): DSSE envelope JSON."""
    stmt = st.statement(
        f"ledger-head:{seq}",
        digest,
        HEAD_RECEIPT,
        {"seq": seq, "digest": digest, "time": time, "keyid": key.keyid},
    )
    envelope, _ = st.sign_statement(stmt, key.private, key.keyid)
    return envelope


def parse_receipt(text: str | bytes) -> Receipt:
    """Read a receipt's fields (the signature is checked by ``check_receipts``, against the ledger's keys)."""
    try:
        body, keyid, signature = st.open_envelope(text)
        stmt = st.parse_json(body)
        predicate = stmt["predicate"]
        seq, digest, time = predicate["seq"], predicate["digest"], predicate["time"]
        named = predicate["keyid"]
        if stmt.get("predicateType") != HEAD_RECEIPT:
            raise ReceiptError(f"its statement is a {stmt.get('predicateType')!r}, not a head receipt")
    except st.EnvelopeError as exc:
        raise ReceiptError(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ReceiptError(f"its statement cannot be read ({type(exc).__name__}: {exc})") from None
    if type(seq) is not int or seq < 1 or not isinstance(digest, str) or not isinstance(time, str):
        raise ReceiptError("its seq, digest or time has the wrong type")
    if named != keyid:
        raise ReceiptError(f"it names key {str(named)[:16]} but is signed by key {keyid[:16]}")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return Receipt(seq, digest, time, keyid, text.strip(), body, signature)


def read_receipt(path: Path) -> Receipt:
    """The receipt in ``path``; FileNotFoundError if there is none, ReceiptError if unreadable."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ReceiptError("is a directory, not a receipt file") from None
    return parse_receipt(data)


# -- written after every append ------------------------------------------------------------------


def record_head(home: Path, key: Any, start: tuple[int, str], head: tuple[int, str], engine: Any = None) -> None:
    """Write ``<home>/head.json`` for ``head`` after a write transaction committed.

    ``start`` is the chain head the transaction began from. The receipt never moves backwards
    (a concurrent writer may have written a newer one), and a receipt the ledger contradicts is
    left in place: it is the evidence `verify` reports. Failures are logged, never raised: the
    entries are committed, and a caller that saw an error might append them again.
    """
    if head[0] <= start[0]:
        return  # nothing appended
    path = receipt_path(home)
    try:
        with _locked(path.with_name(_LOCK_FILE)):
            try:
                current = _current(path)
            except FileNotFoundError:
                current = None
            except ReceiptError as exc:
                log.warning("head receipt %s cannot be read (%s): left as it is; run `gatewise registry verify`", path, exc)
                return
            if current is not None:
                seq, digest = current
                if seq >= head[0]:
                    if seq == head[0] and digest != head[1]:
                        _contradicted(path, seq, digest)
                    return  # a newer receipt (another writer's), or one the ledger no longer reaches
                if (seq, digest) != start and _digest_at(engine, seq) != digest:
                    _contradicted(path, seq, digest)
                    return
            from gatewise.registry.ledger import utc_now

            text = make_receipt(key, head[0], head[1], utc_now()) + "\n"
            _write_atomically(path, text)
            _WRITTEN[path] = (_identity(os.stat(path)), head)
    except OSError as exc:
        log.warning("cannot write the head receipt %s: %s", path, exc)
        return
    publish(text, head[0])


def publish(text: str, seq: int) -> None:
    """Also keep the receipt in ``$GATEWISE_RECEIPT_DIR`` (if set) as ``head-<seq>.json``, created
    once and never replaced: point it at a place the database's writers cannot rewrite (a mounted
    append-only directory, a synced folder an auditor pulls) and a later truncation shows there."""
    directory = os.environ.get(RECEIPT_DIR_ENV)
    if not directory:
        return
    target = Path(directory) / f"head-{seq:012d}.json"
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return  # published before: never replaced
    except OSError as exc:
        log.warning("cannot publish the head receipt to %s: %s", target, exc)
        return
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def newest_published(directory: Path) -> Path | None:
    """The published receipt with the highest seq in ``directory`` (None if it holds none)."""
    found = sorted(Path(directory).glob("head-*.json"))
    return found[-1] if found else None


# The receipt this process wrote last, by path: (file identity, (seq, digest)). While the file is
# still that one, the next append need not read and parse it again.
_WRITTEN: dict[Path, tuple[tuple[int, int, int], tuple[int, str]]] = {}


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _current(path: Path) -> tuple[int, str]:
    """The (seq, digest) the receipt at ``path`` names; FileNotFoundError, ReceiptError."""
    written = _WRITTEN.get(path)
    if written is not None and written[0] == _identity(os.stat(path)):
        return written[1]
    receipt = read_receipt(path)
    return receipt.seq, receipt.digest


def _contradicted(path: Path, seq: int, digest: str) -> None:
    log.warning(
        "head receipt %s (head %d, digest %s...) does not match the ledger: left as it is; run `gatewise registry verify`",
        path, seq, digest[:16],
    )


def _digest_at(engine: Any, seq: int) -> str | None:
    """The digest column of entry ``seq`` (only when another writer moved the head meanwhile)."""
    if engine is None:
        return None
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text("SELECT digest FROM ledger WHERE seq = :seq"), {"seq": seq}).scalar()


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialize receipt writers of one home (several processes may append to one registry)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the write itself is still atomic
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomically(path: Path, text: str) -> None:
    """Write a temporary file and rename it over ``path``: a reader sees the old or the new receipt."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- checked by verify -----------------------------------------------------------------------------

# Receipts to check: (where, the receipt or why it cannot be read).
Loaded = list[tuple[str, "Receipt | str"]]


def load_receipts(paths: Iterable[Path], *, required: bool) -> Loaded:
    """Read receipts to check; a missing one is skipped unless ``required`` (then it is a problem)."""
    loaded: Loaded = []
    for path in paths:
        where = f"head receipt {path}"
        try:
            loaded.append((where, read_receipt(path)))
        except FileNotFoundError:
            if required:
                loaded.append((where, "is missing"))
        except ReceiptError as exc:
            loaded.append((where, f"cannot be read: {exc}"))
        except OSError as exc:
            loaded.append((where, f"cannot be read: {exc.strerror or exc}"))
    return loaded


def watched_seqs(loaded: Loaded) -> set[int]:
    """The seqs whose digests the verify pass must note for these receipts."""
    return {receipt.seq for _, receipt in loaded if isinstance(receipt, Receipt)}


def check_receipts(loaded: Loaded, state: Any, current: int = 0) -> list[dict[str, Any]]:
    """Check each receipt against the verified ledger (``state``: verify's in-order pass).

    The first ``current`` receipts must name the ledger's head itself (``<home>/head.json``, which
    every append rewrites): one that lags means entries it never covered, or a copy put back. Older
    receipts an auditor kept may lag; ``lags`` in their summary says by how many entries.
    Problems go to ``state.problems``; returns a summary of each receipt for the report.
    """
    from gatewise.registry.verify import Problem

    checked = []
    head_seq = state.head[0] if state.head else 0
    for index, (where, receipt) in enumerate(loaded):
        if not isinstance(receipt, Receipt):
            state.problems.append(Problem(where, receipt))
            checked.append({"where": where, "ok": False, "problem": receipt})
            continue
        found = _receipt_problems(receipt, state, head_seq)
        lags = max(head_seq - receipt.seq, 0)
        if index < current and lags and not found:
            found.append(
                f"names entry {receipt.seq} but the ledger's head is entry {head_seq}: the {lags} newest "
                "entries were never receipted here (an older receipt was put back, or writing it failed)"
            )
        state.problems.extend(Problem(where, what) for what in found)
        checked.append({"where": where, **receipt.to_dict(), "lags": lags, "ok": not found})
    return checked


def _receipt_problems(receipt: Receipt, state: Any, head_seq: int) -> list[str]:
    found = []
    key = state.keyring.keys.get(receipt.keyid)
    if key is None:
        found.append(f"signed by key {receipt.keyid[:16]}, which no key entry of this ledger introduced")
    elif not st.signature_valid(key.public_key, receipt.body, receipt.signature):
        found.append(f"signature by key {receipt.keyid[:16]} does not verify (receipt forged or edited)")
    elif key.role != "pipeline" or receipt.seq < key.introduced_seq or (key.changed_seq is not None and receipt.seq > key.changed_seq):
        found.append(f"signed by key {receipt.keyid[:16]} ({key.describe()}), which was not the pipeline's at entry {receipt.seq}")
    where = f"receipt says head {receipt.seq}, digest {receipt.digest[:16]}..., written {receipt.time}"
    if receipt.seq > head_seq:
        found.append(f"entries after seq {head_seq} are missing ({where})")
    elif receipt.seq not in state.watched:
        found.append(f"entry {receipt.seq} is missing ({where})")
    elif state.watched[receipt.seq] != receipt.digest:
        actual = state.watched[receipt.seq]
        shown = f"{actual[:16]}..." if actual else "unreadable"
        found.append(f"entry {receipt.seq} has digest {shown}: the ledger was rewritten after the receipt ({where})")
    return found

