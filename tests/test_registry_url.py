"""Which registry a command opens: --url, then $GATEWISE_REGISTRY_URL, then [registry] url, then the home.

Read and decision commands never create a registry, so each names the registry it looked for in
its one-line error: that shows, through the real CLI, which URL won.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from gatewise.cli import build_parser, main
from gatewise.config import resolve_registry_url
from gatewise.errors import ExitCode

# Every command that opens the registry, with the arguments it needs. A registry subcommand
# missing here fails test_every_registry_subcommand_is_covered.
COMMANDS = {
    "registry ls": [],
    "registry show": ["arrests:v1"],
    "registry verify": [],
    "registry gates": [],
    "registry history": ["arrests"],
    "registry waivers": [],
    "registry monitoring": ["arrests"],
    "registry report": ["arrests", "-o", "{tmp}/page.html"],
    "policy show": [],
    "policy history": [],
    "registry export": ["--bundle", "{tmp}/bundle"],
    "keys show": [],
    "keys rotate": [],
    "keys revoke": ["--approver", "reviewer", "--reason", "left"],
    "promote": ["arrests:v1", "--reason", "r", "--approver", "reviewer"],
    "rollback": ["arrests", "--reason", "r"],
}
NO_URL = {"registry head"}  # reads <home>/head.json, never the database


@pytest.fixture
def places(home, tmp_path, monkeypatch):
    """Four registry locations that do not exist, and a working directory with a gatewise.toml."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    where = {name: tmp_path / name / "registry.db" for name in ("flag", "env", "toml")}
    where["home"] = home.resolve() / "registry.db"
    return where


def _toml(path: Path) -> None:
    Path("gatewise.toml").write_text(f'[registry]\nurl = "sqlite:///{path}"\n')


def _opened(capsys, tmp_path, command: str, *extra: str) -> Path:
    """Run the command; return the registry path its error names (it must be exit 2, nothing created)."""
    argv = command.split() + [a.replace("{tmp}", str(tmp_path)) for a in COMMANDS[command]] + list(extra)
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    prefix, suffix = "gatewise: error: no registry at ", ": run `gatewise run` first"
    assert err.startswith(prefix) and err.endswith(suffix), err
    return Path(err[len(prefix):-len(suffix)])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_flag_then_environment_then_toml_then_home(command, places, tmp_path, monkeypatch, capsys):
    assert _opened(capsys, tmp_path, command) == places["home"]
    _toml(places["toml"])
    assert _opened(capsys, tmp_path, command) == places["toml"]
    monkeypatch.setenv("GATEWISE_REGISTRY_URL", f"sqlite:///{places['env']}")
    assert _opened(capsys, tmp_path, command) == places["env"]  # the environment beats gatewise.toml
    assert _opened(capsys, tmp_path, command, "--url", f"sqlite:///{places['flag']}") == places["flag"]
    assert not any(p.exists() for p in places.values())  # a read or a decision creates no registry


def test_every_registry_subcommand_is_covered():
    parser = build_parser()
    registry = _subcommands(parser)["registry"]
    names = {f"registry {name}" for name in _subcommands(registry)}
    names |= {f"keys {name}" for name in _subcommands(_subcommands(parser)["keys"]) if name != "init"}
    assert names - NO_URL - set(COMMANDS) == set()
    for name in COMMANDS:
        sub = parser
        for word in name.split():
            sub = _subcommands(sub)[word]
        assert "--url" in sub._option_string_actions, f"{name} has no --url"  # noqa: SLF001 - argparse has no public lookup


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return dict(action.choices)


def test_a_broken_toml_does_not_stop_a_command_given_the_url_or_the_environment(places, tmp_path, monkeypatch, capsys):
    Path("gatewise.toml").write_text("[registry\n")
    assert main(["registry", "ls"]) == ExitCode.USAGE
    assert "gatewise.toml: not valid TOML" in capsys.readouterr().err
    assert _opened(capsys, tmp_path, "registry ls", "--url", f"sqlite:///{places['flag']}") == places["flag"]
    monkeypatch.setenv("GATEWISE_REGISTRY_URL", f"sqlite:///{places['env']}")
    assert _opened(capsys, tmp_path, "registry ls") == places["env"]


def test_keys_init_creates_the_registry_where_the_environment_says(places, tmp_path, monkeypatch, capsys):
    _toml(places["toml"])
    monkeypatch.setenv("GATEWISE_REGISTRY_URL", f"sqlite:///{places['env']}")
    places["env"].parent.mkdir()
    assert main(["keys", "init", "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["key"]["introduced_seq"] == 1
    assert places["env"].exists() and not places["toml"].exists() and not places["home"].exists()
    assert main(["registry", "ls"]) == ExitCode.OK  # the same registry is read back
    assert capsys.readouterr().out.strip() == "no versions registered"


def test_run_checks_the_registry_the_environment_names_before_anything_runs(places, tmp_path, monkeypatch, capsys):
    """`gatewise run` follows the same order (it has no --url: its toml comes from --config)."""
    for name in ("env", "toml"):
        places[name].parent.mkdir()
        places[name].write_text("not a database")
    _toml(places["toml"])
    assert main(["run"]) == ExitCode.USAGE
    assert f"registry database {places['toml']} is corrupt" in capsys.readouterr().err
    monkeypatch.setenv("GATEWISE_REGISTRY_URL", f"sqlite:///{places['env']}")
    assert main(["run"]) == ExitCode.USAGE
    assert f"registry database {places['env']} is corrupt" in capsys.readouterr().err


def test_the_resolver_in_python(places, monkeypatch):
    from gatewise.config import parse_settings

    settings = parse_settings({"registry": {"url": "sqlite:///t.db"}})
    assert resolve_registry_url(None, parse_settings({})) is None  # the home's SQLite file
    assert resolve_registry_url(None, settings) == "sqlite:///t.db"
    monkeypatch.setenv("GATEWISE_REGISTRY_URL", "")  # empty counts as unset
    assert resolve_registry_url("", settings) == "sqlite:///t.db"
    monkeypatch.setenv("GATEWISE_REGISTRY_URL", "sqlite:///e.db")
    assert resolve_registry_url(None, settings) == "sqlite:///e.db"
    assert resolve_registry_url("sqlite:///f.db", settings) == "sqlite:///f.db"
