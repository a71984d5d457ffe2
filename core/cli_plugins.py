"""`gatewise plugins ls`: every component the plugin manager loaded, where from, and what it refused."""

from __future__ import annotations

import argparse
import inspect
import os
from pathlib import Path
from typing import Any

from gatewise.cli_common import print_json, print_table


def add_commands(subparsers: Any, registry_subparsers: Any) -> None:
    plugins = subparsers.add_parser(
        "plugins", help="the loaded plugins and their components",
        description="The plugins gatewise loads (built-ins and the entry points of the group 'gatewise').",
    )
    commands = plugins.add_subparsers(dest="plugins_command", metavar="COMMAND")
    commands.required = True
    ls = commands.add_parser(
        "ls", help="every component: kind, version, distribution, plugin API, origin; and load errors",
        description="Every loaded component with its kind, version, distribution, the plugin API it declares and where "
        "it was loaded from; then the plugins and components that were refused (import failures, plugin API "
        "mismatches, missing methods) and those [plugins] disable skips.",
    )
    ls.add_argument("--config", type=Path, help="gatewise.toml, for [plugins] disable (default: ./gatewise.toml if present)")
    ls.add_argument("--json", action="store_true", help="print one JSON document")
    ls.set_defaults(handler=_ls)


def listing(plugins: Any) -> dict[str, Any]:
    """What `plugins ls --json` prints, from loaded ``gatewise.plugin_manager.Plugins``."""
    from gatewise import PLUGIN_API_VERSION, __version__
    from gatewise.plugin_manager import AUTOLOAD_ENV, KINDS

    components = []
    for kind in KINDS:
        for registered in plugins.components(kind):
            info = registered.info
            try:
                module_file = inspect.getsourcefile(type(registered.component))
            except TypeError:
                module_file = None
            components.append({
                "name": info.name, "kind": kind, "version": info.version, "distribution": info.distribution,
                "plugin_api": info.plugin_api, "entry_point": plugins.entry_point(registered.plugin),
                "plugin": plugins.manager.get_name(registered.plugin), "module_file": module_file,
                "code_sha256": info.code_sha256, "distribution_sha256": info.distribution_sha256,
            })
    return {
        "gatewise": __version__, "plugin_api": PLUGIN_API_VERSION,
        "autoload": not os.environ.get(AUTOLOAD_ENV),
        "components": components,
        "load_errors": [{"distribution": f.distribution, "entry_point": f.entry_point, "reason": f.reason,
                         "kind": f.kind, "component": f.component, "error": f.error, "message": f.describe()}
                        for f in plugins.failures],
        "disabled": [{"distribution": s.distribution, "entry_point": s.entry_point} for s in plugins.skipped],
    }


def _ls(args: argparse.Namespace) -> int:
    from gatewise.config import load_settings
    from gatewise.plugin_manager import AUTOLOAD_ENV, load_plugins

    listed = listing(load_plugins(load_settings(args.config).plugins.disable))
    if args.json:
        print_json(listed)
        return 0
    print(f"gatewise {listed['gatewise']}, plugin API {listed['plugin_api']}")
    rows = [(c["name"], c["kind"], c["version"], c["distribution"], c["plugin_api"],
             f"entry point {c['entry_point']}" if c["entry_point"] else f"built-in {c['plugin']}")
            for c in listed["components"]]
    print_table(("NAME", "KIND", "VERSION", "DISTRIBUTION", "API", "LOADED FROM"), rows)
    if any(c["plugin_api"] == "undeclared" for c in listed["components"]):
        print(f"\nAPI undeclared: the plugin sets no GATEWISE_PLUGIN_API; it is loaded as if written for {listed['plugin_api']}")
    if not listed["autoload"]:
        print(f"\nentry-point plugins are off ({AUTOLOAD_ENV} is set): only the built-ins are loaded")
    if listed["load_errors"]:
        print("\nnot loaded:")
        for error in listed["load_errors"]:
            print(f"  {error['message']}")
    if listed["disabled"]:
        print("\ndisabled by [plugins] disable:")
        for skipped in listed["disabled"]:
            print(f"  plugin '{skipped['entry_point']}' of distribution '{skipped['distribution']}'")
    return 0
