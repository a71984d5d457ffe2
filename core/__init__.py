"""gatewise: governed model optimization.

The public API is kept light: importing ``gatewise`` loads no heavy library (torch, prefect,
evidently, great_expectations), so the CLI and registry queries answer fast.
"""

__version__ = "0.1.0"

from gatewise.errors import GatewiseError, UsageError  # noqa: E402

__all__ = ["__version__", "GatewiseError", "UsageError"]
