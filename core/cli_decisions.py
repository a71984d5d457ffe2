"""`gatewise keys init|show|rotate|revoke`, `gatewise promote`, `gatewise rollback`, `gatewise registry history`.

Key management and human decisions, each a signed ledger entry. The registry is imported inside
each handler so that `gatewise --help` stays fast. Nothing here ever prints a private key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gatewise.cli_common import (
    fmt_num,
    warn_unverified,
    open_registry,
    print_json,
    print_table,
    registry_options,
    registry_url,
)
from gatewise.errors import UsageError


def add_commands(subparsers: Any, registry_subparsers: Any) -> None:
    """Add `keys`, `promote`, `rollback` to the main CLI and `history` to `gatewise registry`."""
    keys = subparsers.add_parser(
        "keys",
        help="create, list, rotate and revoke signing keys",
        description="Signing keys: the pipeline's and approvers' personal keys. Every change is a signed ledger entry; "
        "private key files are owner-only (0600 in a 0700 directory) and never printed.",
    )
    commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        help="create the pipeline key (and registry), or an approver's personal key",
        description="Without --approver: create the registry and its pipeline key if absent, and print the key id. "
        "With --approver NAME: create NAME's personal key (or read --key-file if it exists) and introduce its public key "
        "in the ledger, signed by the pipeline key: the operator vouches for the approver.",
    )
    init.add_argument("--approver", metavar="NAME", help="create and introduce this approver's personal key")
    init.add_argument("--operator", metavar="NAME", help="the operator who holds the pipeline key, signed into its key entry when the registry is created")
    init.add_argument("--key-file", type=Path, metavar="PATH", help="where the approver's key lives (default: <home>/keys/approvers/NAME.ed25519)")
    registry_options(init)
    init.set_defaults(handler=_keys_init)

    show = commands.add_parser("show", help="list every key: id, name, role, status, introducing entry",
                               description="List every key the ledger introduced, with its status (active, rotated, revoked).")
    registry_options(show)
    show.set_defaults(handler=_keys_show)

    rotate = commands.add_parser(
        "rotate",
        help="replace the pipeline key or an approver's key",
        description="Write a new key, record the rotation (signed by the pipeline key) and put the new key in the old "
        "file's place. The old key signs nothing after the rotation entry.",
    )
    rotate.add_argument("--approver", metavar="NAME", help="rotate this approver's key (default: the pipeline key)")
    rotate.add_argument("--key-file", type=Path, metavar="PATH", help="the approver's key file (default: <home>/keys/approvers/NAME.ed25519)")
    rotate.add_argument("--reason", help="why the key is rotated (recorded)")
    registry_options(rotate)
    rotate.set_defaults(handler=_keys_rotate)

    revoke = commands.add_parser(
        "revoke",
        help="revoke a key: anything it signs afterwards fails verification",
        description="Record, signed by the pipeline key, that a key is revoked. Entries it signs after the revocation "
        "are reported by `gatewise registry verify`.",
    )
    revoke.add_argument("keyid", nargs="?", metavar="KEYID", help="the key id, or a unique prefix of 8+ characters")
    revoke.add_argument("--approver", metavar="NAME", help="revoke this approver's active key")
    revoke.add_argument("--reason", required=True, help="why the key is revoked (recorded)")
    registry_options(revoke)
    revoke.set_defaults(handler=_keys_revoke)

    promote = subparsers.add_parser(
        "promote",
        help="promote a version on an approver's signature, waiving failed gates",
        description="Move the production alias to VERSION, signed with the approver's own key. Every mandatory gate needs "
        "a recorded result; each gate whose latest result failed must be named with --waive (and only those can be). "
        "A waiver never turns a failure into a pass: history shows both. Exit 3 when a gate blocks the promotion.",
    )
    promote.add_argument("version", metavar="VERSION", help='a version name such as "arrests:v3"')
    promote.add_argument("--waive", action="append", default=[], metavar="GATE", help="a failed gate to override (repeatable)")
    promote.add_argument("--reason", required=True, help="why (recorded in the signed waiver and promotion)")
    promote.add_argument("--approver", required=True, metavar="NAME", help="the approver whose key signs")
    promote.add_argument("--key-file", type=Path, metavar="PATH", help="the approver's key (default: <home>/keys/approvers/NAME.ed25519)")
    registry_options(promote)
    promote.set_defaults(handler=_promote)

    rollback = subparsers.add_parser(
        "rollback",
        help="move a model's production alias back to an earlier promoted version",
        description="Move MODEL's production alias back (default: to the production version before the current one) "
        "with a signed rollback record; the target must have been promoted before.",
    )
    rollback.add_argument("model", metavar="MODEL")
    rollback.add_argument("--to", metavar="VERSION", help="the earlier promoted version to restore")
    rollback.add_argument("--reason", required=True, help="why (recorded)")
    rollback.add_argument("--approver", metavar="NAME", help="sign with this approver's key (default: the pipeline key)")
    rollback.add_argument("--key-file", type=Path, metavar="PATH", help="the approver's key (default: <home>/keys/approvers/NAME.ed25519)")
    registry_options(rollback)
    rollback.set_defaults(handler=_rollback)

    history = registry_subparsers.add_parser(
        "history",
        help="every promotion, rollback and waiver of a model",
        description="Every promotion, rollback and waiver of MODEL in ledger order: time, signer (key id, name, role), "
        "version, and the gate results each relied on (gate, verdict, value, threshold, entry digest).",
    )
    history.add_argument("model", metavar="MODEL")
    history.add_argument("--limit", type=int, default=100, help="the newest N decisions (default 100; 0 = all)")
    registry_options(history)
    history.set_defaults(handler=_history)








# -- keys ------------------------------------------------------------------------------------------


def _keys_init(args: argparse.Namespace) -> int:
    from gatewise.registry import Registry

    if args.approver is None:
        if args.key_file is not None:
            raise UsageError("--key-file is for an approver's key: give --approver NAME (the pipeline key is <home>/keys/pipeline.ed25519)")
        if args.operator is not None:
            from gatewise.registry.keys import check_approver_name

            check_approver_name(args.operator)
        with Registry.open(Path(args.home), registry_url(args), operator=args.operator) as registry:
            key = registry.pipeline_key
            state = next(s for s in registry.keys() if s.keyid == key.keyid)
        if args.operator is not None and state.name != args.operator:
            print(f"gatewise: warning: the pipeline key was introduced at entry {state.introduced_seq} as held by "
                  f"'{state.name}'; a signed name does not change (rotate the key to name a new holder)", file=sys.stderr)
        if args.json:
            print_json({"key": state.to_dict(), "key_file": str(key.path)})
        else:
            print(f"pipeline key {key.keyid} of operator {state.name} in {key.path} (introduced at entry {state.introduced_seq})")
        return 0
    if args.operator is not None:
        raise UsageError("--operator names the pipeline key's holder: give it without --approver")
    with open_registry(args, write=True) as registry:
        state, seq, created = registry.introduce_approver(args.approver, args.key_file)
        path = _approver_path(args, registry.home)
    if args.json:
        print_json({"key": state.to_dict(), "key_file": str(path), "created": created, "entry": seq})
    else:
        print(f"approver {args.approver}: key {state.keyid} {'created in' if created else 'read from'} {path}")
        print(f"introduced at entry {seq}, signed by the pipeline key {state.introduced_by[:16]}")
    return 0


def _approver_path(args: argparse.Namespace, home: Path) -> Path:
    from gatewise.registry.keys import approver_key_file

    return approver_key_file(home, args.approver, args.key_file)[0]


def _keys_show(args: argparse.Namespace) -> int:
    with open_registry(args, write=False) as registry:
        keys = registry.keys()
    if args.json:
        print_json([state.to_dict() for state in keys])
        return 0
    rows = [
        (
            state.keyid[:16],
            state.name or "-",
            state.role,
            state.status,
            str(state.introduced_seq),
            str(state.changed_seq) if state.changed_seq else "-",
            state.successor[:16] if state.successor else "-",
        )
        for state in keys
    ]
    print_table(("KEYID", "NAME", "ROLE", "STATUS", "INTRODUCED", "CHANGED", "SUCCESSOR"), rows)
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    if args.key_file is not None and args.approver is None:
        raise UsageError("--key-file is for an approver's key: give --approver NAME")
    with open_registry(args, write=True) as registry:
        old, new, seq = registry.rotate_key(args.approver, args.key_file, args.reason)
        path = _approver_path(args, registry.home) if args.approver else registry.pipeline_key.path
    if args.json:
        print_json({"rotated": old.to_dict(), "key": new.to_dict(), "key_file": str(path), "entry": seq})
    else:
        print(f"{old.describe()} {old.keyid[:16]} rotated at entry {seq}: the new key {new.keyid} is in {path}")
        if args.approver is None:
            print("copy it to every machine that writes to this registry; the old key signs nothing more")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    with open_registry(args, write=True) as registry:
        state, seq = registry.revoke_key(args.keyid, approver=args.approver, reason=args.reason)
    if args.json:
        print_json({"key": state.to_dict(), "entry": seq})
    else:
        print(f"{state.describe()} {state.keyid[:16]} revoked at entry {seq}: {args.reason}")
    return 0


# -- decisions -------------------------------------------------------------------------------------


def _promote(args: argparse.Namespace) -> int:
    with open_registry(args, write=True) as registry:
        decision = registry.approve_promotion(
            args.version, approver=args.approver, reason=args.reason, waive=args.waive, key_file=args.key_file
        )
    if args.json:
        print_json(decision.to_dict())
        return 0
    if decision.waived:
        print(f"waiver (entry {decision.waiver_seq}) by {decision.approver} overrides the failed {', '.join(decision.waived)}: "
              "the results stay failed in the registry")
    print(f"promoted {decision.version} to production (entry {decision.seq}, previous {decision.previous_version or '-'}), "
          f"signed by approver {decision.approver} ({decision.signer[:16]})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    with open_registry(args, write=True) as registry:
        decision = registry.rollback(args.model, reason=args.reason, to=args.to, approver=args.approver, key_file=args.key_file)
    if args.json:
        print_json(decision.to_dict())
        return 0
    signer = f"approver {decision.approver}" if decision.approver else "the pipeline key"
    print(f"rolled {decision.model} back from {decision.previous_version} to {decision.version} (entry {decision.seq}), "
          f"signed by {signer} ({decision.signer[:16]})")
    return 0


def _history(args: argparse.Namespace) -> int:
    with open_registry(args, write=False) as registry:
        history = registry.history(args.model, args.limit)
        warn_unverified(registry)
    if args.json:
        print_json(history)
        return 0
    events = history["events"]
    shown = f"the newest {len(events)} decision(s); older ones left out (--limit 0 shows all)" if history["truncated"] else f"{len(events)} decision(s)"
    print(f"model {history['model']}: production {history['production'] or '-'}; {shown}")
    for event in events:
        signer = event["signer"]
        who = f"approver {signer['name']}" if signer["role"] == "approver" else (signer["role"] or "unknown")
        moved = f" (previous {event['previous_version'] or '-'})" if event["event"] != "waiver" else ""
        print()
        print(f"entry {event['seq']}  {event['time']}  {event['event']} {event['version']}{moved}")
        print(f"  signed by {who} key {(signer['keyid'] or '?')[:16]}; reason: {event['reason']}")
        if event["event"] == "rollback":
            print(f"  restores the promotion in entry {event['restores']['seq']}")
        if event["event"] == "promotion":
            policy = event.get("policy")
            print(f"  gated by policy entry {policy['seq']} (set by approver {policy['approver']}: {policy['reason']})" if policy
                  else "  gated by the built-in default thresholds (no signed policy)")
        if event["gate_results"]:
            rows = [
                (
                    "  " + str(g["gate"]),
                    "pass" if g["passed"] else "FAIL",
                    fmt_num(g["value"]),
                    fmt_num(g["threshold"]),
                    str(g["seq"]),
                    (g["digest"] or "")[:16],
                    f"waived (entry {g['waived_by']})" if g["waived_by"] else "",
                )
                for g in event["gate_results"]
            ]
            print_table(("  GATE", "VERDICT", "VALUE", "THRESHOLD", "ENTRY", "DIGEST", ""), rows)
    return 0




