"""`gatewise deploy VERSION --target NAME` and `gatewise deploy verify DIR`.

The first hands the live version to deployer plugins by hand (a run does it after each
promotion) and signs each outcome; the second checks a deploy bundle with no database, as a
device does before it loads the model. Heavy modules load inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gatewise.cli_common import open_registry, print_json, registry_options
from gatewise.errors import ExitCode, UsageError

VERIFY = "verify"


def add_commands(subparsers: Any, registry_subparsers: Any) -> None:
    """Add the `deploy` command: `deploy VERSION [--target NAME ...]` or `deploy verify DIR`."""
    deploy = subparsers.add_parser(
        "deploy",
        help="hand the live version to deployers, or verify a deploy bundle",
        usage="gatewise deploy VERSION [--target NAME] [--dir DIR] [--config FILE] [--url URL] [--json]\n"
        "       gatewise deploy verify DIR [--trusted-key KEYID] [--json]",
        description="`gatewise deploy VERSION` hands VERSION, which must be its model's production version, to each "
        "deployer (--target, repeatable; default: [deploy] deployers of gatewise.toml) and signs one deployment entry "
        "each, deployed or failed. Exit 0 when every deployer succeeded, 1 when one failed. "
        "`gatewise deploy verify DIR` checks a bundle written by the `bundle` deployer with nothing but its files: "
        "every signature and key, that a signed promotion names model.onnx's sha256 and cites passing (or waived) "
        "results of the five mandatory gates, contract.json and the manifest's digests. "
        f"Exit 0 when all hold, {int(ExitCode.VERIFY_FAILED)} with one line per problem.",
    )
    deploy.add_argument("subject", metavar="VERSION|verify", help="a version such as arrests:v3, or the word verify")
    deploy.add_argument("directory", nargs="?", type=Path, metavar="DIR", help="with verify: the bundle folder")
    deploy.add_argument("--target", action="append", default=[], metavar="NAME",
                        help="deployer to use (repeatable; default: [deploy] deployers)")
    deploy.add_argument("--dir", type=Path, metavar="DIR", help="folder for the bundle deployer (sets [deploy.params.bundle] dir)")
    deploy.add_argument("--config", type=Path, help="gatewise.toml (default: ./gatewise.toml if present)")
    deploy.add_argument("--trusted-key", action="append", default=[], metavar="KEYID",
                        help="with verify: fail unless the bundle's first key is this key id (repeatable)")
    registry_options(deploy)
    deploy.set_defaults(handler=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    if args.subject == VERIFY:
        return _verify(args)
    if args.directory is not None:
        raise UsageError(f"unexpected argument {args.directory}: `gatewise deploy VERSION` takes --target and --dir")
    if args.trusted_key:
        raise UsageError("--trusted-key belongs to `gatewise deploy verify DIR`")
    from gatewise.config import load_settings, resolve_registry_url
    from gatewise.flows.deploy import check_deployers, deploy_version

    full = load_settings(args.config)
    args.url = resolve_registry_url(args.url, settings=full)  # --url, the variable, then [registry] url of --config
    settings = full.deploy
    names = list(dict.fromkeys(args.target)) or list(settings.deployers)
    params = {name: dict(settings.params.get(name, {})) for name in names}
    if args.dir is not None:
        if "bundle" not in names:
            raise UsageError("--dir is the bundle deployer's folder: add --target bundle")
        params["bundle"]["dir"] = str(args.dir)
    check_deployers(names, params)  # unknown names and bad parameters: one line, nothing recorded
    with open_registry(args, write=True) as registry:
        outcomes = deploy_version(registry, args.subject, names, params)
    if args.json:
        print_json({"version": args.subject, "deployments": [o.to_dict() for o in outcomes]})
    else:
        for line in outcome_lines(outcomes):
            print(line)
    return ExitCode.OK if all(o.deployed for o in outcomes) else ExitCode.ERROR


def outcome_lines(outcomes: Any) -> list[str]:
    """One line per deployment, as `gatewise run` and `gatewise deploy` print them."""
    lines = []
    for o in outcomes:
        entry = f" (entry {o.entry[0]})" if o.entry else ""
        if o.deployed:
            lines.append(f"deployed {o.version} with {o.deployer} to {o.target}{entry}")
        else:
            lines.append(f"deployment of {o.version} with {o.deployer} FAILED{entry}: {o.detail.get('error')}")
    return lines


def _verify(args: argparse.Namespace) -> int:
    if args.directory is None:
        raise UsageError("`gatewise deploy verify` needs the bundle folder: gatewise deploy verify DIR")
    if args.target or args.dir or args.config or args.url:
        raise UsageError("`gatewise deploy verify DIR` reads only the folder: drop --target, --dir, --config and --url")
    from gatewise.registry.release import verify_deploy_bundle

    check = verify_deploy_bundle(args.directory, tuple(args.trusted_key))
    if args.json:
        print_json(check.to_dict())
    else:
        for problem in check.problems:
            print(str(problem))
        if check.ok:
            trust = "key pinned" if args.trusted_key else "signer not pinned: pass --trusted-key KEYID to require your registry's key"
            print(f"OK: {check.version} sha256 {check.sha256} is a promoted, gate-passed version; {check.entries} signed entries "
                  f"checked in {check.seconds:.2f} s ({trust})")
        else:
            print(f"FAILED: {len(check.problems)} problem(s) in {check.directory}: do not load this model")
    return ExitCode.OK if check.ok else ExitCode.VERIFY_FAILED
