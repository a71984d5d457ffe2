"""What `gatewise run` prints, through the real CLI in a subprocess: one progress line per stage,
one stderr line per error (naming the log file, which holds Prefect's logs and the traceback),
and a pre-flight that refuses a foreign key, a missing driver or an unwritable store before
Prefect starts, creating nothing. The reporter itself is checked in process (plain, quiet, live).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from gatewise import progress
from test_plugins_support import install_plugin

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "gatewise.toml"
STAGE_LINE = re.compile(r"^gatewise: (?P<stage>.+): \d+\.\d s \(started at \+\d+\.\d s\)$")


def gatewise(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "GATEWISE_HOME": str(home), **(env or {})}
    full.pop("GATEWISE_DEBUG", None)
    # An earlier test in this process may have imported the flows, whose Prefect defaults set
    # PREFECT_LOGGING_LEVEL in os.environ: a user's own value, to a child. Start from none.
    if "PREFECT_LOGGING_LEVEL" not in (env or {}):
        full.pop("PREFECT_LOGGING_LEVEL", None)
    if "GATEWISE_REGISTRY_URL" not in (env or {}):
        full.pop("GATEWISE_REGISTRY_URL", None)
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=full, capture_output=True, text=True, timeout=timeout)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and modification time: what a command created or changed."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def small_config(tmp: Path, extra: str = "") -> Path:
    """The demo's fairness limits, two quick compressors and a short training: every stage, in less time."""
    path = tmp / "gatewise.toml"
    path.write_text(DEMO_CONFIG.read_text() + textwrap.dedent("""
        [compress]
        compressors = ["graph_optimize", "int8_dynamic"]
        """) + extra)
    return path


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


# -- the reporter, in process ------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_one_per_finished_stage_from_any_thread():
    out = io.StringIO()
    reporter = progress.Reporter.for_stream(out)
    with progress.using(reporter):

        def work(name: str) -> None:
            with progress.current().stage(name):
                pass

        workers = [threading.Thread(target=work, args=(f"compress c{n}",)) for n in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        with pytest.raises(ValueError):
            with progress.current().stage("train"):
                raise ValueError("bad")
    lines = out.getvalue().splitlines()
    assert sorted(STAGE_LINE.match(line)["stage"] for line in lines) == [f"compress c{n}" for n in range(4)]
    assert reporter.failed_stage() == "train"  # a failed stage has no line: the CLI's error line names it
    assert progress.current() is not reporter  # removed on the way out


def test_quiet_prints_nothing_and_still_knows_the_running_stage():
    out = _Terminal()
    reporter = progress.Reporter.for_stream(out, quiet=True)
    reporter.begin("data gate")
    reporter.end("data gate")
    reporter.begin("train")
    assert out.getvalue() == ""
    assert reporter.failed_stage() == "train"


def test_a_terminal_gets_a_live_display_with_marks_and_times():
    out = _Terminal()
    with progress.using(progress.Reporter.for_stream(out)) as reporter:
        with reporter.stage("data gate"):
            pass
        with pytest.raises(RuntimeError), reporter.stage("train"):
            raise RuntimeError("x")
    shown = out.getvalue()
    assert "data gate" in shown and "train" in shown and "✓" in shown and "✗" in shown
    assert re.search(r"\d+\.\d s", shown)
    assert not STAGE_LINE.search(shown)  # no plain lines on a terminal


def test_staged_steps_keep_their_signature_and_name_their_stage():
    import inspect

    from gatewise.flows import steps

    assert list(inspect.signature(steps.compress).parameters)[:2] == ["settings", "name"]
    out = io.StringIO()

    @progress.staged("gates {candidate.name}")
    def gate(candidate: object, extra: int = 0) -> int:
        return 7

    class C:
        name = "int8_dynamic"

    with progress.using(progress.Reporter.for_stream(out)):
        assert gate(C()) == 7
    assert STAGE_LINE.match(out.getvalue().strip())["stage"] == "gates int8_dynamic"


# -- pre-flight through the CLI: one line, exit 2, nothing created, Prefect never started -------


@pytest.fixture(scope="module")
def foreign_key_home(tmp_path_factory):
    """A registry whose key file was swapped for another registry's key."""
    base = tmp_path_factory.mktemp("keys")
    home, other = base / "home", base / "other"
    for h in (home, other):
        done = gatewise(h, "keys", "init")
        assert done.returncode == 0, done.stderr
    (home / "keys" / "pipeline.ed25519").write_bytes((other / "keys" / "pipeline.ed25519").read_bytes())
    return home


def test_a_key_that_is_not_the_registry_s_stops_the_run_before_prefect(foreign_key_home, tmp_path):
    before = tree(foreign_key_home)
    prefect_home = tmp_path / "prefect"
    done = gatewise(foreign_key_home, "run", env={"PREFECT_HOME": str(prefect_home)})
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("gatewise: error: the signing key ") and "is not a key of this registry" in line
    assert tree(foreign_key_home) == before
    assert not prefect_home.exists()  # Prefect never ran: not even its home was made


def test_a_missing_key_file_of_a_registry_with_entries_stops_the_run(foreign_key_home, tmp_path):
    (foreign_key_home / "keys" / "pipeline.ed25519").unlink()
    before = tree(foreign_key_home)
    done = gatewise(foreign_key_home, "run", "--json", env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert done.returncode == 2 and done.stdout == ""
    assert "no signing key at" in one_line(done) and "restore the key file" in one_line(done)
    assert tree(foreign_key_home) == before  # no new key was written in its place


def test_a_postgresql_url_without_its_driver_names_the_install_command(tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys

        class HidePsycopg:  # as if `pip install 'gatewise[postgres]'` had never run
            def find_spec(self, name, path=None, target=None):
                if name == "psycopg" or name.startswith("psycopg."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, HidePsycopg())
        """))
    home = tmp_path / "home"
    done = gatewise(home, "run", env={
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")])),
        "GATEWISE_REGISTRY_URL": "postgresql+psycopg://gatewise@127.0.0.1:1/gatewise",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    })
    assert done.returncode == 2
    line = one_line(done)
    assert "psycopg" in line and "pip install 'gatewise[postgres]'" in line and "internal error" not in line
    assert not home.exists() and not (tmp_path / "prefect").exists()


def test_every_command_names_a_missing_driver_in_one_line(home, capsys):
    import importlib.util

    from gatewise.cli import main

    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed here: its URL cannot show a missing driver")
    assert main(["registry", "ls", "--url", "postgresql+pg8000://gatewise@127.0.0.1:1/gatewise"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "driver module pg8000, which is not installed" in err and "gatewise[postgres]" in err


def test_an_artifact_store_that_cannot_be_written_stops_the_run(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "artifacts").write_text("a file where the store's folder belongs")
    before = tree(home)
    done = gatewise(home, "run", env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert done.returncode == 2
    assert one_line(done).startswith("gatewise: error: the artifact store ")
    assert tree(home) == before


def test_a_configured_prefect_server_that_does_not_answer_stops_the_run(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "home"
    done = gatewise(home, "run", env={"PREFECT_API_URL": f"http://127.0.0.1:{port}/api"})
    assert done.returncode == 2
    assert f"PREFECT_API_URL=http://127.0.0.1:{port}/api is not reachable" in one_line(done)
    assert not home.exists()  # no registry, key or log file


# -- errors inside the flow: one line naming the stage and the log, which holds the traceback ------


FAILING_TRAINER = '''
"""A third-party trainer that fails on purpose: [train.params] fail = "usage" or "bug"."""
from gatewise.errors import UsageError
from gatewise.hookspecs import hookimpl


class FailingTrainer:
    name = "failing"

    def train(self, train, label, spec, params):
        if params.get("fail") == "bug":
            raise RuntimeError("the failing trainer has a bug")
        raise UsageError("the failing trainer cannot learn from this data")


@hookimpl
def gatewise_trainers():
    return [FailingTrainer()]
'''


@pytest.fixture(scope="module")
def failing_plugin(tmp_path_factory):
    """An installed plugin as pip leaves one: a module and its dist-info with a 'gatewise' entry point."""
    return install_plugin(tmp_path_factory.mktemp("site"), "failing_trainer", "failing-trainer", FAILING_TRAINER, entry_point="failing")


@pytest.mark.e2e
def test_a_bad_input_error_inside_the_flow_is_one_line_naming_the_stage_and_the_log(failing_plugin, tmp_path):
    config = small_config(tmp_path, '\n[train]\ntrainer = "failing"\n[train.params]\nfail = "usage"\n')
    home = tmp_path / "home"
    done = gatewise(home, "run", "--config", str(config), "--quiet", env=failing_plugin)
    assert done.returncode == 2, done.stderr
    line = one_line(done)
    match = re.fullmatch(r"gatewise: error: train: the failing trainer cannot learn from this data \(log: (.+\.log)\)", line)
    assert match, line
    log = Path(match[1])
    assert log.parent == home / "logs"
    text = log.read_text()
    assert "Traceback" in text and "UsageError: the failing trainer cannot learn from this data" in text
    assert "Encountered exception during execution" in text  # Prefect's own log lines are there, not on stderr


@pytest.mark.e2e
def test_an_unexpected_error_inside_the_flow_is_one_line_with_the_log_and_exit_1(failing_plugin, tmp_path):
    config = small_config(tmp_path, '\n[train]\ntrainer = "failing"\n[train.params]\nfail = "bug"\n')
    home = tmp_path / "home"
    done = gatewise(home, "run", "--config", str(config), env=failing_plugin)
    assert done.returncode == 1, done.stderr
    *stages, last = done.stderr.splitlines()
    assert [STAGE_LINE.match(line)["stage"] for line in stages] == ["pre-flight", "start Prefect", "data gate", "split"]
    match = re.fullmatch(r"gatewise: internal error: train: RuntimeError: the failing trainer has a bug \(traceback in (.+\.log)\)", last)
    assert match, last
    assert "RuntimeError: the failing trainer has a bug" in Path(match[1]).read_text()


# -- a normal run -------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_normal_run_prints_one_line_per_stage_and_json_stays_one_document(tmp_path):
    home = tmp_path / "home"
    done = gatewise(home, "run", "--config", str(small_config(tmp_path)), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)  # exactly one JSON document on stdout
    lines = done.stderr.splitlines()
    unexpected = [line for line in lines if not STAGE_LINE.match(line)]
    assert not unexpected, unexpected  # nothing from Prefect, no warnings, no tracebacks
    stages = [STAGE_LINE.match(line)["stage"] for line in lines]
    assert len(stages) == len(set(stages))  # one line per stage
    candidates = [c["name"] for c in document["candidates"]]
    expected = {"pre-flight", "start Prefect", "data gate", "split", "train", "export", "benchmark", "registry",
                "promotion", "deployment", "report page"}
    expected |= {f"compress {name}" for name in ("graph_optimize", "int8_dynamic")}
    expected |= {f"gates {name}" for name in candidates}
    assert set(stages) == expected
    log = Path(document["log"])
    assert log == home / "logs" / f"{document['run']['id']}.log"
    assert "Finished in state Completed" in log.read_text()  # Prefect's logs went to the file
