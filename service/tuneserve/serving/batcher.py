"""Dynamic batching without a fixed wait: a lone request runs at once.

While a batch is on the model, new requests queue; when the model frees up, everything
queued (up to ``max_batch_size`` items) goes as the next batch. Batches form under load and
never delay an idle server. ``wait_s`` optionally lingers for more items, but only when the
batch already holds several requests, so a lone request never pays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[list[Any]], Awaitable[list[Any]]]


@dataclass
class _Pending:
    items: Sequence[Any]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class BatchRecord:
    """One executed batch: how many items and requests it held, and how long each request
    waited for it (for tests and metrics)."""

    items: int
    requests: int
    waited_s: tuple[float, ...] = ()


@dataclass
class Batcher:
    run_batch: RunBatch
    max_batch_size: int
    wait_s: float = 0.0
    on_batch: Callable[[BatchRecord], None] | None = None  # told of each batch as it starts
    history: deque[BatchRecord] = field(default_factory=lambda: deque(maxlen=1000))

    def __post_init__(self) -> None:
        self._queue: deque[_Pending] = deque()
        self._worker: asyncio.Task | None = None
        self._arrived = asyncio.Event()

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """Outputs for ``items``, in order, computed in whichever batch they land in."""
        step = self.max_batch_size
        chunks = [items[i : i + step] for i in range(0, len(items), step)]
        loop = asyncio.get_running_loop()
        pending = [_Pending(chunk, loop.create_future()) for chunk in chunks]
        self._queue.extend(pending)
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        results: list[Any] = []
        for part in await asyncio.gather(*(p.future for p in pending)):
            results.extend(part)
        return results

    def _take(self, taken: list[_Pending], size: int) -> int:
        while self._queue and size + len(self._queue[0].items) <= self.max_batch_size:
            entry = self._queue.popleft()
            if not entry.future.cancelled():
                taken.append(entry)
                size += len(entry.items)
        return size

    async def _work(self) -> None:
        while self._queue:
            taken: list[_Pending] = []
            size = self._take(taken, 0)
            if self.wait_s > 0 and len(taken) > 1 and size < self.max_batch_size:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), self.wait_s)
                size = self._take(taken, size)
            if not taken:
                continue
            await self._run(taken, size)

    async def _run(self, taken: list[_Pending], size: int, retry: bool = False) -> None:
        items = [item for entry in taken for item in entry.items]
        if not retry:  # a retried request was already counted, with its wait, in its batch
            now = time.perf_counter()
            waits = tuple(now - entry.queued_at for entry in taken)
            record = BatchRecord(size, len(taken), waits)
            self.history.append(record)
            if self.on_batch is not None:
                self.on_batch(record)
        try:
            outputs = await self.run_batch(items)
        except Exception as error:
            if len(taken) > 1:  # one bad request must not fail the others: retry them apart
                for entry in taken:
                    await self._run([entry], len(entry.items), retry=True)
                return
            if not taken[0].future.done():
                taken[0].future.set_exception(error)
            return
        start = 0
        for entry in taken:
            end = start + len(entry.items)
            if not entry.future.done():
                entry.future.set_result(outputs[start:end])
            start = end
