"""`gatewise registry gates`: list, filter and export signed gate verdicts (read-only).

The registry package is imported inside the handler so that `gatewise --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gatewise.cli_common import fmt_num, open_registry, print_json, print_table, url_option, warn_unverified
from gatewise.errors import ExitCode, UsageError

DEFAULT_LIMIT = 1000  # the same as gatewise.registry.queries.DEFAULT_LIMIT, without importing it


def add_commands(subparsers: Any, registry_subparsers: Any) -> None:
    """Add `registry gates` to the registry command group."""
    gates = registry_subparsers.add_parser(
        "gates",
        help="list gate results, newest first (filter, JSON, CSV)",
        description="List signed gate verdicts, newest first: version, gate, verdict, value, threshold, "
        "time and entry digest. Filters combine. Exit 2 on an unknown model or gate name or a bad date.",
    )
    gates.add_argument("--model", help="only this model's results")
    gates.add_argument("--gate", metavar="NAME", help="only this gate (e.g. fairness, data_validation)")
    gates.add_argument("--failed", action="store_true", help="only verdicts that failed")
    gates.add_argument("--since", metavar="DATE", help="recorded at or after DATE (YYYY-MM-DD or ISO-8601 time; UTC unless it says)")
    gates.add_argument("--until", metavar="DATE", help="recorded before DATE")
    gates.add_argument("--limit", type=_limit, default=None, metavar="N",
                       help=f"at most N rows, newest first (default {DEFAULT_LIMIT}, or all with --csv; 0: all)")
    output = gates.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON document (a list of results)")
    output.add_argument("--format", choices=("table", "json", "csv"), default=None, help="output format (default: table)")
    output.add_argument("--csv", type=Path, metavar="FILE", help="write the results as CSV to FILE")
    url_option(gates)
    gates.set_defaults(handler=_gates)

    waivers = registry_subparsers.add_parser(
        "waivers",
        help="every signed waiver across models: who overrode which failed gate, and why",
        description="List the signed waivers of failed gate results, oldest first, across all models: time, version, "
        "waived gates, approver, reason, entry, and the promotions that relied on each. Filters combine. "
        "Exit 2 on an unknown model or approver or a bad date.",
    )
    waivers.add_argument("--model", help="only this model's waivers")
    waivers.add_argument("--approver", metavar="NAME", help="only this approver's waivers")
    waivers.add_argument("--since", metavar="DATE", help="signed at or after DATE (YYYY-MM-DD or ISO-8601 time; UTC unless it says)")
    waivers.add_argument("--until", metavar="DATE", help="signed before DATE")
    shape = waivers.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print one JSON document (a list of waivers)")
    shape.add_argument("--csv", action="store_true", help="print CSV (one line per waiver) to stdout")
    url_option(waivers)
    waivers.set_defaults(handler=_waivers)

    report = registry_subparsers.add_parser(
        "report",
        help="write one self-contained HTML page on a model: timeline, decisions, gate results, verification",
        description="Verify the registry, then write one HTML page (no script, no network) on MODEL: which version was in "
        "production when, each promotion, rollback and waiver with its approver and reason, the gating policies, the "
        "gate results in plain words with each threshold and policy entry, and the verification status with the head "
        "digest it describes. With VERSION, that version's gate results; else those of every version ever in production.",
    )
    report.add_argument("model", metavar="MODEL")
    report.add_argument("version", nargs="?", metavar="VERSION", help="a version of MODEL to detail")
    report.add_argument("-o", "--output", type=Path, metavar="FILE.html", help="where to write (default: <home>/reports/MODEL.html)")
    url_option(report)
    report.set_defaults(handler=_report)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of rows: '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a number of rows: '{text}'")
    return value


def _gates(args: argparse.Namespace) -> int:
    from gatewise.registry import queries as q

    where = q.GateFilter(
        model=args.model,
        gate=args.gate,
        passed=False if args.failed else None,
        since=q.parse_when(args.since, "--since") if args.since else None,
        until=q.parse_when(args.until, "--until") if args.until else None,
    )
    fmt = "csv" if args.csv else ("json" if args.json else (args.format or "table"))
    # An export to a file is complete unless a limit is asked for; a listing is bounded.
    limit = args.limit if args.limit is not None else (0 if args.csv else DEFAULT_LIMIT)
    with open_registry(args) as registry:
        q.check_filter(registry, where)  # a bad filter fails before anything is written
        warn_unverified(registry)
        if limit == 0:
            records: Any = q.iter_gate_results(registry, where)
            truncated = False
            if fmt in ("table", "json"):
                records = list(records)
        else:
            page = q.gate_results(registry, where, limit)
            records, truncated = page.records, page.truncated
        if args.csv:
            count = _export_csv(args.csv, records, q)
            print(f"wrote {count} gate result(s) to {args.csv}")
        elif fmt == "csv":
            q.write_csv(records, sys.stdout)
    if truncated:
        print(f"gatewise: showing the newest {limit} results; --limit N for more, --limit 0 for all", file=sys.stderr)
    if fmt == "json":
        print_json([r.to_dict() for r in records])
    elif fmt == "table":
        if records:
            _print_records(records)
        else:
            print("no gate results match")
    return ExitCode.OK


def _waivers(args: argparse.Namespace) -> int:
    from gatewise.registry import queries as q

    since = q.parse_when(args.since, "--since") if args.since else None
    until = q.parse_when(args.until, "--until") if args.until else None
    with open_registry(args) as registry:
        records = q.waivers(registry, model=args.model, approver=args.approver, since=since, until=until)
        warn_unverified(registry)
    if args.json:
        print_json([r.to_dict() for r in records])
    elif args.csv:
        q.write_waivers_csv(records, sys.stdout)
    elif not records:
        print("no waivers match")
    else:
        rows = [
            (r.time[:19].replace("T", " "), r.version, ", ".join(str(g.get("gate")) for g in r.gates), r.approver, str(r.seq),
             ", ".join(map(str, r.promoted_by)) or "-", r.reason)
            for r in records
        ]
        print_table(("TIME (UTC)", "VERSION", "GATES", "APPROVER", "ENTRY", "PROMOTION", "REASON"), rows)
    return ExitCode.OK


def _report(args: argparse.Namespace) -> int:
    from gatewise.registry.audit_report import model_report

    target = args.output or Path(args.home) / "reports" / f"{args.model.replace('/', '_')}.html"
    if args.output is not None and not target.parent.is_dir():
        raise UsageError(f"cannot write {target}: no directory {target.parent}")
    with open_registry(args) as registry:
        page = model_report(registry, args.model, args.version)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    print(f"wrote {target}")
    return ExitCode.OK


def _export_csv(target: Path, records: Any, q: Any) -> int:
    """Write to a temporary file beside ``target`` and rename it: a failed export leaves nothing."""
    target = Path(target)
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {target}: no directory {target.parent}")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            count = q.write_csv(records, handle)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def _print_records(records: list[Any]) -> None:
    header = ("TIME (UTC)", "VERSION", "GATE", "VERDICT", "VALUE", "THRESHOLD", "ENTRY", "DIGEST", "WAIVER")
    rows = [
        (
            r.time[:19].replace("T", " "),
            r.version or f"{r.model} (data)",
            r.gate,
            "pass" if r.passed else "FAIL",
            fmt_num(r.value),
            fmt_num(r.threshold),
            str(r.seq),
            r.entry_digest[:16],
            r.waiver or "",
        )
        for r in records
    ]
    print_table(header, rows)




def print_lineage(lineage: dict[str, Any]) -> None:
    """The lineage block of `gatewise registry show`: where a version came from."""
    plugin = lineage["plugin"]
    run_entry = lineage["run_entry"]
    lines: list[tuple[str, str]] = [
        ("run", lineage["run_id"] + (f" (entry {run_entry['seq']} {run_entry['digest']})" if run_entry else " (not recorded)")),
        ("settings", f"sha256 {lineage['settings_digest']}" if lineage["settings_digest"] else "-"),
        ("policy", ", ".join(f"sha256 {d}" for d in lineage["policy_digests"]) or "-"),
    ]
    data = lineage["data"] or {}
    lines += [("data" if i == 0 else "", f"{name:<8} {fp}") for i, (name, fp) in enumerate(sorted(data.items()))] or [("data", "-")]
    for other in lineage["gated_data"]:
        lines += [("gated on", ", ".join(f"{k} {v}" for k, v in sorted(other.items())))]
    lines += [
        ("plugin", f"{plugin['name']} {plugin['version']} from {plugin['distribution']}, code sha256 {plugin['code_sha256']}"),
        ("dist", f"sha256 {plugin['distribution_sha256']} (every file of {plugin['distribution']}), plugin API "
                 f"{plugin.get('plugin_api') or '-'}" if plugin.get("distribution_sha256") else "- (not recorded)"),
        ("runtime", ", ".join(f"{lib} {plugin[f'{lib}_version']}" for lib in ("gatewise", "onnx", "onnxruntime")
                              if plugin.get(f"{lib}_version")) or "- (not recorded)"),
        ("candidate", f"{lineage['candidate']} (entry {lineage['candidate_entry']['seq']} {lineage['candidate_entry']['digest']})"),
        ("parent", lineage["parent"] or "-"),
        ("ancestors", " <- ".join(lineage["ancestors"]) or "-"),
        ("champion", ", ".join(lineage["champion_versions"]) or "-"),
    ]
    print("lineage")
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"  {name:<{width}}  {value}")


def print_story(shown: dict[str, Any]) -> None:
    """The decisions block of `gatewise registry show`: in production from/until, each promotion,
    rollback and waiver with its approver, reason and the gating policy it relied on."""
    print()
    if not shown["in_production"]:
        print("in production: never")
    for period in shown["in_production"]:
        by = period["by"]
        until = f"until {period['until']} ({period['ended_by']['event']} to {period['ended_by']['version']}, entry {period['ended_by']['seq']})" \
            if period["until"] else "until now"
        print(f"in production from {period['from']} ({by['event']}, entry {by['seq']}) {until}")
    for d in shown["decisions"]:
        who = f"approver {d['approver']}" if d["approver"] else "the pipeline"
        print(f"\n{d['event']} at {d['time']} (entry {d['promotion']['seq']}) by {who}: {d['reason']}")
        if d["event"] == "waiver":
            print(f"  waives the failed {', '.join(d['gates'])}")
        if d["event"] == "promotion":
            if d["waivers"]:
                print(f"  relies on waiver entr{'y' if len(d['waivers']) == 1 else 'ies'} {', '.join(map(str, d['waivers']))}")
            policy = d["policy"]
            print(f"  gated by policy entry {policy['seq']} (set by approver {policy['approver']}: {policy['reason']})" if policy
                  else "  gated by the built-in default thresholds (no signed policy)")
