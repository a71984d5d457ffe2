"""gatewise.registry: the signed, hash-chained ledger of runs, candidates, gate verdicts and promotions.

The registry never imports gates, flows or plugins: it stores, signs and verifies statements.
"""

from gatewise.registry.registry import MANDATORY_GATES, Registry, VersionInfo
from gatewise.registry.verify import Problem, VerifyReport

__all__ = ["MANDATORY_GATES", "Problem", "Registry", "VerifyReport", "VersionInfo"]
