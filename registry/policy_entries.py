"""The gating policy as a signed decision: the thresholds of the five gates, set by a named approver.

A policy entry (policy/v1) holds every threshold of ``[gates]`` (defaults filled in), the digest
of that policy, the approver's name and key id, and the reason; the approver's own key signs it.
The newest signed policy entry is the active one. A run whose ``[gates]`` are looser than the
active policy on any threshold may register its candidates but not promote them; one that is
stricter may. Which way is looser is derived from each field of gatewise.policy.GatePolicy
(``looser_when``); a field with no known direction is an ImportError-grade mistake that
tests/test_policy_entries.py pins.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from gatewise.errors import RegistryError, UsageError
from gatewise.registry import statements as st

SUBJECT = "gate-policy"
LARGER, SMALLER, DIFFERENT, NEVER = "larger", "smaller", "different", "never"

# Fields whose name does not say which way is looser (a max_ field is looser when larger, a min_
# field when smaller). Measurement settings that only shape the evidence are never looser.
_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("accuracy_regression", "metric"): DIFFERENT,  # another metric is another policy
    ("accuracy_regression", "score_difference_quantile"): SMALLER,  # a lower quantile ignores more rows
    ("accuracy_regression", "bootstrap_samples"): NEVER,  # the interval is evidence, not the verdict
    ("fairness", "min_group_size"): LARGER,  # larger: more groups are too small to judge
    ("fairness", "min_group_class_rows"): LARGER,
    ("robustness", "noise_scale"): SMALLER,  # gentler perturbations
    ("robustness", "category_swap_rate"): SMALLER,
    ("robustness", "missing_rate"): SMALLER,
    ("robustness", "bootstrap_samples"): NEVER,
    ("robustness", "seed"): NEVER,
    ("drift", "importance_repeats"): NEVER,  # precision of the importance estimate
}


def looser_when(section: str, name: str) -> str:
    """Which way field ``name`` of ``[gates.<section>]`` becomes looser: LARGER, SMALLER,
    DIFFERENT (any change) or NEVER (not a threshold). KeyError for a field with no direction."""
    found = _EXCEPTIONS.get((section, name))
    if found is not None:
        return found
    if name.startswith("max_"):
        return LARGER
    if name.startswith("min_"):
        return SMALLER
    raise KeyError(f"[gates.{section}] {name} has no known direction: add it to gatewise.registry.policy_entries._EXCEPTIONS")


@dataclass(frozen=True)
class Loosening:
    """One threshold of a run's configuration that is looser than the signed policy's."""

    gate: str
    name: str
    configured: Any
    signed: Any

    @property
    def by(self) -> float | None:
        if isinstance(self.configured, (int, float)) and isinstance(self.signed, (int, float)):
            return abs(float(self.configured) - float(self.signed))
        return None

    def describe(self) -> str:
        by = f" (looser by {self.by:.4g})" if self.by is not None else ""
        return f"[gates.{self.gate}] {self.name} = {self.configured} vs {self.signed} signed{by}"

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "name": self.name, "configured": self.configured, "signed": self.signed, "by": self.by}


def loosenings(configured: dict[str, Any], signed: dict[str, Any]) -> list[Loosening]:
    """Every threshold of ``configured`` (a ``[gates]`` document) looser than ``signed``'s.

    A field missing on either side takes the built-in default, so older documents compare too."""
    from gatewise.policy import GatePolicy

    defaults = GatePolicy().model_dump(mode="json")
    found = []
    for gate, fields in defaults.items():
        mine, theirs = {**fields, **(configured.get(gate) or {})}, {**fields, **(signed.get(gate) or {})}
        for name in fields:
            a, b, way = mine[name], theirs[name], looser_when(gate, name)
            if way == NEVER or a == b:
                continue
            if way == DIFFERENT or (way == LARGER and a > b) or (way == SMALLER and a < b):
                found.append(Loosening(gate, name, a, b))
    return found


# -- reading the policy file ------------------------------------------------------------------------


def read_policy_file(path: Path) -> dict[str, Any]:
    """The ``[gates]`` of a TOML file (a gatewise.toml, or a file of ``[gates.*]`` sections alone),
    validated and with every default filled in."""
    from gatewise.config import parse_settings

    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"policy file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"policy file {path} is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    if "gates" not in raw:
        raise UsageError(f"{path}: no [gates] sections: a policy sets the thresholds of [gates.<gate>]")
    settings = parse_settings({"gates": raw["gates"]}, origin=str(path))
    return settings.gates.model_dump(mode="json")


def policy_digest(gates: dict[str, Any]) -> str:
    """The digest runs record as ``policy_digest`` (gatewise.config.Settings.gates_digest)."""
    return st.sha256_hex(st.canonical_json(gates).encode())


# -- signed entries -------------------------------------------------------------------------------


class PolicyFacts(NamedTuple):
    """What verification checks in order: the approver the entry names (the signer's holder)."""

    approver: tuple[str, str]


def policy_facts(p: dict[str, Any]) -> PolicyFacts:
    approver = p["approver"]
    return PolicyFacts((approver["name"], approver["keyid"]))


@dataclass(frozen=True)
class PolicyEntry:
    seq: int
    digest: str
    time: str
    approver: str
    keyid: str
    reason: str
    policy_digest: str
    gates: dict[str, Any]
    previous: dict[str, Any] | None

    def ref(self) -> dict[str, Any]:
        return {"seq": self.seq, "digest": self.digest}

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.ref(), "time": self.time, "approver": {"name": self.approver, "keyid": self.keyid},
            "reason": self.reason, "policy_digest": self.policy_digest, "gates": self.gates, "previous": self.previous,
        }


def _entry(signed: Any) -> PolicyEntry:
    p = signed.predicate
    approver = p.get("approver") or {}
    return PolicyEntry(signed.seq, signed.digest, signed.time, approver.get("name"), approver.get("keyid"), p.get("reason"),
                       p.get("policy_digest"), p.get("gates") or {}, p.get("previous"))


def policy_entries(ledger: Any) -> list[PolicyEntry]:
    """Every signed policy entry of a gatewise.registry.signed.SignedLedger, oldest first."""
    return [_entry(e) for e in ledger.about(SUBJECT, (st.POLICY,))]


def active_policy(ledger: Any) -> PolicyEntry | None:
    """The newest signed policy entry, or None (the built-in defaults apply)."""
    found = policy_entries(ledger)
    return found[-1] if found else None


def set_policy(registry: Any, gates: dict[str, Any], *, approver: str, reason: str, key_file: Path | None = None) -> PolicyEntry:
    """Sign ``gates`` (from ``read_policy_file``) as the active policy, with ``approver``'s own key.
    When they are the active policy already, nothing is signed and that entry is returned."""
    from gatewise.registry.keyring import load_approver_key
    from gatewise.registry.signed import SignedLedger

    if not reason or not reason.strip():
        raise UsageError("a policy needs a --reason")
    digest = policy_digest(gates)
    with registry.write() as (conn, writer):
        ledger = SignedLedger(conn)
        key = load_approver_key(registry, conn, approver, key_file)
        previous = active_policy(ledger)
        if previous is not None and previous.policy_digest == digest:
            return previous  # already the active policy: nothing new to sign
        predicate = {
            "gates": gates,
            "policy_digest": digest,
            "approver": {"name": approver, "keyid": key.keyid},
            "reason": reason.strip(),
            "previous": previous.ref() if previous else None,
        }
        seq, entry_digest = writer.append(SUBJECT, digest, st.POLICY, predicate, key=key)
    return read_policies(registry)[-1]


def read_policies(registry: Any) -> list[PolicyEntry]:
    from gatewise.registry.signed import SignedLedger

    with registry.reading() as conn:
        return policy_entries(SignedLedger(conn))


def run_loosenings(ledger: Any, run_id: str) -> tuple[PolicyEntry | None, list[Loosening]]:
    """The active policy, and where the ``[gates]`` signed into run ``run_id``'s entry are looser."""
    active = active_policy(ledger)
    if active is None:
        return None, []
    runs = [e for e in ledger.about(run_id, (st.RUN,)) if e.predicate.get("run_id") == run_id]
    if not runs:
        raise RegistryError(f"no signed run entry for run '{run_id}': run `gatewise registry verify`")
    configured = (runs[0].predicate.get("settings") or {}).get("gates") or {}
    return active, loosenings(configured, active.gates)
