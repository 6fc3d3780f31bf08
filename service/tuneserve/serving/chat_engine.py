"""Continuous batching for chat inside one replica.

New streams join the running batch between decoding steps (their prompts are prefilled
together, then their KV cache is merged in; an empty batch first waits a short join window
for streams arriving together); finished, cancelled, failed or expired streams
leave it at the next step. Every step runs on the replica's model thread, so the event
loop keeps accepting requests while the model works.

No request can stop the engine: a failed sample fails its stream, a failed prefill the
joiners, a failed decoding pass the running streams (and empties the batch: the KV cache
may be half-written), anything else in a step all of its streams. Each failure is logged
and reaches its streams as a typed error; a loop that dies fails every stream it held, and
the next request starts a new one. Streams have deadlines, and a replica a cap on them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import torch

from tuneserve.errors import Timeout, TuneserveError, Unavailable
from tuneserve.serving import kv_cache
from tuneserve.serving.chat_streams import (
    EngineStats,
    Stream,
    StreamSlots,
    client_error,
    join_window,
    messages,
)
from tuneserve.serving.version_metrics import VersionMetrics, unrecorded
from tuneserve.tasks.chat import ChatDelta, ChatItem
from tuneserve.tasks.handlers.chat import ChatHandler

logger = logging.getLogger("tuneserve.chat_engine")

RunInThread = Callable[..., Awaitable]
Update = tuple[Stream, ChatDelta | TuneserveError]


class ChatEngine:
    """Decodes every running stream of one chat model one token per step."""

    def __init__(
        self,
        handler: ChatHandler,
        run_in_thread: RunInThread,
        max_batch_size: int,
        stream_interval_s: float = 0.0,
        metrics: VersionMetrics | None = None,
        *,
        stream_timeout_s: float = 300.0,
        join_window_s: float = 0.0,
        slots: StreamSlots | None = None,  # a replica shares one between its models
        clock: Callable[[], float] = time.monotonic,  # of deadlines (tests move theirs)
        name: str = "chat",  # the model version, in log lines
    ):
        self.handler = handler
        self.metrics = metrics or unrecorded()
        self.stream_interval_s = stream_interval_s
        self.run_in_thread = run_in_thread
        self.max_batch_size = max_batch_size
        self.stream_timeout_s = stream_timeout_s
        self.join_window_s = join_window_s
        self.slots = slots or StreamSlots(sys.maxsize)
        self.clock = clock
        self.name = name
        self.stats = EngineStats()
        self._waiting: deque[Stream] = deque()
        self._joining: list[Stream] = []  # taken from the queue for the step in progress
        self._active: list[Stream] = []
        self._reset_batch()
        self._loop_task: asyncio.Task | None = None
        self._arrived = asyncio.Event()  # set by each new stream: ends a join window early
        self._stepping = False  # a step is running in the model thread

    # --- streams (event loop) ----------------------------------------------------------
    async def generate(self, item: ChatItem) -> AsyncIterator[ChatDelta]:
        """Deltas of one completion; closing this iterator cancels the stream.

        Raises ``Unavailable`` when the replica already holds its most streams, ``Timeout``
        past the stream's deadline, or the error its decoding failed with.
        """
        with self.slots.hold():
            deadline = self.clock() + self.stream_timeout_s
            stream = Stream(self.handler.start(item), self.handler.prompt_ids(item), deadline)
            self._waiting.append(stream)
            self._arrived.set()
            self.stats.streams_started += 1
            if self._loop_task is None or self._loop_task.done():
                self._loop_task = asyncio.get_running_loop().create_task(self._run())
            try:
                async for delta in messages(
                    stream, self.clock, self.stream_interval_s, self.metrics
                ):
                    yield delta
            except TimeoutError:
                raise self._expire(stream) from None
            finally:
                if not stream.done:  # the client went away (or another error) mid-way
                    stream.tokens_at_cancel = stream.state.generated
                    stream.cancelled = True
                    self.stats.streams_cancelled += 1

    def _fail(self, stream: Stream, error: TuneserveError) -> None:
        if stream.fail(error):
            self.stats.streams_failed += 1

    def _expire(self, stream: Stream) -> TuneserveError:
        """End a stream past its deadline; the error it ends with."""
        if not stream.done:
            logger.warning("chat %s: stream %d passed its deadline", self.name, stream.id)
            self.stats.streams_timed_out += 1
            self._fail(
                stream,
                Timeout(
                    f"the completion ran past its {self.stream_timeout_s:g} s deadline "
                    "(serving.chat_stream_timeout_s) and was stopped: ask for fewer tokens, "
                    "or retry when the server is less busy",
                    code="stream_timeout",
                ),
            )
        return stream.error or Timeout("the completion ran past its deadline")

    # --- the loop (event loop) ---------------------------------------------------------
    async def _run(self) -> None:
        """Step while any stream is unfinished; never end silently."""
        try:
            while any(not s.done for s in (*self._active, *self._waiting)):
                await self._run_step()
        except BaseException as error:  # a cancelled loop too: no stream may wait forever
            live = [s for s in (*self._active, *self._joining, *self._waiting) if not s.done]
            if live or isinstance(error, Exception):
                message = "chat %s: the engine loop stopped; failing its %d streams"
                logger.error(message, self.name, len(live), exc_info=error)
            for stream in live:
                message = f"the chat engine of {self.name} stopped; retry"
                self._fail(stream, Unavailable(message, retry_after_s=1))
            if not isinstance(error, Exception):
                raise
        finally:
            self._waiting.clear()
            self._joining = []
            if not self._stepping:  # idle or stopped: free the KV cache
                self._reset_batch()
            # else cancelled mid-step: the step ends in its thread, and the next step
            # drops every stream it left (all ended here) before it decodes

    async def _run_step(self) -> None:
        if not self._active and self._waiting:
            await join_window(self._waiting, self._arrived, self.join_window_s, self.max_batch_size)
        now = self.clock()
        for stream in [*self._active, *self._waiting]:
            if not stream.done and now > stream.deadline:
                self._expire(stream)  # a running one leaves the batch in this step
        room = self.max_batch_size - len(self._active)
        self._joining = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
        started = time.perf_counter()
        for stream in self._joining:
            if not stream.done:  # one that left while waiting is never prefilled
                self.metrics.stream_joined(started - stream.queued_at, len(stream.prompt))
        self._stepping = True  # stays so if the loop is cancelled while the thread steps
        try:
            updates = await self.run_in_thread(self._step, self._joining)
        except Exception as error:  # outside every guard of ``_step``: trust nothing
            self.stats.steps_failed += 1
            updates = self._failed("a decoding step", [*self._active, *self._joining], error)
            self._reset_batch()
        self._stepping, self._joining = False, []
        deltas = 0
        for stream, update in updates:
            if isinstance(update, TuneserveError):
                self._fail(stream, update)
            else:
                stream.outbox.put_nowait(update)
                deltas += 1
        if deltas:
            self.metrics.decoding_step(deltas, time.perf_counter() - started)

    def _failed(self, what: str, streams: Iterable[Stream], error: BaseException) -> list[Update]:
        """Log a failure and pair each stream it ended with the error it ends with."""
        ended = [s for s in dict.fromkeys(streams) if s.reachable]
        ids = [s.id for s in ended]
        logger.error("chat %s: %s failed; streams %s end", self.name, what, ids, exc_info=error)
        return [(stream, client_error(error)) for stream in ended]

    # --- one step (model thread) -------------------------------------------------------
    def _step(self, joiners: list[Stream]) -> list[Update]:
        """Drop leavers, decode one token for the running rows, prefill the joiners."""
        with torch.inference_mode():
            self._drop_leavers()
            updates = self._decode() if self._active else []
            joiners = [s for s in joiners if not s.done]
            if joiners:
                updates += self._prefill(joiners)
        self.stats.steps += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(self._active))
        self.stats.tokens_generated += sum(isinstance(u, ChatDelta) for _, u in updates)
        return updates

    def _reset_batch(self) -> None:
        """An empty batch: no rows, no KV cache (the next joiners start a new one)."""
        self._active, self._cache = [], None
        self._attention: torch.Tensor | None = None
        self._positions: torch.Tensor | None = None
        self._last: torch.Tensor | None = None

    def _drop_leavers(self) -> None:
        for stream in self._active:
            if stream.cancelled:
                late = stream.state.generated - stream.tokens_at_cancel
                self.stats.most_tokens_after_cancel = max(self.stats.most_tokens_after_cancel, late)
        keep = [i for i, s in enumerate(self._active) if not s.done]
        if len(keep) == len(self._active):
            return
        if not keep:
            self._reset_batch()
            return
        self._cache, self._attention = kv_cache.select(self._cache, self._attention, keep)
        index = torch.tensor(keep, dtype=torch.long, device=self._attention.device)
        self._positions = self._positions.index_select(0, index)
        self._last = self._last.index_select(0, index)
        self._active = [self._active[i] for i in keep]

    def _decode(self) -> list[Update]:
        """One token for every running row. A failed pass fails them all and empties the
        batch: the model may have written part of this step into the KV cache."""
        attention = torch.cat([self._attention, torch.ones_like(self._last[:, None])], dim=1)
        try:
            logits, cache = self.handler.step_logits(
                self._last[:, None], attention, self._positions[:, None], self._cache
            )
        except Exception as error:
            self.stats.steps_failed += 1
            updates = self._failed("a decoding pass", self._active, error)
            self._reset_batch()
            return updates
        self._cache, self._attention, self._positions = cache, attention, self._positions + 1
        self._last, updates = self._sample(self._active, logits, self._positions)
        return updates

    def _prefill(self, joiners: list[Stream]) -> list[Update]:
        """The joiners' prompts in one pass, then their KV cache joins the batch's. A failed
        pass fails only the joiners: the running batch is untouched until the merge."""
        self.stats.prefills += 1
        try:
            inputs = self.handler.left_padded([s.prompt for s in joiners])
            attention = inputs["attention_mask"]
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            logits, cache = self.handler.step_logits(
                inputs["input_ids"], attention, positions, None
            )
        except Exception as error:
            self.stats.steps_failed += 1
            return self._failed("a prefill pass", joiners, error)
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

    def _sample(self, streams, logits, positions) -> tuple[torch.Tensor, list[Update]]:
        """Next token of each stream; a stream whose context is full ends with 'length'.

        A row that fails to sample (non-finite logits, say) fails its own stream, which
        leaves the batch at the next step; its placeholder token is never decoded.
        """
        tokens, updates = [], []
        for row, stream in enumerate(streams):
            state = stream.state
            full = int(positions[row]) + 1 >= self.handler.max_length
            try:
                token, text = state.advance(logits[row], full)
            except Exception as error:
                tokens.append(0)
                updates += self._failed(f"sampling stream {stream.id}", [stream], error)
                continue
            tokens.append(token)
            delta = ChatDelta(index=0, text=text, finish_reason=state.finish_reason)
            if state.finished:
                usage = {"prompt_tokens": len(stream.prompt), "completion_tokens": state.generated}
                delta.usage = usage
            updates.append((stream, delta))
        return torch.tensor(tokens, dtype=torch.long, device=logits.device), updates
