"""Runs one compressor entry (a chain ``a+b`` as a whole) in a process of its own, with a timeout:
a compressor that hangs, crashes, kills its process or hands back a model that does not fit its
parent becomes an errored candidate with the reason, and the run goes on."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewise.errors import GatewiseError

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


class IsolatedFailure(GatewiseError):
    """The compressor's process failed; ``detail`` is the child's traceback or what killed it."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def run_isolated(steps: list[Step], source: Path, path: Path, own: Path, calibration: Any, timeout_s: float) -> float:
    """Run ``steps`` in a fresh spawned process; return the start-up and hand-over time in seconds.

    The process is killed (and reaped) when it outlives ``timeout_s``.
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
            process.kill()
        process.join(10)
        receive.close()
    if timed_out:
        raise IsolatedFailure(f"timed out after {timeout_s:g} s ([compress] timeout_s); its process was killed")
    if message is None:
        raise IsolatedFailure(f"its process died with exit code {process.exitcode} before it finished")
    if message[0] == "error":
        raise IsolatedFailure(message[1], message[2])
    return handed_over - started if handed_over is not None else 0.0


def _child(send: Any, steps: list[Step], source: Path, path: Path, own: Path, calibration: Any) -> None:
    send.send(("started", time.perf_counter()))  # perf_counter is system-wide on Linux (CLOCK_MONOTONIC)
    try:
        from gatewise.flows.steps import record_step

        for index, step in enumerate(steps):
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
