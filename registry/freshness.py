"""The last verification's outcome, kept in the home, so that read commands can say when what they
print has not been verified: ``<home>/verified.json`` names the ledger head that `registry verify`
last checked and whether it passed.

Reads check the signed entry behind each row that decides anything (gatewise.registry.signed), but
a listing of gate results reads the tables; this warning is what tells its reader to verify.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

VERIFIED_FILE = "verified.json"

log = logging.getLogger(__name__)


def verified_path(home: Path) -> Path:
    return Path(home) / VERIFIED_FILE


def record_verification(home: Path, report: Any) -> None:
    """Write what was verified (head, outcome, time); a failure to write is logged, not raised."""
    from gatewise.registry.ledger import utc_now

    document = {
        "head": {"seq": report.head[0], "digest": report.head[1]} if report.head else None,
        "ok": report.ok,
        "problems": len(report.problems),
        "time": utc_now(),
    }
    path = verified_path(home)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(document, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("cannot record the verification in %s: %s", path, exc)


def staleness(home: Path, head: tuple[int, str] | None) -> str | None:
    """One line saying why the registry's content is not known to be verified, or None."""
    fix = "run `gatewise registry verify`"
    try:
        document = json.loads(verified_path(home).read_text(encoding="utf-8"))
        seq, digest, ok = document["head"]["seq"], document["head"]["digest"], document["ok"]
    except FileNotFoundError:
        return f"this registry has not been verified here: {fix}" if head else None
    except (OSError, ValueError, KeyError, TypeError):
        return f"the record of the last verification ({verified_path(home)}) cannot be read: {fix}"
    when = document.get("time", "?")
    if ok is not True:
        return f"the last verification ({when}, head {seq}) FAILED with {document.get('problems', '?')} problem(s): {fix}"
    if head is None or head[0] != seq or head[1] != digest:
        now = f"{head[0]}" if head else "none"
        return f"the last verification ({when}) checked the ledger up to entry {seq}; its head is now entry {now}: {fix}"
    return None
