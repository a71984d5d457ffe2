"""gatewise.registry: the signed, hash-chained ledger of runs, candidates, gate verdicts and promotions.

The registry never imports gates, flows or plugins: it stores, signs and verifies statements.
Its public names load on first use, so that importing a submodule (an offline bundle check needs
only the statements) does not load the database layer and its 0.5 s of imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatewise.registry.registry import MANDATORY_GATES, Registry, VersionInfo
    from gatewise.registry.verify import Problem, VerifyReport

__all__ = ["MANDATORY_GATES", "Problem", "Registry", "VerifyReport", "VersionInfo"]
_MODULE_OF = {"MANDATORY_GATES": "registry", "Registry": "registry", "VersionInfo": "registry",
              "Problem": "verify", "VerifyReport": "verify"}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
