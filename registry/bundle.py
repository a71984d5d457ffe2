"""Offline audit bundles: the ledger as JSON lines, its keys, its head receipt and a manifest.

`gatewise registry export --bundle DIR` writes one; `gatewise audit verify DIR` checks it with no
database and no private key, through the same pass as `gatewise registry verify`
(gatewise.registry.verify): chain, signatures with the key valid at each entry, key lifecycle,
numbering, promotions and decisions, then the head receipt and the manifest's digests.

    ledger.jsonl   one entry per line: {"digest": ..., "envelope": {DSSE envelope}, "seq": N}
    keys.json      every key the ledger introduced, with its lifecycle (rotations, revocations)
    head.json      the head receipt (gatewise.registry.receipt)
    manifest.json  counts, the head, and the sha256 of each file above
"""

from __future__ import annotations

import json
import mmap
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewise.errors import RegistryError, UsageError
from gatewise.registry import statements as st
from gatewise.registry.verify import (
    CHUNK,
    FIRST,
    ChunkResult,
    InOrder,
    Problem,
    VerifyReport,
    check_entry,
    collections_paused,
    open_envelopes,
    unreadable_summary,
)
from gatewise.types import sha256_file

FORMAT = "gatewise-audit-bundle/v1"
LEDGER, KEYS, HEAD, MANIFEST = "ledger.jsonl", "keys.json", "head.json", "manifest.json"
FILES = (LEDGER, KEYS, HEAD)
# keys.json fields that come from the key entries themselves; the two times are the signed times
# of the entries at introduced_seq and changed_seq, compared separately.
_KEY_FIELDS = ("keyid", "public_key", "role", "name", "status", "introduced_seq", "introduced_by", "changed_seq", "successor", "reason")
_KEY_TIMES = (("introduced_at", "introduced_seq"), ("changed_at", "changed_seq"))
_SEQ = re.compile(rb'"seq":\s*(\d+)')


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    entries: int
    head: tuple[int, str]
    keys: int
    receipt: dict[str, Any]  # the head receipt in the bundle
    files: dict[str, dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "entries": self.entries,
            "head": {"seq": self.head[0], "digest": self.head[1]},
            "keys": self.keys,
            "receipt": self.receipt,
            "files": self.files,
            "seconds": round(self.seconds, 3),
        }


# -- export ----------------------------------------------------------------------------------------


def export_registry(home: Path, url: str | None, directory: Path) -> ExportSummary:
    """Write the registry's audit bundle to ``directory`` (new, or an empty directory).

    Everything is written to a temporary directory beside it and renamed into place at the end:
    on any error nothing is left behind.
    """
    from gatewise.registry.registry import Registry

    from gatewise.registry.verify import VerificationFailed

    target = _new_target(Path(directory))
    with Registry.open(home, url, create=False) as registry:
        # Nothing is signed or written over a ledger that does not verify (a cut-off one included).
        report = registry.verify(check_artifacts=False)
        if not report.ok:
            raise VerificationFailed(f"not exported: the registry does not verify ({report.problems[0]}; "
                                     f"{len(report.problems)} problem(s) in all): run `gatewise registry verify`")
        return export_bundle(registry, target)


def _new_target(directory: Path) -> Path:
    directory = directory.expanduser().absolute()
    if directory.exists():
        if not directory.is_dir():
            raise UsageError(f"cannot export to {directory}: it is a file, not a directory")
        if any(directory.iterdir()):
            raise UsageError(f"cannot export to {directory}: the directory is not empty (choose a new one)")
    elif not directory.parent.is_dir():
        raise UsageError(f"cannot export to {directory}: its parent directory {directory.parent} does not exist")
    return directory


def export_bundle(registry: Any, directory: Path) -> ExportSummary:
    """Write the bundle of an open, verified ``registry`` into the new ``directory``."""
    from gatewise.registry import receipt as receipts
    from gatewise.registry.keyring import Keyring

    home = registry.home
    started = time.perf_counter()
    # The receipt is read before the ledger, so that the ledger read is never behind it.
    try:
        kept = receipts.read_receipt(receipts.receipt_path(home))
    except FileNotFoundError:
        # Verification (which the export runs first) requires the receipt: it went missing since.
        raise RegistryError(f"no head receipt at {receipts.receipt_path(home)}: run `gatewise registry verify`") from None
    except receipts.ReceiptError as exc:
        raise RegistryError(f"head receipt {receipts.receipt_path(home)} cannot be read ({exc}): run `gatewise registry verify`") from None
    tmp = directory.with_name(f".{directory.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    tmp.mkdir(mode=0o755)
    try:
        ring = Keyring()
        with registry.reading() as conn:
            count, head = _write_ledger(conn, tmp / LEDGER, ring)
        if count == 0:
            raise RegistryError("the ledger is empty: there is nothing to export")
        receipt_text = kept.text
        _write_json(tmp / KEYS, {"format": FORMAT, "keys": [state.to_dict() for state in ring.ordered()]})
        (tmp / HEAD).write_text(receipt_text + "\n", encoding="utf-8")
        files = {name: _file_facts(tmp / name) for name in FILES}
        files[LEDGER]["lines"] = count
        receipt = receipts.parse_receipt(receipt_text).to_dict()
        _write_json(tmp / MANIFEST, {
            "format": FORMAT,
            "created": _now(),
            "entries": count,
            "head": {"seq": head[0], "digest": head[1]},
            "keys": len(ring.keys),
            "receipt": receipt,
            "files": files,
        })
        os.rename(tmp, directory)  # also replaces an empty directory
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportSummary(directory, count, head, len(ring.keys), receipt, files, time.perf_counter() - started)


def _write_ledger(conn: Any, path: Path, ring: Any) -> tuple[int, tuple[int, str]]:
    """Stream the ledger in seq order into ``path``; feed the key entries to ``ring``."""
    from gatewise.registry.keyring import key_facts

    count, head = 0, (0, "")
    raw = conn.connection.dbapi_connection  # the driver's own cursor: a server-side one on PostgreSQL
    # One statement: a consistent snapshot on SQLite (WAL) and PostgreSQL, read in batches.
    cursor = raw.cursor(name="gatewise_export") if conn.dialect.name == "postgresql" else raw.cursor()
    cursor.execute("SELECT seq, digest, predicate_type, envelope FROM ledger ORDER BY seq")
    with open(path, "xb") as out:
        while rows := cursor.fetchmany(CHUNK):
            lines = []
            for seq, digest, predicate_type, envelope in rows:
                lines.append(_line(seq, digest, envelope))
                if predicate_type in st.KEY_TYPES:
                    _take_key(ring, key_facts, int(seq), envelope)
                count, head = count + 1, (int(seq), digest)
            out.write(b"".join(lines))
    cursor.close()
    return count, head


def _line(seq: int, digest: Any, envelope: Any) -> bytes:
    """One canonical line (sorted keys): the envelope is embedded as it is stored when it is a JSON
    object on one line, else as a JSON string (whatever it holds, verify names it)."""
    embedded = None
    if isinstance(envelope, str) and "\n" not in envelope and "\r" not in envelope:
        try:
            if isinstance(st.parse_json(envelope), dict):
                embedded = envelope
        except ValueError:
            pass
    if embedded is None:
        embedded = json.dumps(envelope)
    return b'{"digest":%s,"envelope":%s,"seq":%d}\n' % (json.dumps(digest).encode(), embedded.encode("utf-8"), int(seq))


def _take_key(ring: Any, key_facts: Any, seq: int, envelope: str) -> None:
    """Replay one key entry into the lifecycle written to keys.json (as the ledger records it)."""
    try:
        body, signer, _ = st.open_envelope(envelope)
        stmt = st.parse_json(body)
        predicate = stmt["predicate"]
        ring.take_key(seq, signer, key_facts(stmt["predicateType"], predicate), predicate["ledger"]["time"])
    except (st.EnvelopeError, ValueError, KeyError, TypeError):
        return  # an unreadable key entry: verify names it


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _file_facts(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}




def _now() -> str:
    from gatewise.registry.ledger import utc_now

    return utc_now()


# -- verify ----------------------------------------------------------------------------------------


def verify_bundle(
    directory: Path,
    *,
    trusted_keys: Iterable[str] = (),
    receipts: Iterable[Path] = (),
) -> VerifyReport:
    """Verify an audit bundle with nothing but its files (and, optionally, receipts kept elsewhere)."""
    from gatewise.registry import receipt as receipt_mod

    started = time.perf_counter()
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"no audit bundle at {directory}: not a directory")
    if not any((directory / name).exists() for name in (*FILES, MANIFEST)):
        raise UsageError(f"{directory} is not an audit bundle: it has no {MANIFEST}, {LEDGER}, {KEYS} or {HEAD}")
    extra = [Path(path) for path in receipts]
    for path in extra:
        if not path.is_file():
            raise UsageError(f"receipt file {path} does not exist")
    problems: list[Problem] = []
    manifest = _check_manifest(directory, problems)
    listed = _read_keys(directory / KEYS, problems)
    public_keys = {k["keyid"]: k["_public"] for k in listed if k.get("_public")}
    # A missing head.json is named by the manifest check; one that is there must hold.
    kept = [(HEAD, receipt) for _, receipt in receipt_mod.load_receipts([directory / HEAD], required=False)]
    kept += receipt_mod.load_receipts(extra, required=True)
    state = InOrder(trusted_keys, watch=receipt_mod.watched_seqs(kept))
    state.problems.extend(problems)
    ledger = directory / LEDGER
    if not ledger.is_file():
        return state.report(started, [])  # named above; without entries nothing else can be judged
    tasks = line_chunks(ledger)
    lines = tasks[-1][2] + _count_lines(ledger, tasks[-1]) - 1 if tasks else 0
    with collections_paused():
        for start, end, first_line in tasks:
            state.absorb(check_lines(ledger, start, end, first_line, public_keys))
    state.finish(_bundle_reader(ledger))
    times = _signed_times(ledger, _cited_seqs(state))
    _compare_keys(listed, state, directory / KEYS, times)
    if manifest is not None:
        bundled = next((receipt for where, receipt in kept if where == HEAD), None)
        _compare_manifest(manifest, lines, state, times, bundled if isinstance(bundled, receipt_mod.Receipt) else None)
    checked = receipt_mod.check_receipts(kept, state)
    return state.report(started, checked)


def line_chunks(path: Path) -> list[tuple[int, int, int]]:
    """Split ledger.jsonl into chunks of CHUNK lines: (first byte, end byte, first line number)."""
    tasks = []
    size = path.stat().st_size
    if size == 0:
        return tasks
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start, line = 0, 1
        while start < size:
            end = start
            for _ in range(CHUNK):
                newline = data.find(b"\n", end)
                if newline < 0:
                    end = size
                    break
                end = newline + 1
                if end >= size:
                    break
            tasks.append((start, end, line))
            line += CHUNK
            start = end
    return tasks


def _count_lines(path: Path, task: tuple[int, int, int]) -> int:
    with open(path, "rb") as handle:
        handle.seek(task[0])
        data = handle.read(task[1] - task[0])
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def check_lines(path: Path, start: int, end: int, first_line: int, public_keys: dict[str, bytes]) -> ChunkResult:
    """Check the entries on lines of ``path`` between two byte offsets."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    texts = data.split(b"\n")
    if texts and texts[-1] == b"":
        texts.pop()
    lines: list[Any] = []  # (seq, digest, envelope), or the problem and summary of an unreadable line
    for number, text in enumerate(texts, first_line):
        try:
            line = st.parse_json(text)
            seq, digest, envelope = line["seq"], line["digest"], line["envelope"]
            if type(seq) is not int or seq < 1:
                raise ValueError(f"seq is {seq!r}")
            lines.append((seq, digest, envelope))
        except (ValueError, KeyError, TypeError) as exc:
            lines.append(_unreadable_line(text, number, exc))
    opened = iter(open_envelopes([line[2] for line in lines if len(line) == 3], public_keys))
    problems: list[Problem] = []
    summaries = []
    after: Any = FIRST
    for number, line in enumerate(lines, first_line):
        if len(line) == 2:
            problems.append(line[0])
            summaries.append(line[1])
            after = None
            continue
        summary, _ = check_entry(line[0], line[1], next(opened), problems, line=number, after=after)
        summaries.append(summary)
        after = summary.digest
    return problems, summaries, 0


def _unreadable_line(text: bytes, number: int, exc: BaseException) -> tuple[Problem, Any]:
    why = "is empty" if not text.strip() else f"is not a ledger entry ({_short_error(exc)})"
    found = _SEQ.search(text)
    if found is None:  # no position: the pass takes it for the entry missing here, if one is
        return Problem(f"{LEDGER} line {number}", why, number), unreadable_summary(0, f"{LEDGER} line {number}")
    seq = int(found.group(1))
    return Problem(f"entry {seq} ({LEDGER} line {number})", why, seq), unreadable_summary(seq, f"{LEDGER} line {number}")


def _short_error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, KeyError):
        text = f"no {text} field"
    return text if len(text) <= 80 else text[:77] + "..."


def _bundle_reader(path: Path) -> Any:
    """Whole entries by seq, for the citations the pass reads back (a scan of the file)."""

    def read(seqs: list[int]) -> Iterator[tuple[int, str]]:
        wanted = set(seqs)
        with open(path, "rb") as handle:
            for text in handle:
                found = _SEQ.search(text)  # only the line's own seq can match: base64 has no quotes
                if found is None or int(found.group(1)) not in wanted:
                    continue
                try:
                    line = st.parse_json(text)
                    envelope = line["envelope"]
                    seq = line["seq"]
                except (ValueError, KeyError, TypeError):
                    continue
                if seq in wanted:
                    yield seq, envelope if isinstance(envelope, str) else json.dumps(envelope)

    return read


def _check_manifest(directory: Path, problems: list[Problem]) -> dict[str, Any] | None:
    """The manifest, and each file checked against the sha256 it lists."""
    path = directory / MANIFEST
    manifest = None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
            problems.append(Problem(MANIFEST, f"is not a {FORMAT} manifest"))
            manifest = None
    except FileNotFoundError:
        problems.append(Problem(MANIFEST, "is missing from the bundle"))
    except (OSError, ValueError) as exc:
        problems.append(Problem(MANIFEST, f"cannot be read ({_short_error(exc)})"))
    files = manifest["files"] if manifest else {}
    for name in FILES:
        path = directory / name
        if not path.is_file():
            problems.append(Problem(name, "is missing from the bundle"))
            continue
        listed = files.get(name)
        if manifest is None:
            continue
        if not isinstance(listed, dict) or "sha256" not in listed:
            problems.append(Problem(name, f"is not listed in {MANIFEST}"))
            continue
        actual = sha256_file(path)
        if actual != listed["sha256"]:
            problems.append(Problem(name, f"has sha256 {actual[:16]}... but {MANIFEST} lists {str(listed['sha256'])[:16]}...: the file was changed after export"))
    return manifest


def _read_keys(path: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    """keys.json's keys in file order, each with its decoded public key if it proves its id.

    A key id listed twice is named: whichever copy a reader picks, the other may be the forged one.
    """
    import base64

    from gatewise.registry.keys import keyid_of

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        keys = document["keys"]
        if not isinstance(keys, list) or not all(isinstance(k, dict) and isinstance(k.get("keyid"), str) for k in keys):
            raise ValueError("keys is not a list of keys")
    except FileNotFoundError:
        return []  # named by the manifest check
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(Problem(KEYS, f"cannot be read ({_short_error(exc)})"))
        return []
    if document.get("format") != FORMAT:
        problems.append(Problem(KEYS, f"format is {document.get('format')!r}, not {FORMAT!r}"))
    listed = []
    for key in keys:
        try:
            public = base64.b64decode(key.get("public_key") or "", validate=True)
        except ValueError:
            public = b""
        if keyid_of(public) != key["keyid"]:
            problems.append(Problem(KEYS, f"key {key['keyid'][:16]}: its public key does not hash to its keyid"))
            public = b""
        listed.append({**key, "_public": public})
    counts: dict[str, int] = {}
    for key in listed:
        counts[key["keyid"]] = counts.get(key["keyid"], 0) + 1
    for keyid, count in counts.items():
        if count > 1:
            problems.append(Problem(KEYS, f"key {keyid[:16]} is listed {count} times: a key id must appear once"))
    return listed


def _cited_seqs(state: InOrder) -> set[int]:
    """The entries whose signed times the bundle's metadata repeats: key entries and the head."""
    seqs = {state.head[0]} if state.head else set()
    for key in state.keyring.keys.values():
        seqs.add(key.introduced_seq)
        if key.changed_seq is not None:
            seqs.add(key.changed_seq)
    return seqs


def _signed_times(path: Path, seqs: set[int]) -> dict[int, str | None]:
    """The signed ``ledger.time`` of each of these entries (None: unreadable, named by the pass)."""
    times: dict[int, str | None] = {}
    for seq, envelope in _bundle_reader(path)(sorted(seqs)):
        try:
            body, _, _ = st.open_envelope(envelope)
            time_ = st.parse_json(body)["predicate"]["ledger"]["time"]
        except (st.EnvelopeError, ValueError, KeyError, TypeError):
            time_ = None
        # Two lines with one seq are named by the pass; a time they disagree on is no time at all.
        times[seq] = time_ if seq not in times or times[seq] == time_ else None
    return times


def _compare_keys(listed: list[dict[str, Any]], state: InOrder, path: Path, times: dict[int, str | None]) -> None:
    """keys.json must list every key the ledger introduced, with the lifecycle the ledger records
    and the signed times of the entries that introduced and changed it. Every copy of a key
    listed twice is compared, so the forged one is named field by field."""
    if not path.is_file():
        return
    by_id: dict[str, list[dict[str, Any]]] = {}
    for entry in listed:
        by_id.setdefault(entry["keyid"], []).append(entry)
    for keyid, key in state.keyring.keys.items():
        mine = key.to_dict()
        copies = by_id.pop(keyid, [])
        if not copies:
            state.problems.append(Problem(KEYS, f"key {keyid[:16]} ({key.describe()}, introduced by entry {key.introduced_seq}) is missing"))
        for n, entry in enumerate(copies, 1):
            which = f"key {keyid[:16]}" + (f" (copy {n} of {len(copies)})" if len(copies) > 1 else "")
            for name in _KEY_FIELDS:
                if entry.get(name) != mine[name]:
                    state.problems.append(Problem(KEYS, f"{which}: {name} is {entry.get(name)!r} but the ledger says {mine[name]!r}"))
            for name, seq_field in _KEY_TIMES:
                seq = mine[seq_field]
                signed = times.get(seq) if seq is not None else None
                if seq is not None and signed is None:
                    continue  # the entry is unreadable: the pass names it
                if entry.get(name) != signed:
                    at = f"entry {seq} was signed at {signed}" if seq is not None else f"the ledger records no {seq_field}"
                    state.problems.append(Problem(KEYS, f"{which}: {name} is {entry.get(name)!r} but {at}"))
    for keyid in by_id:
        state.problems.append(Problem(KEYS, f"key {keyid[:16]} is not introduced by any entry of the ledger"))


def _compare_manifest(manifest: dict[str, Any], lines: int, state: InOrder, times: dict[int, str | None], receipt: Any) -> None:
    """Every field of the manifest against the ledger: counts, head, keys, receipt and time."""
    from gatewise.registry.ledger import parse_time

    problems = state.problems
    head = {"seq": state.head[0], "digest": state.head[1]} if state.head else None
    if manifest.get("entries") != lines:
        problems.append(Problem(MANIFEST, f"says {manifest.get('entries')!r} entries but {LEDGER} has {lines} lines"))
    facts = manifest["files"].get(LEDGER)
    listed_lines = facts.get("lines") if isinstance(facts, dict) else None
    if listed_lines != lines:
        problems.append(Problem(MANIFEST, f"lists {listed_lines!r} lines for {LEDGER} but it has {lines}"))
    if manifest.get("head") != head:
        problems.append(Problem(MANIFEST, f"says the head is {manifest.get('head')!r} but {LEDGER} ends at {head!r}"))
    keys = len(state.keyring.keys)
    if manifest.get("keys") != keys:
        problems.append(Problem(MANIFEST, f"says {manifest.get('keys')!r} keys but the ledger introduced {keys}"))
    if receipt is not None:
        listed, actual = manifest.get("receipt"), receipt.to_dict()
        if not isinstance(listed, dict):
            problems.append(Problem(MANIFEST, f"receipt is {listed!r}, not the fields of the receipt in {HEAD}"))
        else:
            for name in (*actual, *sorted(set(listed) - set(actual))):
                if listed.get(name) != actual.get(name):
                    problems.append(Problem(MANIFEST, f"receipt {name} is {listed.get(name)!r} but {HEAD} says {actual.get(name)!r}"))
    created = manifest.get("created")
    try:
        when = parse_time(created)
        if when.tzinfo is None:
            raise ValueError("no time zone")
    except (TypeError, ValueError):
        problems.append(Problem(MANIFEST, f"created is {created!r}, not a UTC time"))
        return
    # Export writes the manifest after it has read the ledger and the receipt: never before either.
    for what, then in (("the head entry", times.get(state.head[0]) if state.head else None),
                       (f"the receipt in {HEAD}", receipt.time if receipt is not None else None)):
        try:
            if then is not None and when < parse_time(then):
                problems.append(Problem(MANIFEST, f"created {created} is earlier than {what} ({then}): the bundle cannot hold it"))
                return  # one line is enough: the receipt is never older than the head it names
        except (TypeError, ValueError):
            continue  # an unreadable time is named where it is
