"""Progress of a run on stderr: each stage says when it starts and when it ends, with its time.

One small reporter object. `gatewise run` installs it (``using``); the steps and the flow reach it
through ``current()``, from any thread (compressors and gates run in parallel). Off a terminal it
writes one plain line per finished stage; on a terminal, a live display drawn with rich (which
Prefect brings). With no reporter installed (tests, a scheduled run, a `--quiet` run) it is silent
and only remembers which stage failed, so the CLI's one error line can name it.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# The stage from handing the run to Prefect until the flow's first line runs: Prefect's temporary
# server starts here (7 to 17 s on a small machine), which would otherwise look like a hang.
PREFECT_START = "start Prefect"


class Reporter:
    """Stages of one run. ``begin``/``end`` or ``with reporter.stage(name)``; names are unique per run."""

    def __init__(self, stream: IO[str] | None = None, *, live: bool = False) -> None:
        self._stream = stream  # None: silent
        self._lock = threading.Lock()
        self._origin = time.perf_counter()
        self._open: dict[str, float] = {}  # stage -> its start, seconds since the origin
        self._failed: str | None = None  # the first stage that raised
        self._display: Any = None  # the rich Progress of a live display
        self._rows: dict[str, Any] = {}
        if stream is not None and live:
            self._display = _live_display(stream)
            self._display.start()

    @classmethod
    def for_stream(cls, stream: IO[str], *, quiet: bool = False) -> Reporter:
        """Silent with ``quiet``; a live display when ``stream`` is a terminal; plain lines otherwise."""
        if quiet:
            return cls(None)
        isatty = getattr(stream, "isatty", None)
        return cls(stream, live=bool(isatty and isatty()))

    def begin(self, name: str) -> None:
        with self._lock:
            if name in self._open:
                return
            self._open[name] = time.perf_counter() - self._origin
            if self._display is not None:
                self._rows[name] = self._display.add_task(name, total=1, mark="")

    def end(self, name: str, *, ok: bool = True) -> None:
        """Close a stage; a stage that was never begun (or is already closed) is ignored."""
        with self._lock:
            started = self._open.pop(name, None)
            if started is None:
                return
            took = time.perf_counter() - self._origin - started
            if not ok and self._failed is None:
                self._failed = name
            if self._display is not None:
                self._display.update(self._rows[name], completed=1, mark="✓" if ok else "✗")
            elif self._stream is not None and ok:
                # A failed stage gets no line of its own: the CLI's one error line names it.
                self._stream.write(stage_line(name, started, took) + "\n")
                self._stream.flush()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.begin(name)
        try:
            yield
        except BaseException:
            self.end(name, ok=False)
            raise
        self.end(name)

    def failed_stage(self) -> str | None:
        """The stage a run failed in: the first that raised, else the latest still running."""
        with self._lock:
            if self._failed is not None:
                return self._failed
            return max(self._open, key=self._open.__getitem__) if self._open else None

    def close(self) -> None:
        """Stop the live display (its last frame stays on the terminal). Safe to call twice."""
        with self._lock:
            display, self._display = self._display, None
        if display is not None:
            display.stop()


def stage_line(name: str, started: float, took: float) -> str:
    """The plain line of a finished stage: what, how long, and when it started after the command did."""
    return f"gatewise: {name}: {took:.1f} s (started at +{started:.1f} s)"


_silent = Reporter(None)
_current = _silent


def current() -> Reporter:
    """The reporter of the run in progress in this process; a silent one when none is installed."""
    return _current


@contextmanager
def using(reporter: Reporter) -> Iterator[Reporter]:
    """Install ``reporter`` for the steps of this process; closed and removed on the way out."""
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous
        reporter.close()


def staged(template: str) -> Callable[[F], F]:
    """Report each call of the decorated step as a stage. ``template`` is formatted with the step's
    arguments by name, e.g. ``@staged("compress {name}")`` or ``@staged("gates {candidate.name}")``.
    The signature is kept (functools.wraps), so Prefect's task() sees the step's own parameters."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = template.format_map(signature.bind(*args, **kwargs).arguments)
            with current().stage(name):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _live_display(stream: IO[str]) -> Any:
    """A rich Progress on ``stream``: a spinner then a mark, the stage, its seconds (frozen at its end).
    It leaves sys.stdout and sys.stderr alone: while a run executes, stderr is its log file."""
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn
    from rich.text import Text

    class Mark(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self._spinner = SpinnerColumn()

        def render(self, task: Any) -> Any:
            mark = task.fields.get("mark")
            return Text(mark, style="green" if mark == "✓" else "red") if mark else self._spinner.render(task)

    class Seconds(ProgressColumn):
        def render(self, task: Any) -> Any:
            return Text(f"{task.finished_time if task.finished else (task.elapsed or 0.0):6.1f} s", style="cyan")

    console = Console(file=stream, stderr=True)
    return Progress(Mark(), TextColumn("{task.description}"), Seconds(), console=console,
                    redirect_stdout=False, redirect_stderr=False, refresh_per_second=8)
