"""`gatewise policy set|show|history`: the gating policy as a ledger entry signed by an approver."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gatewise.cli_common import open_registry, print_json, print_table, registry_options, warn_unverified


def add_commands(subparsers: Any, registry_subparsers: Any) -> None:
    policy = subparsers.add_parser(
        "policy",
        help="the signed gating policy: the thresholds every run is held to",
        description="The thresholds of the five gates as a ledger entry signed by a named approver. Every run is "
        "gated by the newest one (none signed: the built-in defaults); a run whose [gates] are looser on any "
        "threshold registers its candidates but promotes none.",
    )
    commands = policy.add_subparsers(dest="policy_command", metavar="COMMAND")
    commands.required = True
    set_ = commands.add_parser(
        "set", help="sign the [gates] of FILE as the active policy, with an approver's key",
        description="Read the [gates.<gate>] sections of FILE (a gatewise.toml or a file of those sections; unset "
        "thresholds take their defaults) and sign them, with the approver's own key, as the active policy.",
    )
    set_.add_argument("file", type=Path, metavar="FILE", help="TOML file with [gates.<gate>] sections")
    set_.add_argument("--approver", required=True, metavar="NAME", help="the approver whose key signs (gatewise keys init --approver NAME)")
    set_.add_argument("--reason", required=True, metavar="TEXT", help="why these thresholds (signed with them)")
    set_.add_argument("--key-file", type=Path, metavar="PATH", help="the approver's key (default: <home>/keys/approvers/NAME.ed25519)")
    registry_options(set_)
    set_.set_defaults(handler=_set)
    show = commands.add_parser("show", help="the active policy: every threshold, who signed it and why")
    registry_options(show)
    show.set_defaults(handler=_show)
    history = commands.add_parser("history", help="every signed policy, oldest first, with what each changed")
    registry_options(history)
    history.set_defaults(handler=_history)


def _set(args: argparse.Namespace) -> int:
    from gatewise.registry.policy_entries import read_policy_file, set_policy

    gates = read_policy_file(args.file)  # bad input fails before the registry is opened
    with open_registry(args, write=True) as registry:
        before = registry.head()
        entry = set_policy(registry, gates, approver=args.approver, reason=args.reason, key_file=args.key_file)
        unchanged = registry.head() == before
    if args.json:
        print_json({**entry.to_dict(), "signed_now": not unchanged})
        return 0
    if unchanged:
        print(f"already the active policy (entry {entry.seq}, set by approver {entry.approver}): nothing signed")
        return 0
    print(f"policy {entry.policy_digest[:16]} signed by approver {entry.approver} ({entry.keyid[:16]}) at entry {entry.seq}: "
          "every run from now on is held to it")
    return 0


def _show(args: argparse.Namespace) -> int:
    from gatewise.policy import GatePolicy
    from gatewise.registry.policy_entries import policy_digest, read_policies

    with open_registry(args, write=False) as registry:
        entries = read_policies(registry)
        warn_unverified(registry)
    active = entries[-1] if entries else None
    gates = active.gates if active else GatePolicy().model_dump(mode="json")
    if args.json:
        print_json(active.to_dict() if active else {"entry": None, "gates": gates, "policy_digest": policy_digest(gates)})
        return 0
    if active is None:
        print("no signed policy: runs are held to the built-in defaults (docs/gates.md)")
    else:
        print(f"policy entry {active.seq} ({active.digest[:16]}), {active.time}")
        print(f"signed by approver {active.approver} ({active.keyid[:16]}): {active.reason}")
    print_table(("gate", "threshold", "value"), [(gate, name, str(value)) for gate, fields in gates.items() for name, value in fields.items()])
    return 0


def _history(args: argparse.Namespace) -> int:
    from gatewise.policy import GatePolicy
    from gatewise.registry.policy_entries import read_policies

    with open_registry(args, write=False) as registry:
        entries = read_policies(registry)
        warn_unverified(registry)
    if args.json:
        print_json([e.to_dict() for e in entries])
        return 0
    if not entries:
        print("no signed policy: runs are held to the built-in defaults")
        return 0
    before = GatePolicy().model_dump(mode="json")
    for e in entries:
        changed = [f"{gate}.{name} {before[gate].get(name)} -> {value}" for gate, fields in e.gates.items()
                   for name, value in fields.items() if before.get(gate, {}).get(name) != value]
        print(f"entry {e.seq}  {e.time}  approver {e.approver} ({e.keyid[:16]})  {e.reason}")
        print(f"  changed from {'the defaults' if e.previous is None else 'entry ' + str(e.previous['seq'])}: {', '.join(changed) or 'nothing'}")
        before = e.gates
    return 0
