"""`gatewise registry ls | show | verify`: the auditor's commands. Reads never create anything.

The registry package is imported inside each handler so that `gatewise --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gatewise.cli_common import (
    fmt_num,
    warn_unverified,
    open_registry,
    print_json,
    print_table,
    registry_options,
)
from gatewise.cli_queries import print_lineage
from gatewise.errors import ExitCode, UsageError


def add_commands(subparsers: Any) -> Any:
    """Add the `registry` command group to the main CLI's subparsers; return its own subparsers."""
    registry = subparsers.add_parser(
        "registry",
        help="query and verify the signed model registry",
        description="Query and verify the signed model registry (read-only: nothing is created).",
    )
    commands = registry.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)

    ls = commands.add_parser("ls", help="list registered versions", description="List registered versions.")
    ls.add_argument("--model", help="only this model's versions")
    registry_options(ls)
    ls.set_defaults(handler=_ls)

    show = commands.add_parser("show", help="everything recorded about one version",
                               description="Show a version: its artifact, plugin, lineage, run, gate results, promotions.")
    show.add_argument("version", metavar="VERSION", help='a version name such as "arrests:v3"')
    registry_options(show)
    show.set_defaults(handler=_show)

    verify = commands.add_parser(
        "verify",
        help="check the chain, every signature, every table row and every artifact",
        description="Check the hash chain, every signature, every projection row against its signed entry, "
        f"and every stored artifact's bytes. Exit 0 when all agree, {ExitCode.VERIFY_FAILED:d} naming each problem.",
    )
    verify.add_argument("--trusted-key", action="append", default=[], metavar="KEYID",
                        help="fail unless the ledger's first key is this key id (repeatable)")
    verify.add_argument("--no-artifacts", action="store_true", help="do not re-hash the stored artifact files")
    verify.add_argument("--receipt", action="append", default=[], type=Path, metavar="FILE",
                        help="also check the ledger against a head receipt kept elsewhere, or the newest one in a directory "
                        "$GATEWISE_RECEIPT_DIR published to (repeatable; may be older)")
    registry_options(verify)
    verify.set_defaults(handler=_verify)
    return commands






def _ls(args: argparse.Namespace) -> int:
    with open_registry(args) as registry:
        versions = registry.versions(args.model)
        warn_unverified(registry)
    if args.json:
        print_json([_version_json(v) for v in versions])
        return 0
    if not versions:
        print("no versions registered" + (f" for model {args.model}" if args.model else ""))
        return 0
    rows = [
        (
            v.version,
            v.status,
            "production" if v.production else ("promoted" if v.promoted else ""),
            v.plugin,
            v.parent or "-",
            (v.sha256 or "-")[:12],
            v.created.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for v in versions
    ]
    print_table(("VERSION", "STATUS", "ALIAS", "PLUGIN", "PARENT", "SHA256", "CREATED (UTC)"), rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    from gatewise.registry import queries

    with open_registry(args) as registry:
        shown = queries.show(registry, args.version)  # with its full lineage
        warn_unverified(registry)
    if args.json:
        print_json(shown)
        return 0
    fields = [
        ("version", shown["version"]),
        ("status", shown["status"] + (f" ({shown['error'].partition(chr(10))[0]})" if shown["error"] else "")),
        ("production", "yes" if shown["production"] else "no"),
        ("sha256", shown["sha256"] or "-"),
        ("size", f"{shown['size_bytes']} bytes" if shown["size_bytes"] is not None else "-"),
        ("artifact", shown["artifact"] or "-"),
        ("plugin", f"{shown['plugin']['name']} {shown['plugin']['version']} ({shown['plugin']['distribution']})"),
        ("candidate", shown["candidate"]),
        ("parent", shown["parent"] or "-"),
        ("run", f"{shown['run']['run_id']} ({(shown['run'].get('outcome') or {}).get('outcome', 'no outcome signed')})" if shown["run"] else "-"),
        ("created", shown["created"]),
        ("entry", f"{shown['entry']['seq']} {shown['entry']['digest']}"),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name:<{width}}  {value}")
    if shown["error"] and "\n" in shown["error"]:  # an isolated compressor's traceback, kept as evidence
        print(shown["error"].partition("\n")[2])
    print()
    print_lineage(shown["lineage"])
    print()
    if shown["gate_results"]:
        rows = [
            (g["gate"], "pass" if g["passed"] else "FAIL", fmt_num(g["value"]), fmt_num(g["threshold"]), str(g["entry"]["seq"]), g["summary"])
            for g in shown["gate_results"]
        ]
        print_table(("GATE", "VERDICT", "VALUE", "THRESHOLD", "ENTRY", "SUMMARY"), rows)
    else:
        print("no gate results")
    from gatewise.cli_queries import print_story

    print_story(shown)
    return 0


def _verify(args: argparse.Namespace) -> int:
    with open_registry(args) as registry:
        report = registry.verify(check_artifacts=not args.no_artifacts, trusted_keys=args.trusted_key, receipts=_receipt_files(args.receipt))
    if args.json:
        print_json(report.to_dict())
    else:
        for problem in report.problems:
            print(str(problem))
        head = f"head {report.head[0]} {report.head[1]}" if report.head else "empty ledger"
        verdict = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
        print(
            f"{verdict}: {report.entries_checked} entries, {report.rows_checked} rows, "
            f"{report.artifacts_checked} artifacts checked in {report.seconds:.2f} s; {head}; "
            f"keys {', '.join(k[:16] for k in report.keys) or '-'}; {receipt_summary(report.receipts)}"
        )
    return 0 if report.ok else ExitCode.VERIFY_FAILED


def _receipt_files(paths: list[Path]) -> list[Path]:
    """Receipt files to check: each file given, and the newest receipt of each directory given
    (one that $GATEWISE_RECEIPT_DIR was pointed at)."""
    from gatewise.registry.receipt import newest_published

    files = []
    for path in paths:
        if path.is_dir():
            newest = newest_published(path)
            if newest is None:
                raise UsageError(f"receipt directory {path} holds no head-*.json receipt")
            files.append(newest)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"receipt file {path} does not exist")
    return files


def receipt_summary(receipts: list[dict[str, Any]]) -> str:
    """Which head receipts were checked, or that none was: a cut-off ledger shows only there."""
    if not receipts:
        return "receipts: none checked (nothing outside the database vouches for the ledger's length)"
    shown = []
    for r in receipts:
        if "seq" not in r:
            shown.append(f"{r['where']} ({r.get('problem', 'unreadable')})")
            continue
        lag = f", {r['lags']} entries behind" if r.get("lags") else ""
        shown.append(f"{r['where']} (entry {r['seq']} of {r['time']}{lag}{'' if r['ok'] else ', FAILED'})")
    return "receipts checked: " + ", ".join(shown)


def _version_json(v: Any) -> dict[str, Any]:
    return {
        "version": v.version,
        "model": v.model,
        "number": v.number,
        "status": v.status,
        "sha256": v.sha256,
        "plugin": v.plugin,
        "parent": v.parent,
        "created": _utc_text(v.created),
        "promoted": v.promoted,
        "production": v.production,
        "artifact": str(v.artifact) if v.artifact else None,
        "run_id": v.run_id,
        "candidate": v.candidate,
        "error": v.error,
    }


def _utc_text(when: Any) -> str:
    """The one time format of gatewise's records and output: 2026-11-20T10:00:00.000000Z."""
    from gatewise.registry.queries import stored_time

    return stored_time(when)
