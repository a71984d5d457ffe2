"""The `gatewise` command. Heavy libraries load inside the handlers, so --help answers at once."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from gatewise import __version__
from gatewise.cli_common import print_json, print_table
from gatewise.errors import ExitCode, GatewiseError, UsageError

# Command groups beyond `run` and `registry`: each module has
# add_commands(top_level_subparsers, registry_subparsers) and imports its heavy work lazily.
CLI_MODULES: tuple[str, ...] = (
    "gatewise.cli_queries",
    "gatewise.cli_decisions",
    "gatewise.cli_audit",
    "gatewise.cli_deploy",
    "gatewise.cli_serve",
    "gatewise.cli_schedule",
    "gatewise.cli_monitor",
    "gatewise.cli_report",
    "gatewise.cli_policy",
    "gatewise.cli_plugins",
)


def gatewise_home() -> Path:
    return Path(os.environ.get("GATEWISE_HOME") or ".gatewise")


def exit_codes_text() -> str:
    """The help epilog's exit codes, one per line, from the one enum (docs/cli.md has the same)."""
    return "Exit codes:\n" + "\n".join(f"  {code.value:<3} {code.meaning}" for code in ExitCode)


def build_parser() -> argparse.ArgumentParser:
    from gatewise import cli_registry

    parser = argparse.ArgumentParser(
        prog="gatewise",
        description="Governed model optimization: train, compress, gate, sign, register, promote.",
        epilog=f"State lives in ./.gatewise (or $GATEWISE_HOME).\n\n{exit_codes_text()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gatewise {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the governed retraining pipeline once")
    run.add_argument("--data", type=Path, help="CSV or parquet file (default: the bundled Toronto arrests data)")
    run.add_argument("--label", help="label column of --data")
    run.add_argument("--positive", help="label value that counts as positive")
    run.add_argument("--sensitive", help="sensitive column(s) for the fairness gate, comma-separated")
    run.add_argument("--current", type=Path, help="current data for the drift gate (default: the test split)")
    run.add_argument("--id", dest="id_column", metavar="COLUMN", help="row id column: not a feature; the leakage gate checks it does not order or predict the label")
    run.add_argument("--time", dest="time_column", metavar="COLUMN", help="time column: not a feature; the leakage gate checks no test row predates the training rows")
    run.add_argument("--split", dest="split_kind", choices=("random", "time"), help="random (stratified; default) or time (out of time, by --time)")
    run.add_argument("--config", type=Path, help="gatewise.toml (default: ./gatewise.toml if present)")
    run.add_argument("--json", action="store_true", help="print one JSON document")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr (an error is still one line)")
    run.set_defaults(handler=cmd_run)

    registry_commands = cli_registry.add_commands(commands)
    for module_name in CLI_MODULES:
        importlib.import_module(module_name).add_commands(commands, registry_commands)
    return parser


def with_run_flags(settings: Any, args: argparse.Namespace) -> Any:
    """--id, --time and --split over gatewise.toml, in the settings themselves, so the run's signed
    settings digest records them like any other choice."""
    data = {k: v for k, v in (("id_column", args.id_column), ("time_column", args.time_column)) if v is not None}
    split = {"kind": args.split_kind} if args.split_kind else {}
    if not data and not split:
        return settings
    return settings.model_copy(update={
        "data": settings.data.model_copy(update=data),
        "split": settings.split.model_copy(update=split),
    })


def cmd_run(args: argparse.Namespace) -> int:
    from gatewise.config import load_settings

    settings = with_run_flags(load_settings(args.config), args)
    sensitive = tuple(s.strip() for s in args.sensitive.split(",") if s.strip()) if args.sensitive else None
    if args.data is None and (args.label or args.positive):
        raise UsageError("--label and --positive need --data; the bundled data brings its own")

    from gatewise.flows.steps import RunRequest, preflight

    request = RunRequest(
        settings=settings, home=args.home, data_path=args.data, label=args.label, positive=args.positive,
        sensitive=sensitive, current_path=args.current,
    )
    from gatewise import progress
    from gatewise.flows.interruption import interruptible
    from gatewise.run_log import debugging, log_path, terminal

    # Before anything loads Prefect (execution.py's default is ERROR): INFO and up go to the run's log file.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # stderr is the run's log file while the flow runs; progress and the one error line go here.
    with terminal() as console, progress.using(progress.Reporter.for_stream(console, quiet=args.quiet)) as reporter:
        started = time.perf_counter()
        with reporter.stage("pre-flight"):
            dataset = preflight(request)  # bad input fails here, before Prefect starts: one line, nothing made
        preflight_s = time.perf_counter() - started
        run_id = uuid.uuid4().hex[:12]
        log = None if debugging() else log_path(args.home, run_id)
        try:
            with interruptible():  # the first Ctrl-C or SIGTERM stops the run cleanly, signed; a second at once
                outcome = run_flow(request, dataset, run_id, log)
        except (Exception, KeyboardInterrupt) as exc:
            if log is None:  # GATEWISE_DEBUG=1: Prefect's logs are on screen; main() shows the traceback
                raise
            reporter.close()
            return run_failed(exc, reporter.failed_stage(), log, run_id)
        outcome.timings["preflight"] = round(preflight_s, 3)
        with reporter.stage("report page"):
            report = run_report(args, settings, outcome)
    if args.json:
        print_json({**outcome_document(outcome), "report": str(report) if report else None, "log": str(log) if log else None})
    else:
        print_outcome(outcome)
        if report:
            print(f"report: {report}")
        if log:
            print(f"log: {log}")
    return ExitCode.OK if outcome.promoted else ExitCode.BLOCKED


def run_flow(request: Any, dataset: Any, run_id: str, log: Path | None) -> Any:
    """The retrain flow, with Prefect's logs and anything else written to stderr in ``log``; with no
    log (GATEWISE_DEBUG=1), on stderr."""
    from contextlib import nullcontext

    from gatewise import progress
    from gatewise.run_log import capture

    with capture(log) if log is not None else nullcontext():
        progress.current().begin(progress.PREFECT_START)
        from gatewise.flows.execution import start_temporary_server
        from gatewise.flows.retrain import run_retrain

        start_temporary_server()  # deaf to the terminal's Ctrl-C, which the run handles itself

        return run_retrain(request, dataset, run_id)


def run_failed(exc: BaseException, stage: str | None, log: Path, run_id: str = "") -> int:
    """One stderr line for a run that stopped inside the flow: the problem, the stage, the log file
    (which holds the traceback). The exit code is the error's own: 2 bad input or registry, 1 otherwise;
    130 for an interruption (its outcome is signed once the run entry was)."""
    where = f"{stage}: " if stage else ""
    text = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
    if isinstance(exc, KeyboardInterrupt):
        from gatewise.flows.interruption import received

        by = f" by {received()}" if received() else ""
        print(f"gatewise: run {run_id} interrupted{by}{' in ' + stage if stage else ''} (log: {log})", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if isinstance(exc, GatewiseError):
        print(f"gatewise: error: {where}{text} (log: {log})", file=sys.stderr)
        return exc.exit_code
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    print(f"gatewise: internal error: {where}{what} (traceback in {log})", file=sys.stderr)
    return ExitCode.ERROR


def run_report(args: argparse.Namespace, settings: Any, outcome: Any) -> Path | None:
    """The run's HTML page (gatewise report RUN), written after the run; a page that cannot be
    drawn is a warning, never a changed verdict: the signed entries are the record."""
    if not outcome.candidates:
        return None
    from gatewise.cli_report import default_report_path
    from gatewise.config import resolve_registry_url
    from gatewise.registry import Registry
    from gatewise.report import write_report

    try:
        registry = Registry.open(Path(args.home), resolve_registry_url(settings=settings), create=False)
        try:
            return write_report(registry, outcome.run_id, default_report_path(args.home, outcome.run_id))
        finally:
            registry.close()
    except Exception as exc:  # noqa: BLE001 - the run is done and signed; the page is a convenience
        print(f"gatewise: warning: no report page: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def outcome_document(outcome: Any) -> dict[str, Any]:
    return {
        "run": {
            "id": outcome.run_id,
            "model": outcome.model,
            "status": outcome.status,
            "settings_digest": outcome.settings_digest,
            "data": outcome.fingerprints,
            "timings_s": outcome.timings,
            "data_gate": _result_doc(outcome.data_gate) if outcome.data_gate else None,
        },
        "champion": {"version": outcome.champion, "rescored": True} if outcome.champion else None,
        "candidates": [
            {
                "name": o.candidate.name,
                "plugin": o.candidate.plugin.name,
                "plugin_version": o.candidate.plugin.version,
                "distribution": o.candidate.plugin.distribution,
                "status": o.candidate.status,
                "error": o.candidate.error,
                "parent": o.candidate.parent,
                "version": o.version,
                "sha256": o.candidate.sha256,
                "size_bytes": o.candidate.size_bytes,
                "latency_ms_batch1": o.latency_ms,
                "benchmark": o.benchmark.to_dict() if o.benchmark is not None else None,
                "selection": _verdict_doc(outcome, o),
                "passed": o.passed,
                "gates": {r.gate: _result_doc(r) for r in o.results},
            }
            for o in outcome.candidates
        ],
        "skipped": [{"name": c.name, "plugin": c.plugin.name, "plugin_version": c.plugin.version,
                     "distribution": c.plugin.distribution, "reason": c.error} for c in outcome.skipped],
        "promoted": outcome.promoted,
        "selection": outcome.selection.to_dict() if outcome.selection is not None else None,
        "hardware": outcome.hardware or None,
        "policy": outcome.policy,
        "looser_than_policy": [item.to_dict() for item in outcome.looser],
        "deployments": [d.to_dict() for d in outcome.deployments],
    }


def _verdict_doc(outcome: Any, candidate: Any) -> dict[str, Any] | None:
    verdict = outcome.selection.verdict(candidate.candidate.name) if outcome.selection is not None else None
    return verdict.to_dict() if verdict is not None else None


def _result_doc(result: Any) -> dict[str, Any]:
    return {"passed": result.passed, "value": result.value, "threshold": result.threshold, "summary": result.summary, "details": result.details}


def _cell(result: Any) -> str:
    value = "-" if result.value is None else f"{result.value:.3f}"
    return f"{'pass' if result.passed else 'FAIL'} {value}"


def failing_summary(summary: str) -> str:
    """A failed gate's summary without the checks that passed: gates write each check as one
    "; "-separated part, a passing one as "measured <= limit" or "measured >= floor"."""
    parts = [part for part in summary.split("; ") if " <= " not in part and " >= " not in part]
    return "; ".join(parts) or summary


def print_outcome(outcome: Any) -> None:
    print(f"run {outcome.run_id}  model {outcome.model}")
    if outcome.status == "data_rejected":
        print(f"data gate FAILED: {outcome.data_gate.summary}")
        print("nothing trained, nothing promoted")
        return
    if outcome.champion:
        print(f"champion {outcome.champion} re-scored on today's test split")
    else:
        print("no champion yet: the accuracy gate compares with the floor and the parent only")
    gates = [r.gate for r in next((o.results for o in outcome.candidates if o.results), ())]
    large = next((o.benchmark.large_batch for o in outcome.candidates if o.benchmark is not None), 256)
    header = ["candidate", "version", "size_kB", "p50_b1_ms", "p99_b1_ms", f"rows/s_b{large}", "x_parent"] + gates
    rows = []
    for o in outcome.candidates:
        c, b = o.candidate, o.benchmark
        cells = [_cell(r) for r in o.results] if o.results else ["errored"] + [""] * (len(gates) - 1)
        verdict = outcome.selection.verdict(c.name) if outcome.selection is not None else None
        speedup = f"{verdict.speedup_batch1:.2f}" if verdict is not None and verdict.speedup_batch1 else "-"
        figures = [f"{b.p50_ms_batch1:.4f}", f"{b.p99_ms_batch1:.4f}", f"{b.throughput_rows_s:,.0f}"] if b else ["-", "-", "-"]
        mark = "*" if outcome.selection is not None and c.name == outcome.selection.winner else ""
        rows.append([mark + c.name, o.version or "-", f"{(c.size_bytes or 0) / 1024:.1f}", *figures, speedup] + cells)
    for c in outcome.skipped:
        rows.append([c.name, "-", "-", "-", "-", "-", "-"] + ["skipped"] + [""] * (len(gates) - 1))
    print_table(header, rows)
    if outcome.selection is not None:
        print(f"selection ([select] objective {outcome.selection.objective}, ties within {outcome.selection.tie_tolerance:.0%}):")
        for v in outcome.selection.verdicts:
            print(f"  {v.name}: {v.reason}")
    if outcome.hardware:
        h = outcome.hardware
        print(f"measured on {h['cpu_model']} ({h['cpu_usable']} of {h['cpu_count']} cores; {' '.join(h['cpu_flags']) or 'no listed flags'}), "
              f"onnxruntime {h['onnxruntime']} {h['provider']}, {h['intra_op_threads']} intra-op threads")
    for c in outcome.skipped:  # no version, no gates: it did not apply to this model
        print(f"{c.name}: skipped: {c.error}")
    for o in outcome.candidates:
        if o.candidate.status != "ok":
            print(f"{o.candidate.name}: errored: {(o.candidate.error or '').partition(chr(10))[0]}")  # the traceback stays in --json and the registry
        for r in o.results:
            if not r.passed:
                print(f"{o.candidate.name}: {r.gate} failed: {failing_summary(r.summary)}")
    if outcome.promoted:
        print(f"promoted {outcome.promoted} to production")
        from gatewise.cli_deploy import outcome_lines

        for line in outcome_lines(outcome.deployments):
            print(line)
    elif outcome.looser:
        policy = outcome.policy
        print(f"nothing promoted: this run's [gates] are looser than the signed policy (entry {policy['seq']}, set by {policy['approver']}):")
        for item in outcome.looser:
            print(f"  {item.describe()}")
    else:
        print("nothing promoted: every candidate failed a gate")
    t = outcome.timings
    print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return ExitCode.USAGE
    args.home = gatewise_home()
    try:
        return args.handler(args)
    except GatewiseError as exc:
        print(f"gatewise: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gatewise: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours. Point stdout at /dev/null so
        # that Python's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one line
        if os.environ.get("GATEWISE_DEBUG"):
            raise
        print(f"gatewise: internal error: {type(exc).__name__}: {exc} (set GATEWISE_DEBUG=1 for a traceback)", file=sys.stderr)
        return ExitCode.ERROR


if __name__ == "__main__":
    sys.exit(main())
