"""Exit codes come from one enum: the CLI returns them, --help and docs/cli.md list exactly them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from gatewise.cli import main
from gatewise.errors import ExitCode, GatewiseError, RegistryError, UsageError

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "cli.md"


def test_the_codes_scripts_rely_on():
    assert {code.name: code.value for code in ExitCode} == {
        "OK": 0, "ERROR": 1, "USAGE": 2, "BLOCKED": 3, "VERIFY_FAILED": 4, "INTERRUPTED": 130,
    }
    assert GatewiseError.exit_code is ExitCode.ERROR
    assert UsageError.exit_code is RegistryError.exit_code is ExitCode.USAGE


def test_the_docs_table_is_the_enum():
    section = DOCS.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (.+?) \|$", section, re.MULTILINE)
    assert rows == [(str(code.value), code.name, code.meaning) for code in ExitCode]


def test_help_lists_every_exit_code():
    result = subprocess.run([sys.executable, "-m", "gatewise.cli", "--help"], capture_output=True, text=True, timeout=60, check=True)
    listed = re.findall(r"^  (\d+)\s+(.+)$", result.stdout.split("Exit codes:", 1)[1], re.MULTILINE)
    assert listed == [(str(code.value), code.meaning) for code in ExitCode]


def test_no_module_defines_exit_codes_of_its_own():
    """The numbers live in the enum only: no EXIT_* or VERIFY_FAILED constants, no literal exit_code."""
    pattern = re.compile(r"^\s*(\w*EXIT\w*|VERIFY_FAILED|exit_code)\s*(:[^=]+)?=\s*\d", re.MULTILINE)
    found = [f"{path.relative_to(ROOT)}: {m.group(0).strip()}"
             for folder in ("core", "flows", "gates", "plugins", "registry") for path in sorted((ROOT / folder).glob("*.py"))
             if path != ROOT / "core" / "errors.py"  # the enum itself
             for m in pattern.finditer(path.read_text())]
    assert found == []


def test_the_cli_exits_with_the_enum(home, capsys):
    assert main([]) is ExitCode.USAGE  # no command: the help, exit 2
    assert main(["registry", "ls"]) is ExitCode.USAGE  # no registry here: one line, exit 2
    assert capsys.readouterr().err.strip() == f"gatewise: error: no registry at {home.resolve() / 'registry.db'}: run `gatewise run` first"
    with pytest.raises(SystemExit) as exc:
        main(["registry", "ls", "--no-such-flag"])  # argparse's own exit for a bad option is 2 as well
    assert exc.value.code == ExitCode.USAGE
    assert main(["audit", "verify", str(home / "nowhere")]) is ExitCode.USAGE
