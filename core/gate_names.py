"""The names of the five mandatory gates: the one list that gates, policy and registry import.

It lives in core and imports nothing, so that the registry (which never imports gates) and a
verify worker can read it without loading a gate library or pydantic.
"""

from __future__ import annotations

# Order matters: gates run, are printed and are cited by a promotion in this order. Each name is
# also the module of gatewise.gates that holds the gate (a function of the same name) and the
# section of [gates] in gatewise.toml that sets its thresholds.
MANDATORY_GATES: tuple[str, ...] = ("accuracy_regression", "fairness", "robustness", "drift", "leakage")

__all__ = ["MANDATORY_GATES"]
