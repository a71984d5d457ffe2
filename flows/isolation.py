"""Runs one compressor entry (a chain ``a+b`` as a whole) in a process of its own, with a timeout:
a compressor that hangs, crashes, kills its process or hands back a model that does not fit its
parent becomes an errored candidate with the reason, and the run goes on. A compressor that says
it does not apply (its optional ``applies``) skips the entry. The running processes are known, so
an interrupted run can end them (``stop_all``)."""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewise.errors import GatewiseError
from gatewise.flows import interruption

# What an errored candidate keeps of a traceback: the signed entry stays small.
TRACEBACK_CHARS = 4000


@dataclass(frozen=True)
class Step:
    """One compressor of the entry, as handed to the child: the component itself (pickled), its
    record and the params it gets."""

    name: str
    component: Any
    info: Any  # gatewise.types.PluginInfo
    params: dict[str, Any]


# The compressor processes running now, in any thread of this process: an interruption kills them.
_LIVE: set[Any] = set()
_LIVE_LOCK = threading.Lock()


def stop_all() -> int:
    """Kill every compressor process running now, with what it started (its process group);
    returns how many. Their entries then end as errored, and no version is made of them."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        _kill(process)
    return len(live)


def _kill(process: Any) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the child leads a group of its own (see _child)
    except (ProcessLookupError, PermissionError):  # killed before it made its group: the process alone
        process.kill()


class NotApplicable(GatewiseError):
    """A compressor of the entry said, through ``applies``, that it does not apply: the entry is skipped."""


class IsolatedFailure(GatewiseError):
    """The compressor's process failed; ``detail`` is the child's traceback or what killed it."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def run_isolated(steps: list[Step], source: Path, path: Path, own: Path, calibration: Any, timeout_s: float) -> float:
    """Run ``steps`` in a fresh spawned process; return the start-up and hand-over time in seconds.

    The process is killed (and reaped) when it outlives ``timeout_s``. NotApplicable when a step's
    ``applies`` gave a reason; IsolatedFailure for everything that went wrong.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent (Prefect, torch)
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, steps, source, path, own, calibration))  # not daemonic: a compressor may start processes of its own
    started = time.perf_counter()
    try:
        process.start()
    except Exception as exc:  # a component that cannot be pickled cannot be handed over
        raise IsolatedFailure(f"could not start the compressor's process: {type(exc).__name__}: {exc}",
                              traceback.format_exc()) from None
    with _LIVE_LOCK:
        _LIVE.add(process)
    if interruption.received() is not None:  # the run was interrupted while this one started: the
        _kill(process)  # signal's stop_all (which runs after `received` is set) may have missed it
    send.close()
    message, handed_over, timed_out, died = None, None, False, False
    try:
        if receive.poll(timeout_s):
            message = receive.recv()
            if message[0] == "started":
                handed_over = message[1]
                left = max(0.0, timeout_s - (time.perf_counter() - started))
                message = receive.recv() if receive.poll(left) else None
    except EOFError:  # the child died without a word
        message, died = None, True
    finally:
        if message is None and not died and process.is_alive():
            timed_out = True
            _kill(process)
        process.join(10)
        receive.close()
        with _LIVE_LOCK:
            _LIVE.discard(process)
    if timed_out:
        raise IsolatedFailure(f"timed out after {timeout_s:g} s ([compress] timeout_s); its process was killed")
    if message is None:
        raise IsolatedFailure(f"its process died with exit code {process.exitcode} before it finished")
    if message[0] == "error":
        raise IsolatedFailure(message[1], message[2])
    if message[0] == "skipped":
        raise NotApplicable(message[1])
    return handed_over - started if handed_over is not None else 0.0


def _child(send: Any, steps: list[Step], source: Path, path: Path, own: Path, calibration: Any) -> None:
    # A group of its own: an interruption kills what the compressor started too, and a Ctrl-C at
    # the terminal reaches the run, which ends its compressors itself.
    os.setpgrp()
    send.send(("started", time.perf_counter()))  # perf_counter is system-wide on Linux (CLOCK_MONOTONIC)
    try:
        from gatewise.flows.steps import record_step

        for index, step in enumerate(steps):
            reason = applicability(step, source)
            if reason is not None:
                send.send(("skipped", f"{step.name}: {reason}" if len(steps) > 1 else reason))
                return
            target = path if index == len(steps) - 1 else own / f"step{index + 1}-{step.name}.onnx"
            step.component.compress(source, target, calibration, dict(step.params))
            if not target.exists():
                raise GatewiseError(f"{step.name} wrote no file at {target.name}")
            check_valid(target)
            record_step(source, target, step.info, step.params)
            source = target
    except BaseException as exc:  # noqa: BLE001 - the parent records it
        send.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500], traceback.format_exc()[-TRACEBACK_CHARS:]))
    else:
        send.send(("ok",))
    finally:
        send.close()


def applicability(step: Step, source: Path) -> str | None:
    """Why the step's compressor does not apply to the model at ``source`` (its ``applies``, if it
    has one), or None. Anything but None or a non-empty string is the compressor's error."""
    applies = getattr(step.component, "applies", None)
    if applies is None:
        return None
    reason = applies(source, dict(step.params))
    if reason is None:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise GatewiseError(f"{step.name}.applies() returned {reason!r}: it must return None or the reason it does not apply")
    return reason.strip().splitlines()[0][:500]


def check_valid(path: Path) -> None:
    """The file is a model the ONNX checker accepts."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - any checker failure is an invalid model
        raise GatewiseError(f"invalid ONNX model: {str(exc).splitlines()[0][:300]}") from None


def check_signature(parent: Path, child: Path) -> None:
    """A valid ONNX model whose inputs and outputs keep the parent's names, element types and ranks."""
    import onnx

    check_valid(child)

    def signature(path: Path) -> tuple[list[tuple], list[tuple]]:
        graph = onnx.load(str(path), load_external_data=False).graph
        describe = lambda v: (v.name, v.type.tensor_type.elem_type, len(v.type.tensor_type.shape.dim))  # noqa: E731
        return [describe(v) for v in graph.input if v.name not in {i.name for i in graph.initializer}], [describe(v) for v in graph.output]

    before, after = signature(parent), signature(child)
    if before != after:
        raise GatewiseError(f"the model's signature changed: inputs/outputs {before} became {after}")
