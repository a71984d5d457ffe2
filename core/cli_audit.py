"""`gatewise registry export | head` and `gatewise audit verify`: what an auditor takes away and checks.

`registry head` prints the signed head receipt to keep off the machine; `registry export --bundle`
writes an offline audit bundle; `audit verify` checks a bundle with no database and no private
key. The registry package is imported inside each handler so that `gatewise --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gatewise.cli_common import print_json, registry_options, registry_url
from gatewise.errors import ExitCode


def add_commands(subparsers: Any, registry_subparsers: Any) -> None:
    """Add `export` and `head` to `gatewise registry`, and the `audit` group to the main CLI."""
    export = registry_subparsers.add_parser(
        "export",
        help="write an offline audit bundle: ledger, public keys, head receipt, manifest",
        description="Write the ledger as JSON lines (one DSSE envelope per line), every public key the ledger introduced "
        "with its lifecycle, the signed head receipt and a manifest of sha256 digests to a new directory. "
        "`gatewise audit verify DIR` checks it anywhere, with no database and no private key. Nothing is written on error.",
    )
    export.add_argument("--bundle", required=True, type=Path, metavar="DIR", help="new (or empty) directory to write the bundle to")
    registry_options(export)
    export.set_defaults(handler=_export)

    head = registry_subparsers.add_parser(
        "head",
        help="print the signed head receipt, to keep somewhere else",
        description="Print <home>/head.json, the receipt (a DSSE envelope signed with the pipeline key) naming the newest "
        "ledger entry. Deleting the newest entries cannot be seen from inside the database: keep receipts off this "
        "machine and check later bundles against them with `gatewise audit verify DIR --receipt FILE`.",
    )
    head.add_argument("--json", action="store_true", help="print the receipt's fields and the envelope as one JSON document")
    head.set_defaults(handler=_head)

    audit = subparsers.add_parser(
        "audit",
        help="verify an exported audit bundle offline",
        description="Auditor commands that need neither the registry database nor a private key.",
    )
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    verify = commands.add_parser(
        "verify",
        help="check a bundle: chain, signatures, key lifecycle, head receipt, manifest",
        description="Check an audit bundle written by `gatewise registry export --bundle`: the hash chain, every signature "
        "with the key valid at its entry, the key lifecycle, promotions and human decisions, the head receipt and the "
        f"manifest's digests. Exit 0 when all agree, {ExitCode.VERIFY_FAILED:d} with one line per problem.",
    )
    verify.add_argument("bundle", type=Path, metavar="DIR", help="the bundle directory")
    verify.add_argument("--trusted-key", action="append", default=[], metavar="KEYID",
                        help="fail unless the ledger's first key is this key id (repeatable)")
    verify.add_argument("--receipt", action="append", default=[], type=Path, metavar="FILE",
                        help="also check the ledger against a head receipt kept from earlier (repeatable)")
    verify.add_argument("--json", action="store_true", help="print one JSON document")
    verify.set_defaults(handler=_audit_verify)


def _export(args: argparse.Namespace) -> int:
    from gatewise.registry.bundle import export_registry

    summary = export_registry(Path(args.home), registry_url(args), args.bundle)
    if args.json:
        print_json(summary.to_dict())
        return ExitCode.OK
    receipt = summary.receipt
    print(
        f"exported {summary.entries} entries (head {summary.head[0]} {summary.head[1]}), {summary.keys} key(s) and the head "
        f"receipt (head {receipt['seq']}) to {summary.directory} in {summary.seconds:.2f} s"
    )
    print(f"check it anywhere with: gatewise audit verify {summary.directory}")
    return ExitCode.OK


def _head(args: argparse.Namespace) -> int:
    from gatewise.errors import RegistryError
    from gatewise.registry.receipt import ReceiptError, read_receipt, receipt_path

    path = receipt_path(Path(args.home))
    try:
        receipt = read_receipt(path)
    except FileNotFoundError:
        raise RegistryError(f"no head receipt at {path}: the registry writes one after every append") from None
    except ReceiptError as exc:
        raise RegistryError(f"head receipt {path} cannot be read ({exc}): run `gatewise registry verify`") from None
    if args.json:
        print_json({**receipt.to_dict(), "receipt": json.loads(receipt.text)})
        return ExitCode.OK
    print(receipt.text)  # exactly the file: `gatewise registry head > head-<date>.json` keeps a copy
    print(f"head {receipt.seq} {receipt.digest} at {receipt.time}, signed by key {receipt.keyid[:16]}: "
          "keep a copy off this machine", file=sys.stderr)
    return ExitCode.OK


def _audit_verify(args: argparse.Namespace) -> int:
    from gatewise.registry.bundle import verify_bundle

    report = verify_bundle(args.bundle, trusted_keys=args.trusted_key, receipts=args.receipt)
    if args.json:
        print_json(report.to_dict())
        return ExitCode.OK if report.ok else ExitCode.VERIFY_FAILED
    for problem in report.problems:
        print(str(problem))
    head = f"head {report.head[0]} {report.head[1]}" if report.head else "no entries"
    receipts = ", ".join(f"{r['seq']}" for r in report.receipts if "seq" in r) or "-"
    verdict = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
    print(
        f"{verdict}: {report.entries_checked} entries checked in {report.seconds:.2f} s; {head}; "
        f"receipts at {receipts}; keys {', '.join(k[:16] for k in report.keys) or '-'}"
    )
    return ExitCode.OK if report.ok else ExitCode.VERIFY_FAILED
