"""`gatewise report RUN [-o FILE]`: one self-contained HTML page about a run (gatewise.report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gatewise.cli_common import open_registry, print_json, registry_options
from gatewise.errors import ExitCode


def default_report_path(home: Path, run_id: str) -> Path:
    """Where a run's page is written when -o is not given: under the gatewise home."""
    return Path(home) / "reports" / f"run-{run_id}.html"


def add_commands(subparsers: Any, registry_subparsers: Any) -> None:
    """Add `report RUN [-o FILE] [--url URL] [--json]`."""
    report = subparsers.add_parser(
        "report",
        help="write one HTML page about a run: candidates x gates, per-group bars, drift, accuracy vs latency and size",
        description="Reads every signed entry of the run's candidates and writes one self-contained HTML page "
        "(plotly, inlined: it opens without a network). A failed gate is shown in red with its reason.",
    )
    report.add_argument("run_id", metavar="RUN", help="the run id `gatewise run` printed")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write (default: <home>/reports/run-RUN.html)")
    registry_options(report)
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from gatewise.report import write_report

    registry = open_registry(args)
    try:
        path = write_report(registry, args.run_id, args.output or default_report_path(args.home, args.run_id))
    finally:
        registry.close()
    if args.json:
        print_json({"run": args.run_id, "report": str(path)})
    else:
        print(f"report: {path}")
    return ExitCode.OK
