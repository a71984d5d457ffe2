"""What the registry command groups of the CLI share: their options, opening the registry, output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


URL_HELP = "registry database URL (default: $GATEWISE_REGISTRY_URL, else [registry] url in ./gatewise.toml, else <home>/registry.db)"


def registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    url_option(parser)


def url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help=URL_HELP)


def registry_url(args: argparse.Namespace) -> str | None:
    """The registry URL of a command: gatewise.config.resolve_registry_url with its --url flag."""
    from gatewise.config import resolve_registry_url

    return resolve_registry_url(args.url)


def open_registry(args: argparse.Namespace, *, write: bool = False) -> Any:
    """The registry of ``args.home``. Neither a read nor a write creates one: a missing registry is
    one line, exit 2 (only `gatewise run` and `gatewise keys init` create a registry)."""
    from gatewise.registry import Registry

    home, url = Path(args.home), registry_url(args)
    if not write:
        return Registry.open(home, url, create=False)
    Registry.open(home, url, create=False).close()
    return Registry.open(home, url)


def warn_unverified(registry: Any) -> None:
    """One warning line on stderr when the last `registry verify` failed or checked an older head."""
    warning = registry.verification_warning()
    if warning:
        print(f"gatewise: warning: {warning}", file=sys.stderr)


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


def fmt_num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def print_table(header: tuple[str, ...] | list[str], rows: list[tuple[str, ...]] | list[list[str]]) -> None:
    """Columns aligned to their widest cell; trailing blanks trimmed."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
