"""Micro-batching: concurrent requests join one asyncio queue that feeds a single scoring loop.

The loop takes what is waiting (up to ``max_batch`` rows, waiting at most ``max_wait_s`` for
more), encodes the rows with the input contract in one frame and scores them in one ONNX Runtime
call on a worker thread, so the event loop keeps accepting requests meanwhile. With
``max_batch = 1`` every request is scored alone (batch-1 serving).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from gatewise.serving_model import ServedModel


@dataclass(eq=False)
class _Pending:
    model: ServedModel  # the version whose contract validated the rows: it also scores them
    rows: list[dict[str, Any]]
    future: asyncio.Future


class MicroBatcher:
    """``await batcher.score(model, rows)`` returns P(positive) per row; ``run()`` is the scoring loop."""

    def __init__(self, max_batch: int, max_wait_s: float, on_batch: Callable[[int], None] = lambda rows: None) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: _Pending | None = None  # did not fit the last batch: it opens the next one
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gatewise-score")

    async def score(self, model: ServedModel, rows: list[dict[str, Any]]) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(model, rows, future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(loop)
            outcomes = await loop.run_in_executor(self._executor, _score_batch, batch)
            for item, outcome in zip(batch, outcomes, strict=True):
                if item.future.done():  # the client went away
                    continue
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome)
            self._on_batch(sum(len(item.rows) for item in batch))

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Pending]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], len(first.rows)
        deadline = loop.time() + self.max_wait_s
        while rows < self.max_batch:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if rows + len(item.rows) > self.max_batch:
                self._carry = item
                break
            batch.append(item)
            rows += len(item.rows)
        return batch

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _score_batch(batch: list[_Pending]) -> list[Any]:
    """Each request's scores, or the exception that failed its model's share of the batch.

    Rows are grouped by the model that validated them (two versions only while a swap is in
    flight) and encoded in one frame per model.
    """
    import numpy as np
    import pandas as pd

    outcomes: dict[int, Any] = {}
    by_model: dict[int, list[_Pending]] = {}
    for item in batch:
        by_model.setdefault(id(item.model), []).append(item)
    for items in by_model.values():
        model = items[0].model
        try:
            rows = [row for item in items for row in item.rows]
            frame = pd.DataFrame.from_records(rows, columns=list(model.spec.columns))
            scores = np.asarray(model.score(model.spec.encode(frame)), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - a failed share fails its requests, never the loop
            outcomes.update((id(item), exc) for item in items)
            continue
        start = 0
        for item in items:
            outcomes[id(item)] = scores[start : start + len(item.rows)]
            start += len(item.rows)
    return [outcomes[id(item)] for item in batch]
