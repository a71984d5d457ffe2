"""`gatewise monitor`: drift of production inputs vs the live version's training reference, a signed
monitoring entry, and a retrain when it drifted (docs/monitoring.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from gatewise.cli_common import fmt_num, open_registry, print_json, print_table, registry_options
from gatewise.errors import ExitCode


def add_commands(commands: Any, registry_commands: Any) -> None:
    monitor = commands.add_parser(
        "monitor",
        help="compare production inputs with the live version's training data; retrain on drift",
        description="Compare current inputs with the production version's training reference (the drift gate's code) "
        "and its predicted probabilities, sign a monitoring entry, and start a retrain when drift crosses the "
        "[monitor] thresholds. Exit 0 whether or not it drifted (a started retrain is reported), 2 bad input.",
    )
    source = monitor.add_mutually_exclusive_group()
    source.add_argument("--current", type=Path, help="CSV or parquet file of current inputs (raw feature columns)")
    source.add_argument("--from-serving", action="store_true",
                        help="every Parquet file `gatewise serve` sampled under <home>/serving/inputs/<model>/")
    monitor.add_argument("--model", help="model to monitor (default: [data] model_name, else the registry's only model)")
    monitor.add_argument("--config", type=Path, help="gatewise.toml (default: ./gatewise.toml if present)")
    monitor.add_argument("--json", action="store_true", help="print one JSON document")
    monitor.set_defaults(handler=cmd_monitor)

    listing = registry_commands.add_parser(
        "monitoring",
        help="list signed monitoring passes, newest first",
        description="List the signed monitoring entries of a model, newest first: entry, time, live version, verdict, "
        "the measures against their thresholds, and the run each drifted pass triggered. Every entry's signature is "
        "checked. Exit 2 on an unknown model.",
    )
    listing.add_argument("model", metavar="MODEL", help="model name, such as arrests")
    listing.add_argument("--limit", type=int, default=20, help="newest N passes (0: all; default 20)")
    registry_options(listing)
    listing.set_defaults(handler=cmd_monitoring)


def cmd_monitor(args: argparse.Namespace) -> int:
    from gatewise.errors import UsageError

    if args.current is None and not args.from_serving:
        raise UsageError("nothing to monitor: pass --current FILE or --from-serving")
    if args.config is not None and not Path(args.config).exists():
        raise UsageError(f"config file not found: {args.config}")
    # The flow takes an explicit file (none: the defaults), as a deployment runs it on a worker in
    # another folder; here, as for `gatewise run`, ./gatewise.toml counts when --config is absent.
    if args.config is None and Path("gatewise.toml").exists():
        args.config = Path("gatewise.toml")
    args.config = Path(args.config).resolve() if args.config else None
    started = time.perf_counter()
    _preflight(args)  # bad input fails here in about a second, before Prefect starts, with nothing recorded
    preflight_s = time.perf_counter() - started

    from gatewise.flows.monitor import run_monitor

    document = run_monitor(
        home=str(args.home), config=str(args.config) if args.config else None,
        current=str(args.current) if args.current else None, from_serving=args.from_serving, model=args.model,
    )
    document["timings_s"] = {"preflight": round(preflight_s, 3), "total": round(time.perf_counter() - started, 3)}
    if args.json:
        print_json(document)
    else:
        print_outcome(document)
    return ExitCode.OK  # drifted or not: a started retrain is reported, not an error (docs/monitoring.md)


def _preflight(args: argparse.Namespace) -> None:
    """What a user can get wrong: the config, the registry, the model, its live version and its
    reference data, the current file or serving folder and its columns, a Prefect server that
    PREFECT_API_URL names but that does not answer."""
    from gatewise.flows import monitor_steps as steps

    request = steps.request_from(str(args.home), str(args.config) if args.config else None,
                                 str(args.current) if args.current else None, args.from_serving, args.model)
    registry = steps.open_registry(request)
    try:
        model = steps.resolve_model(registry, request)
        info = steps.live_version(registry, model)
        steps.read_current(request, model, None)  # a missing file is found in a second, before the slower part
        reference = steps.training_reference(registry, info, request.home)
        steps.read_current(request, model, reference.dataset)
    finally:
        registry.close()
    import gatewise.flows.monitor  # noqa: F401 - sets Prefect's defaults before Prefect loads

    steps.retrain_deployment()  # a Prefect server named by PREFECT_API_URL must answer


def print_outcome(doc: dict[str, Any]) -> None:
    report = doc["report"]
    current = report["current"]
    where = ", ".join(current["files"]) if current["source"] == "file" else f"{len(current['files'])} served file(s)"
    print(f"model {doc['model']}  live {doc['version']}  reference: run {report['reference']['run_id']} train split, "
          f"{report['reference']['rows']} rows  current: {current['rows']} rows from {where}")
    rows = [[name, col["method"], fmt_num(col["value"]), fmt_num(col["threshold"]), "DRIFT" if col["drifted"] else "ok",
             fmt_num(col.get("weight")), fmt_num(col.get("weighted_drift"))]
            for name, col in report["columns"].items()]
    print_table(["column", "method", "distance", "threshold", "drift", "weight", "weighted"], rows)
    limits = report["thresholds"]
    predictions = report["prediction_drift"]
    print(f"drifted-column share {report['drifted_share']:.3f} (limit {limits['max_drifted_share']:.3f}); "
          f"importance-weighted drift {report['weighted_drift']:.3f} (limit {limits['max_weighted_drift']:.3f}); "
          f"prediction drift {predictions['value']:.3f} (limit {limits['max_prediction_drift']:.3f}; mean probability "
          f"{predictions['reference_mean']:.3f} -> {predictions['current_mean']:.3f})")
    entry = doc["entry"]
    verdict = "DRIFTED: " + "; ".join(doc["reasons"]) if doc["drifted"] else "no drift"
    print(f"{verdict}  (signed monitoring entry {entry['seq']}, {entry['digest'][:16]})")
    retrain = doc["retrain"]
    if retrain is None:
        print("no retrain started")
    elif retrain["how"] == "deployment":
        print(f"retrain started through deployment {retrain['deployment']}: flow run {retrain['flow_run_id']}, "
              f"trigger monitoring entry {entry['seq']}")
    else:
        result = f"promoted {retrain['promoted']}" if retrain["promoted"] else retrain["status"]
        print(f"retrain run {retrain['run_id']} started in process (trigger: monitoring entry {entry['seq']}): {result}")
    print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in doc["timings_s"].items()))


def cmd_monitoring(args: argparse.Namespace) -> int:
    from gatewise.errors import UsageError
    from gatewise.registry.operations import monitoring_entries, runs_triggered_by

    if args.limit < 0:
        raise UsageError(f"--limit must be 0 (all) or a positive number, not {args.limit}")
    with open_registry(args) as registry:
        if args.model not in registry.models():
            raise UsageError(f"unknown model '{args.model}' (known: {', '.join(registry.models()) or 'none'})")
        passes = monitoring_entries(registry, args.model, args.limit)
        triggered = runs_triggered_by(registry, [p["entry"]["seq"] for p in passes])
    documents = [
        {
            "entry": p["entry"],
            "time": p["ledger"]["time"],
            "version": p["version"],
            "drifted": p["drifted"],
            "failed_checks": p["report"].get("failed_checks", []),
            "drifted_share": p["report"].get("drifted_share"),
            "weighted_drift": p["report"].get("weighted_drift"),
            "prediction_drift": (p["report"].get("prediction_drift") or {}).get("value"),
            "thresholds": p["report"].get("thresholds", {}),
            "current": p["report"].get("current", {}),
            "triggered_runs": triggered.get(p["entry"]["seq"], []),
        }
        for p in passes
    ]
    if args.json:
        print_json({"model": args.model, "passes": documents})
        return ExitCode.OK
    if not documents:
        print(f"no monitoring passes recorded for {args.model}")
        return ExitCode.OK
    rows = [
        [str(d["entry"]["seq"]), d["time"][:19], d["version"] or "-", "DRIFT" if d["drifted"] else "ok",
         fmt_num(d["drifted_share"]), fmt_num(d["weighted_drift"]), fmt_num(d["prediction_drift"]),
         str(d["current"].get("rows", "-")), ", ".join(d["triggered_runs"]) or "-"]
        for d in documents
    ]
    print_table(["entry", "time", "live", "verdict", "share", "weighted", "prediction", "rows", "triggered run"], rows)
    return ExitCode.OK
