"""`gatewise schedule`: retrain (or monitor) on a cron or an interval, as a Prefect deployment on the
server at PREFECT_API_URL; `schedule ls` and `schedule rm NAME` (docs/operations.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gatewise.cli_common import print_json, print_table
from gatewise.errors import ExitCode, UsageError

DEFAULT_NAME = "scheduled"


def add_commands(commands: Any, registry_commands: Any) -> None:
    schedule = commands.add_parser(
        "schedule",
        help="retrain (or monitor) on a schedule through a Prefect server; `schedule ls`, `schedule rm NAME`",
        description="Register the retrain flow (or, with --monitor, the monitor flow) as a Prefect deployment on the "
        "server at PREFECT_API_URL. With --work-pool, that pool's workers run it; without, this command serves it "
        "in the foreground until interrupted. `gatewise schedule ls` lists the deployments, "
        "`gatewise schedule rm NAME` removes one. Exit 0 ok, 2 bad input or no reachable server.",
    )
    schedule.add_argument("action", nargs="?", choices=("ls", "rm"), help="ls: list the schedules; rm NAME: remove one")
    schedule.add_argument("target", nargs="?", metavar="NAME", help="the schedule `rm` removes (FLOW/NAME or NAME)")
    timing = schedule.add_mutually_exclusive_group()
    timing.add_argument("--cron", metavar="EXPR", help="cron expression, e.g. '0 3 * * *' (03:00 every day, UTC)")
    timing.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS instead of on a cron")
    schedule.add_argument("--name", help=f"deployment name (default: {DEFAULT_NAME}); the deployment is FLOW/NAME")
    schedule.add_argument("--work-pool", metavar="POOL", help="send runs to this Prefect work pool's workers instead of serving here")
    schedule.add_argument("--monitor", action="store_true", help="schedule the monitor flow instead of retrain")
    runopts = schedule.add_argument_group("run options (as `gatewise run`; paths are stored absolute)")
    runopts.add_argument("--data", type=Path, help="CSV or parquet file (default: the bundled data)")
    runopts.add_argument("--label", help="label column of --data")
    runopts.add_argument("--positive", help="label value that counts as positive")
    runopts.add_argument("--sensitive", help="sensitive column(s), comma-separated")
    runopts.add_argument("--current", type=Path, help="current data for the drift gate (with --monitor: the inputs to judge)")
    runopts.add_argument("--config", type=Path, help="gatewise.toml, read at each run (default: ./gatewise.toml if present)")
    monopts = schedule.add_argument_group("monitor options (with --monitor)")
    monopts.add_argument("--from-serving", action="store_true", help="judge the rows `gatewise serve` sampled")
    monopts.add_argument("--model", help="model to monitor")
    schedule.add_argument("--json", action="store_true", help="print one JSON document (ls, and --work-pool)")
    schedule.set_defaults(handler=cmd_schedule)


def cmd_schedule(args: argparse.Namespace) -> int:
    if args.action == "ls":
        _no_create_options(args, "ls")
        return cmd_ls(args)
    if args.action == "rm":
        _no_create_options(args, "rm")
        if not args.target:
            raise UsageError("schedule rm needs the NAME of a schedule (see `gatewise schedule ls`)")
        return cmd_rm(args)
    if args.target:
        raise UsageError(f"unexpected argument '{args.target}' (did you mean `gatewise schedule rm {args.target}`?)")
    return cmd_create(args)


def _no_create_options(args: argparse.Namespace, action: str) -> None:
    given = [flag for flag, value in (("--cron", args.cron), ("--interval", args.interval), ("--work-pool", args.work_pool),
                                      ("--name", args.name), ("--data", args.data), ("--config", args.config)) if value is not None]
    if given:
        raise UsageError(f"schedule {action} takes no {', '.join(given)}")
    if action == "ls" and args.target:
        raise UsageError("schedule ls takes no NAME")


def cmd_create(args: argparse.Namespace) -> int:
    from gatewise.flows.execution import require_server
    from gatewise.flows.schedules import ScheduleRequest, check_timing, deploy_to_pool, serve

    check_timing(args.cron, args.interval)
    name = args.name or DEFAULT_NAME
    if "/" in name or not name.strip():
        raise UsageError(f"--name '{name}' must be a plain name (no '/'): the deployment is FLOW/NAME")
    url = require_server()
    flow = "monitor" if args.monitor else "retrain"
    parameters = monitor_parameters(args) if args.monitor else retrain_parameters(args)
    request = ScheduleRequest(flow=flow, name=name, cron=args.cron, interval_s=args.interval,
                              parameters=parameters, work_pool=args.work_pool)
    when = f"cron '{args.cron}'" if args.cron else f"every {args.interval:g} s"
    if args.work_pool:
        deployment_id = deploy_to_pool(request)
        if args.json:
            print_json({"schedule": request.full_name, "id": deployment_id, "work_pool": args.work_pool,
                        "timing": {"cron": args.cron, "interval_s": args.interval}, "parameters": parameters, "server": url})
        else:
            print(f"scheduled {request.full_name} ({when}) on {url}: work pool '{args.work_pool}' runs it; "
                  f"`gatewise schedule rm {name}` removes it")
        return ExitCode.OK
    print(f"serving {request.full_name} ({when}) on {url} from this process; Ctrl-C stops serving "
          f"(`gatewise schedule rm {name}` removes it from the server)", flush=True)
    try:
        serve(request)
    except KeyboardInterrupt:
        pass  # Prefect pauses the deployment as it stops serving
    print(f"stopped serving {request.full_name}; it stays on the server, paused, until `gatewise schedule rm {name}`")
    return ExitCode.OK


def retrain_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The retrain deployment's parameters, checked now as `gatewise run` checks them, so a typo
    fails here rather than at 03:00; paths absolute, since a worker runs elsewhere."""
    if args.from_serving or args.model:
        raise UsageError("--from-serving and --model are monitor options: add --monitor")
    if args.data is None and (args.label or args.positive):
        raise UsageError("--label and --positive need --data; the bundled data brings its own")
    sensitive = [s.strip() for s in args.sensitive.split(",") if s.strip()] if args.sensitive else None
    config = _config_path(args.config)
    from gatewise.config import Settings, load_settings
    from gatewise.flows.steps import RunRequest, preflight

    settings = load_settings(config) if config else Settings()
    home = Path(args.home).resolve()
    preflight(RunRequest(settings=settings, home=home, data_path=_absolute(args.data), label=args.label,
                         positive=args.positive, sensitive=tuple(sensitive) if sensitive else None,
                         current_path=_absolute(args.current)))
    return {
        "home": str(home),
        "config": str(config) if config else None,
        "data": str(_absolute(args.data)) if args.data else None,
        "label": args.label,
        "positive": args.positive,
        "sensitive": sensitive,
        "current": str(_absolute(args.current)) if args.current else None,
    }


def monitor_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The monitor deployment's parameters (the monitor flow checks them at each run)."""
    extra = [flag for flag, value in (("--data", args.data), ("--label", args.label), ("--positive", args.positive),
                                      ("--sensitive", args.sensitive)) if value is not None]
    if extra:
        raise UsageError(f"--monitor takes no {', '.join(extra)}: the monitor judges the live version's inputs")
    if args.current is None and not args.from_serving:
        raise UsageError("--monitor needs --current FILE or --from-serving: what to judge at each run")
    if args.current is not None and args.from_serving:
        raise UsageError("give one of --current and --from-serving")
    if args.current is not None and not args.current.exists():
        raise UsageError(f"--current file not found: {args.current}")
    config = _config_path(args.config)
    return {
        "home": str(Path(args.home).resolve()),
        "config": str(config) if config else None,
        "current": str(_absolute(args.current)) if args.current else None,
        "from_serving": bool(args.from_serving),
        "model": args.model,
    }


def _config_path(config: Path | None) -> Path | None:
    """--config, else ./gatewise.toml where it exists (as `gatewise run`), absolute."""
    if config is None:
        config = Path("gatewise.toml") if Path("gatewise.toml").exists() else None
        if config is None:
            return None
    if not config.exists():
        raise UsageError(f"config file not found: {config}")
    return config.resolve()


def _absolute(path: Path | None) -> Path | None:
    return path.resolve() if path is not None else None


def cmd_ls(args: argparse.Namespace) -> int:
    from gatewise.flows.execution import require_server
    from gatewise.flows.schedules import list_schedules

    require_server()
    schedules = list_schedules()
    if args.json:
        print_json({"schedules": [s.__dict__ for s in schedules]})
        return ExitCode.OK
    if not schedules:
        print("no schedules: `gatewise schedule --cron EXPR` creates one")
        return ExitCode.OK
    rows = [[s.name, s.schedule + (" (paused)" if s.paused else ""), s.runs_on, s.status,
             s.parameters.get("data") or s.parameters.get("current") or "-"] for s in schedules]
    print_table(["schedule", "when", "runs on", "status", "data"], rows)
    return ExitCode.OK


def cmd_rm(args: argparse.Namespace) -> int:
    from gatewise.flows.execution import require_server
    from gatewise.flows.schedules import remove_schedule

    require_server()
    removed = remove_schedule(args.target)
    if args.json:
        print_json({"removed": removed.name, "id": removed.id})
    else:
        print(f"removed {removed.name}" + ("" if removed.runs_on != "served" else "; stop the process that serves it too"))
    return ExitCode.OK
