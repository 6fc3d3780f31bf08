"""Dynamic batching without a fixed wait: a lone request runs at once.

While a batch is on the model, new requests queue; when the model frees up, everything
queued (up to ``max_batch_size`` items) goes as the next batch. Batches form under load and
never delay an idle server. ``wait_s`` optionally lingers for more items, but only when the
batch already holds several requests, so a lone request never pays it.

One bad request fails only itself. When a batch of several requests fails, ``check``
looks at each request alone (preprocessing only, no model call): those that fail alone get
their own error, and the others run once more, together. A failure no single request
explains (the model's own) fails the whole batch: running it again request by request
would multiply the work of a broken model.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("tuneserve.batcher")

RunBatch = Callable[[list[Any]], Awaitable[list[Any]]]
# each request's items → per request, the error it fails with alone (None: it passes)
CheckRequests = Callable[[list[Sequence[Any]]], Awaitable[list[BaseException | None]]]


def problems_alone(
    preprocess: Callable[[Sequence[Any]], Any], requests: list[Sequence[Any]]
) -> list[Exception | None]:
    """A ``check`` from a handler's ``preprocess``: what each request raises on its own."""
    problems: list[Exception | None] = []
    for items in requests:
        try:
            preprocess(items)
        except Exception as error:
            problems.append(error)
        else:
            problems.append(None)
    return problems


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
    # numbered across the process, so "batches since" survives a version's reload
    seq: int = field(default_factory=lambda: next(_BATCH_NUMBERS))


_BATCH_NUMBERS = itertools.count(1)


class RecentBatches:
    """A replica's recent batches of every version, kept when a version is evicted."""

    def __init__(self, keep: int = 2000):
        self._records: deque[tuple[str, BatchRecord]] = deque(maxlen=keep)

    def add(self, version: str, record: BatchRecord) -> None:
        self._records.append((version, record))

    def by_version(self) -> dict[str, list[list[int]]]:
        """Per version label: ``[items, requests, seq]`` of each batch, oldest first."""
        batches: dict[str, list[list[int]]] = {}
        for version, record in self._records:
            batches.setdefault(version, []).append([record.items, record.requests, record.seq])
        return batches


@dataclass
class Batcher:
    run_batch: RunBatch
    max_batch_size: int
    wait_s: float = 0.0
    on_batch: Callable[[BatchRecord], None] | None = None  # told of each batch as it starts
    check: CheckRequests | None = None  # after a failed batch: which requests fail alone
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
            self._record(taken, size)
            try:
                await self._run(taken)
            except Exception as error:  # a fault of the batcher's own: the worker goes on
                logger.exception("running a batch of %d requests failed", len(taken))
                _settle(taken, error)
            except asyncio.CancelledError:  # no request may wait forever on a dead worker
                for entry in taken:
                    entry.future.cancel()
                raise

    def _record(self, taken: list[_Pending], size: int) -> None:
        now = time.perf_counter()
        record = BatchRecord(size, len(taken), tuple(now - entry.queued_at for entry in taken))
        self.history.append(record)
        if self.on_batch is not None:
            self.on_batch(record)

    async def _run(self, taken: list[_Pending]) -> None:
        try:
            outputs = await self.run_batch([item for entry in taken for item in entry.items])
        except Exception as error:
            if len(taken) == 1 or self.check is None:
                _settle(taken, error)
                return
            await self._without_bad_requests(taken, error)
            return
        _settle(taken, outputs)

    async def _without_bad_requests(self, taken: list[_Pending], error: Exception) -> None:
        """A batch of several requests failed: fail those that fail alone, run the rest once."""
        try:
            problems = await self.check([entry.items for entry in taken])
        except Exception:
            logger.exception("checking the requests of a failed batch failed too")
            problems = [None] * len(taken)
        bad = [(entry, p) for entry, p in zip(taken, problems, strict=True) if p is not None]
        if not bad:
            logger.error("a batch of %d requests failed", len(taken), exc_info=error)
            _settle(taken, error)
            return
        for entry, problem in bad:
            _settle([entry], problem)
        good = [entry for entry, problem in zip(taken, problems, strict=True) if problem is None]
        if good:
            try:
                outputs = await self.run_batch([item for entry in good for item in entry.items])
            except Exception as again:
                _settle(good, again)
                return
            _settle(good, outputs)


def _settle(taken: list[_Pending], outcome: list[Any] | BaseException) -> None:
    """Give each request its slice of the batch's outputs, or the batch's error."""
    if not isinstance(outcome, BaseException):
        expected = sum(len(entry.items) for entry in taken)
        if len(outcome) != expected:
            outcome = RuntimeError(f"the batch gave {len(outcome)} outputs for {expected} items")
    start = 0
    for entry in taken:
        end = start + len(entry.items)
        if not entry.future.done():
            if isinstance(outcome, BaseException):
                entry.future.set_exception(outcome)
            else:
                entry.future.set_result(outcome[start:end])
        start = end
