"""The deployment stage: hand a promoted version to each configured deployer and sign what happened.

Plain functions, tested without Prefect: the retrain flow calls ``deploy_version`` after the
promotion, and `gatewise deploy VERSION` calls it by hand. A deployer is isolated like a
compressor: whatever it does, its outcome becomes one signed deployment entry and the next one
runs. Nothing here can undo a promotion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewise.errors import GatewiseError, UsageError
from gatewise.hookspecs import Deployed
from gatewise.plugin_manager import Plugins, load_plugins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeploymentOutcome:
    """One deployer's result, as its signed deployment entry records it."""

    deployer: str
    version: str
    target: str
    outcome: str  # "deployed" | "failed"
    detail: dict[str, Any] = field(default_factory=dict)
    entry: tuple[int, str] | None = None  # (seq, digest) of the signed deployment entry

    @property
    def deployed(self) -> bool:
        return self.outcome == "deployed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployer": self.deployer, "version": self.version, "target": self.target, "outcome": self.outcome,
            "detail": self.detail, "entry": {"seq": self.entry[0], "digest": self.entry[1]} if self.entry else None,
        }


def check_deployers(names: tuple[str, ...] | list[str], params: Mapping[str, Mapping[str, Any]], plugins: Plugins | None = None) -> None:
    """Before a run starts: every deployer name is known and its parameters are accepted."""
    plugins = plugins or load_plugins()
    for name in names:
        component = plugins.get("deployer", name).component  # an unknown name lists the known ones
        check = getattr(component, "check_params", None)
        if check is not None:
            check(dict(params.get(name, {})))
    if len(set(names)) != len(names):
        raise UsageError(f"[deploy] deployers names a deployer twice: {', '.join(names)}")
    for name in params:
        if name not in names:
            raise UsageError(f"[deploy.params.{name}] configures a deployer that is not in [deploy] deployers")


def deploy_version(
    registry: Any,
    version: str,
    names: tuple[str, ...] | list[str],
    params: Mapping[str, Mapping[str, Any]],
    plugins: Plugins | None = None,
) -> tuple[DeploymentOutcome, ...]:
    """Hand the live ``version`` to each named deployer in turn; sign one deployment entry each.

    When the version's evidence cannot be gathered (it is not live, its entries or artifact do not
    check out) no deployer is called and each is recorded as failed with that reason.
    """
    from gatewise.registry.operations import record_deployment
    from gatewise.registry.release import gather_release
    from gatewise.registry.statements import jsonable

    plugins = plugins or load_plugins()
    registry.version(version)  # an unknown version is bad input: nothing to deploy, nothing recorded
    try:
        release, refused = gather_release(registry, version), None
    except GatewiseError as exc:
        release, refused = None, str(exc)
    outcomes = []
    for name in names:
        registered = plugins.get("deployer", name)
        info = registered.info
        target, outcome, detail = name, "failed", {}
        if release is None:
            detail = {"error": refused}
        else:
            try:
                result = registered.component.deploy(release, dict(params.get(name, {})))
                if not isinstance(result, Deployed) or not result.target:
                    raise GatewiseError(f"deploy() returned {result!r:.80}, not a gatewise.hookspecs.Deployed with a target")
                target, detail, outcome = str(result.target), jsonable(dict(result.detail)), "deployed"
            except Exception as exc:  # noqa: BLE001 - deployers are isolated: the failure is recorded
                target, detail = name, {"error": _one_line(exc)}
        if outcome == "failed":  # the caller prints it and the ledger keeps it; the log only traces it
            log.info("deployer %s failed for %s: %s", name, version, detail["error"])
        entry = record_deployment(
            registry, version, target=target, outcome=outcome, detail=detail,
            deployer=info.record(),
        )
        outcomes.append(DeploymentOutcome(name, version, target, outcome, detail, entry))
    return tuple(outcomes)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]
