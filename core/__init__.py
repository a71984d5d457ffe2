"""gatewise: governed model optimization.

The public API is kept light: importing ``gatewise`` loads no heavy library (torch, prefect,
evidently, great_expectations), so the CLI and registry queries answer fast.
"""

__version__ = "0.1.0"

# The plugin API this gatewise provides, "MAJOR.MINOR". A plugin declares the API it needs with
# ``GATEWISE_PLUGIN_API = "MAJOR.MINOR"`` on its entry-point module (or object). It loads when the
# majors are equal and its minor is at most this one's; otherwise it is refused at load time,
# like a plugin that fails to import. A plugin that declares nothing loads (shown as undeclared by
# `gatewise plugins ls`). The minor grows when the API gains something (a hook, an optional
# method); the major when something a plugin relies on changes or goes.
PLUGIN_API_VERSION = "1.0"

from gatewise.errors import GatewiseError, UsageError  # noqa: E402

__all__ = ["__version__", "PLUGIN_API_VERSION", "GatewiseError", "UsageError"]
