"""`gatewise deploy`: not built yet (see the operations issue)."""

from __future__ import annotations

from typing import Any


def add_commands(commands: Any, registry_commands: Any) -> None:
    """Registers nothing yet."""
