"""Continuous batching for chat inside one replica.

New streams join the running batch between decoding steps (their prompts are prefilled
together, then their KV cache is merged in); finished, cancelled or disconnected streams
leave it at the next step. Every step runs on the replica's model thread, so the event
loop keeps accepting requests while the model works.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import torch

from tuneserve.serving import kv_cache
from tuneserve.serving.version_metrics import VersionMetrics, unrecorded
from tuneserve.tasks.chat import ChatDelta, ChatItem
from tuneserve.tasks.handlers.chat import ChatHandler
from tuneserve.tasks.handlers.generation import SequenceState

RunInThread = Callable[..., Awaitable]


@dataclass
class _Stream:
    state: SequenceState
    prompt: list[int]
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    tokens_at_cancel: int = 0
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class EngineStats:
    steps: int = 0
    largest_batch: int = 0
    tokens_generated: int = 0
    streams_started: int = 0
    streams_cancelled: int = 0
    # tokens generated after a cancel, at most, over all cancelled streams (bounded by design)
    most_tokens_after_cancel: int = 0


def _coalesce(delta: ChatDelta, outbox: asyncio.Queue) -> ChatDelta:
    """Fold deltas already waiting into one: a slow reader gets fewer, larger messages
    instead of falling behind one message per token."""
    while delta.finish_reason is None and not outbox.empty():
        later = outbox.get_nowait()
        delta = later.model_copy(update={"text": delta.text + later.text})
    return delta


class ChatEngine:
    """Decodes every running stream of one chat model one token per step."""

    def __init__(
        self,
        handler: ChatHandler,
        run_in_thread: RunInThread,
        max_batch_size: int,
        stream_interval_s: float = 0.0,
        metrics: VersionMetrics | None = None,
    ):
        self.handler = handler
        self.metrics = metrics or unrecorded()
        self.stream_interval_s = stream_interval_s
        self.run_in_thread = run_in_thread
        self.max_batch_size = max_batch_size
        self.stats = EngineStats()
        self._waiting: deque[_Stream] = deque()
        self._active: list[_Stream] = []
        self._cache = None
        self._attention: torch.Tensor | None = None
        self._positions: torch.Tensor | None = None
        self._last: torch.Tensor | None = None
        self._loop_task: asyncio.Task | None = None

    async def generate(self, item: ChatItem) -> AsyncIterator[ChatDelta]:
        """Deltas of one completion; closing this iterator cancels the stream."""
        stream = _Stream(state=self.handler.start(item), prompt=self.handler.prompt_ids(item))
        self._waiting.append(stream)
        self.stats.streams_started += 1
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run())
        loop = asyncio.get_running_loop()
        sent_at, first_at = float("-inf"), None
        try:
            while True:
                delta = await self._next_message(stream.outbox, sent_at + self.stream_interval_s)
                if first_at is None:
                    first_at = time.perf_counter()
                    self.metrics.first_token(first_at - stream.queued_at)
                yield delta
                sent_at = loop.time()
                if delta.finish_reason is not None:
                    after_first = stream.state.generated - 1
                    self.metrics.completion(after_first, time.perf_counter() - first_at)
                    return
        finally:
            if not stream.state.finished:
                stream.tokens_at_cancel = stream.state.generated
                stream.cancelled = True
                self.stats.streams_cancelled += 1

    @staticmethod
    async def _next_message(outbox: asyncio.Queue, not_before: float) -> ChatDelta:
        """The next delta, merged with every one that arrives until ``not_before``.

        Each message costs a trip through the gateway and proxy; past a few hundred per
        second those trips, not decoding, bound throughput, so a stream sends at most one
        message per interval. The first token goes out at once.
        """
        delta = _coalesce(await outbox.get(), outbox)
        loop = asyncio.get_running_loop()
        while delta.finish_reason is None and (wait := not_before - loop.time()) > 0:
            try:
                later = await asyncio.wait_for(outbox.get(), wait)
            except TimeoutError:
                break
            delta = _coalesce(later.model_copy(update={"text": delta.text + later.text}), outbox)
        return delta

    async def _run(self) -> None:
        while self._active or self._waiting:
            room = self.max_batch_size - len(self._active)
            joiners = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            started = time.perf_counter()
            for stream in joiners:
                if not stream.cancelled:  # one that left while waiting is never prefilled
                    self.metrics.stream_joined(started - stream.queued_at, len(stream.prompt))
            updates = await self.run_in_thread(self._step, joiners)
            if updates:
                self.metrics.decoding_step(len(updates), time.perf_counter() - started)
            for stream, delta in updates:
                stream.outbox.put_nowait(delta)

    def _step(self, joiners: list[_Stream]) -> list[tuple[_Stream, ChatDelta]]:
        """Drop leavers, decode one token for the running rows, prefill the joiners."""
        with torch.inference_mode():
            self._drop_leavers()
            updates = self._decode() if self._active else []
            joiners = [s for s in joiners if not s.cancelled]
            if joiners:
                updates += self._prefill(joiners)
        self.stats.steps += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(self._active))
        self.stats.tokens_generated += len(updates)
        return updates

    def _drop_leavers(self) -> None:
        for stream in self._active:
            if stream.cancelled:
                late = stream.state.generated - stream.tokens_at_cancel
                self.stats.most_tokens_after_cancel = max(self.stats.most_tokens_after_cancel, late)
        keep = [i for i, s in enumerate(self._active) if not (s.cancelled or s.state.finished)]
        if len(keep) == len(self._active):
            return
        if not keep:
            self._active, self._cache = [], None
            return
        self._cache, self._attention = kv_cache.select(self._cache, self._attention, keep)
        index = torch.tensor(keep, dtype=torch.long, device=self._attention.device)
        self._positions = self._positions.index_select(0, index)
        self._last = self._last.index_select(0, index)
        self._active = [self._active[i] for i in keep]

    def _decode(self) -> list[tuple[_Stream, ChatDelta]]:
        attention = torch.cat([self._attention, torch.ones_like(self._last[:, None])], dim=1)
        logits, self._cache = self.handler.step_logits(
            self._last[:, None], attention, self._positions[:, None], self._cache
        )
        self._attention, self._positions = attention, self._positions + 1
        self._last, updates = self._sample(self._active, logits, self._positions)
        return updates

    def _prefill(self, joiners: list[_Stream]) -> list[tuple[_Stream, ChatDelta]]:
        inputs = self.handler.left_padded([s.prompt for s in joiners])
        attention = inputs["attention_mask"]
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self.handler.step_logits(inputs["input_ids"], attention, positions, None)
        next_positions = attention.sum(-1)
        last, updates = self._sample(joiners, logits, next_positions)
        if self._cache is None:
            self._cache, self._attention = cache, attention
            self._positions, self._last = next_positions, last
        else:
            self._cache, self._attention = kv_cache.merge(
                self._cache, self._attention, cache, attention
            )
            self._positions = torch.cat([self._positions, next_positions])
            self._last = torch.cat([self._last, last])
        self._active += joiners
        return updates

    def _sample(self, streams, logits, positions) -> tuple[torch.Tensor, list]:
        """Next token of each stream; a stream whose context is full ends with 'length'."""
        tokens, updates = [], []
        for row, stream in enumerate(streams):
            state = stream.state
            full = int(positions[row]) + 1 >= self.handler.max_length
            token, text = state.advance(logits[row], full)
            tokens.append(token)
            delta = ChatDelta(index=0, text=text, finish_reason=state.finish_reason)
            if state.finished:
                usage = {"prompt_tokens": len(stream.prompt), "completion_tokens": state.generated}
                delta.usage = usage
            updates.append((stream, delta))
        return torch.tensor(tokens, device=logits.device), updates
