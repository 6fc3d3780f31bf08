"""No bad parameter, bad request or failed step knocks a chat replica over.

Every test runs the real tiny chat model in the real engine (no Ray). Faults are injected
by wrapping the handler: ``step_logits`` that raises once or returns NaN for one stream,
a decoding state whose sampling raises. Streams that are not at fault must come out byte
for byte as they would alone, and the engine must serve the next request.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from pydantic import ValidationError
from tuneserve.api.openai import ChatCompletionRequest
from tuneserve.errors import InvalidRequest, Timeout, TuneserveError, Unavailable
from tuneserve.serving.batcher import Batcher, problems_alone
from tuneserve.serving.chat_engine import ChatEngine
from tuneserve.serving.chat_streams import StreamSlots
from tuneserve.tasks.chat import SEED_MAX, ChatItem
from tuneserve.tasks.handlers.generation import (
    NonFiniteLogits,
    SamplingParams,
    SequenceState,
    sample_next,
)
from tuneserve.tasks.qa import QaItem

QUESTIONS = [
    "Hello!",
    "What is the capital of France?",
    "What colour is snow? " * 4,
    "Thanks!",
    "Tell me about dogs.",
    "Good morning",
    "Where is Paris?",
    "Bye!",
]


def _item(question: str, max_tokens: int = 12, **sampling) -> ChatItem:
    sampling = {"temperature": 0, "ignore_eos": True} | sampling
    messages = [{"role": "user", "content": question}]
    return ChatItem(messages=messages, max_tokens=max_tokens, **sampling)


class Faulty:
    """The real chat handler, with faults a test switches on (all off by default)."""

    def __init__(self, handler):
        self.handler = handler
        self.engine: ChatEngine | None = None
        self.nan_prompt: list[int] | None = None  # decode steps give this stream NaN logits
        self.fail_prefill: int | None = None  # which prefill pass raises (1: the first)
        self.fail_decode: int | None = None  # which decoding pass raises
        self.bad_sampling: dict[str, int] = {}  # first message → the token whose sampling fails
        self.prefills = self.decodes = 0

    def __getattr__(self, name):
        return getattr(self.handler, name)

    def step_logits(self, input_ids, attention_mask, position_ids, cache):
        if cache is None:
            self.prefills += 1
            if self.prefills == self.fail_prefill:
                raise RuntimeError("injected: prefill fell over")
        else:
            self.decodes += 1
            if self.decodes == self.fail_decode:
                raise RuntimeError("injected: the device fell over")
        logits, cache_out = self.handler.step_logits(input_ids, attention_mask, position_ids, cache)
        if cache is not None and self.nan_prompt is not None:  # a decode step: rows = _active
            for row, stream in enumerate(self.engine._active):
                if stream.prompt == self.nan_prompt and stream.state.generated >= 2:
                    logits[row] = float("nan")
        return logits, cache_out

    def start(self, item: ChatItem) -> SequenceState:
        state = self.handler.start(item)
        failing = self.bad_sampling.get(item.messages[0].content)
        if failing is not None:
            state.__class__ = _failing_state(failing)
        return state


class Gate:
    """A model thread that runs one engine step per permit, so a test knows what each
    step saw. Made inside the test's event loop."""

    def __init__(self, executor: ThreadPoolExecutor):
        self.executor = executor
        self.permits = asyncio.Semaphore(0)
        self.finished: asyncio.Queue = asyncio.Queue()
        self.free = False

    async def __call__(self, fn, *args):
        if not self.free:
            await self.permits.acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            self.finished.put_nowait(None)

    async def step(self) -> None:
        """Let the engine run its next step, and wait until it has."""
        self.permits.release()
        await self.finished.get()

    def open(self) -> None:
        """Every step from now on runs at once."""
        self.free = True
        self.permits.release()


def _failing_state(at_call: int) -> type[SequenceState]:
    class FailingState(SequenceState):
        def advance(self, logits, context_full):
            if self.generated + 1 == at_call:
                raise ValueError("injected: sampling broke")
            return super().advance(logits, context_full)

    return FailingState


@pytest.fixture
def executor():
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.fixture
def run_in_thread(executor):
    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    return run


@pytest.fixture
def faulty(handlers, run_in_thread):
    wrapped = Faulty(handlers["chat"])
    wrapped.engine = ChatEngine(wrapped, run_in_thread, max_batch_size=16)
    return wrapped


@pytest.fixture
def engine_log(caplog):
    """Records of the engine's logger, whether or not the service configured logging."""
    logger, propagate = logging.getLogger("tuneserve.chat_engine"), None
    logger.addHandler(caplog.handler)
    logger.propagate, propagate = False, logger.propagate  # each record reaches caplog once
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.propagate = propagate


def _run(main):
    """Run a test's coroutine; an engine that hangs fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(main, timeout=120))


async def _collect(engine: ChatEngine, item: ChatItem) -> str | BaseException:
    """The completion's text, or the error that ended it."""
    try:
        return "".join([delta.text async for delta in engine.generate(item)])
    except Exception as error:
        return error


def _alone(handlers, items: list[ChatItem]) -> list[str]:
    return [handlers["chat"].predict([item])[0].content for item in items]


# --- parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": 99999999999999999999999}, "seed"),
        ({"seed": -(2**63) - 1}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ""}, "stop"),
        ({"stop": "x" * 65}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"n": 2}, "n"),
    ],
)
def test_out_of_range_chat_parameters_are_refused_naming_the_field(change, field):
    body = {"messages": [{"role": "user", "content": "Hi"}]} | change
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(body)
    assert caught.value.errors()[0]["loc"][0] == field


def test_chat_parameters_at_their_bounds_are_taken():
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 1e-40,
        "seed": SEED_MAX,
        "stop": ["a", "b", "c", "x" * 64],
        "top_p": 1e-9,
        "max_completion_tokens": 512,
    }
    item = ChatCompletionRequest.model_validate(body).to_item(128, limit=512)
    assert item.seed == SEED_MAX and item.max_tokens == 512 and len(item.stop) == 4
    one_stop = ChatCompletionRequest.model_validate(body | {"stop": "\n"})
    assert one_stop.to_item(128, limit=512).stop == ["\n"]


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_asking_for_more_tokens_than_the_server_allows_is_a_400_naming_the_field(param):
    request = ChatCompletionRequest(messages=[{"role": "user", "content": "Hi"}], **{param: 513})
    with pytest.raises(InvalidRequest) as caught:
        request.to_item(128, limit=512)
    assert caught.value.param == param and "512" in caught.value.message
    unasked = ChatCompletionRequest(messages=[{"role": "user", "content": "Hi"}])
    assert unasked.to_item(1000, limit=512).max_tokens == 512  # the server's own default


def test_tiny_temperature_is_greedy_and_non_finite_logits_are_refused():
    logits = torch.tensor([0.0, 5.0, 4.9, float("-inf")])
    tiny = SamplingParams(max_tokens=1, temperature=1e-40)
    assert {sample_next(logits, tiny, torch.Generator().manual_seed(s)) for s in range(20)} == {1}
    for bad in (float("nan"), float("inf")):
        with pytest.raises(NonFiniteLogits):
            sample_next(torch.tensor([0.0, bad]), SamplingParams(max_tokens=1), torch.Generator())


# --- one engine, bad streams among good ones ----------------------------------------------


def test_bad_streams_fail_alone_while_eight_control_streams_decode(faulty, handlers):
    controls = [_item(q, max_tokens=10 + i) for i, q in enumerate(QUESTIONS)]
    tiny_temperature = _item("Tell me a story", max_tokens=10, temperature=1e-40, seed=None)
    nan_item = _item("Why is the sky blue?", max_tokens=20)
    sampling_item = _item("Count to ten", max_tokens=20)
    faulty.nan_prompt = faulty.prompt_ids(nan_item)
    faulty.bad_sampling = {"Count to ten": 4}
    engine = faulty.engine

    async def main():
        jobs = [_collect(engine, item) for item in [*controls, tiny_temperature, nan_item]]
        jobs.append(_collect(engine, sampling_item))
        return await asyncio.gather(*jobs)

    *outputs, tiny, nan, sampling = _run(main())
    assert outputs == _alone(handlers, controls)
    assert tiny == _alone(handlers, [_item("Tell me a story", max_tokens=10)])[0]
    assert isinstance(nan, NonFiniteLogits) and nan.status_code == 500
    assert isinstance(sampling, TuneserveError) and sampling.code == "generation_failed"
    assert engine.stats.largest_batch == 11 and engine.stats.streams_failed == 2
    after = _item("Hello!", max_tokens=6)
    assert _run(_collect(engine, after)) == _alone(handlers, [after])[0]


def test_an_unchecked_huge_seed_fails_only_its_own_request(faulty, handlers):
    with pytest.raises(ValidationError):
        _item("Hi", seed=99999999999999999999999)
    bad = _item("Hi").model_copy(update={"seed": 10**23})  # as if validation were skipped
    controls = [_item(q) for q in QUESTIONS]

    async def main():
        return await asyncio.gather(*(_collect(faulty.engine, i) for i in [*controls, bad]))

    *outputs, refused = _run(main())
    assert outputs == _alone(handlers, controls)
    assert "Overflow" in str(refused)  # torch's error, raised to its caller before it joined


def test_a_failed_decoding_pass_fails_the_running_streams_is_logged_and_serving_goes_on(
    faulty, handlers, engine_log
):
    faulty.fail_decode = 2
    items = [_item(q, max_tokens=8) for q in QUESTIONS[:4]]

    async def main():
        return await asyncio.gather(*(_collect(faulty.engine, item) for item in items))

    results = _run(main())
    assert all(isinstance(r, TuneserveError) and r.code == "generation_failed" for r in results)
    assert all(r.status_code == 500 and "injected" not in r.message for r in results)
    (record,) = [r for r in engine_log.records if "decoding pass failed" in r.getMessage()]
    assert record.levelno == logging.ERROR and "injected" in str(record.exc_info[1])
    assert faulty.engine.stats.steps_failed == 1 and faulty.engine.stats.streams_failed == 4
    after = _item("Thanks!", max_tokens=7)
    assert _run(_collect(faulty.engine, after)) == _alone(handlers, [after])[0]


def test_a_failed_prefill_fails_only_the_joiners(faulty, handlers, executor):
    running = [_item(q, max_tokens=12) for q in QUESTIONS[:3]]
    joiner = _item("I join late", max_tokens=5)
    faulty.fail_prefill = 2

    async def main():
        gate = Gate(executor)
        engine = faulty.engine = ChatEngine(faulty, gate, max_batch_size=16)
        first = [asyncio.ensure_future(_collect(engine, item)) for item in running]
        await gate.step()  # the running streams' prefill
        late = asyncio.ensure_future(_collect(engine, joiner))
        await gate.step()  # a decoding step; the joiner waits for the next one
        gate.open()  # the joiner's prefill, beside the running rows' next decoding pass
        return await asyncio.gather(*first), await late, engine.stats

    outputs, late, stats = _run(main())
    assert outputs == _alone(handlers, running)
    assert isinstance(late, TuneserveError) and late.code == "generation_failed"
    assert stats.steps_failed == 1 and stats.streams_failed == 1


class _BrokenMetrics:
    """Metrics whose hook raises once, from inside the engine's loop (not a step)."""

    def __init__(self):
        self.broken = True

    def __getattr__(self, name):
        return lambda *args: None

    def decoding_step(self, *args):
        if self.broken:
            self.broken = False
            raise RuntimeError("injected: the loop itself broke")


def test_a_dead_engine_loop_fails_its_streams_loudly_and_the_next_request_restarts_it(
    handlers, run_in_thread, engine_log
):
    engine = ChatEngine(handlers["chat"], run_in_thread, 8, metrics=_BrokenMetrics())
    items = [_item(q, max_tokens=6) for q in QUESTIONS[:3]]

    async def main():
        return await asyncio.gather(*(_collect(engine, item) for item in items))

    assert all(isinstance(r, Unavailable) for r in _run(main()))
    assert any("engine loop stopped" in r.getMessage() for r in engine_log.records)
    assert _run(_collect(engine, items[0])) == _alone(handlers, items[:1])[0]


# --- deadlines and the stream cap -----------------------------------------------------------


def test_a_stream_may_run_until_its_deadline_and_not_past_it(handlers, executor):
    now = [100.0]
    other = _item("Thanks!", max_tokens=9)

    async def main():
        gate = Gate(executor)
        engine = ChatEngine(handlers["chat"], gate, 8, stream_timeout_s=30, clock=lambda: now[0])
        late = engine.generate(_item("Hello!", max_tokens=60))
        forgotten = engine.generate(_item("Bye!", max_tokens=60))
        firsts = [asyncio.ensure_future(anext(late)), asyncio.ensure_future(anext(forgotten))]
        await gate.step()  # both prefilled: one token each
        await asyncio.gather(*firsts)  # ``forgotten`` is never read again
        now[0] = 130.0  # exactly at the deadline: still allowed
        second = asyncio.ensure_future(anext(late))
        await gate.step()
        await second
        now[0] = 130.001
        with pytest.raises(Timeout) as caught:
            await anext(late)
        await gate.step()  # ``late`` leaves; ``forgotten`` decodes once more
        await gate.step()  # the engine times ``forgotten`` out, unread, and drops it
        assert (engine.stats.streams_timed_out, engine.stats.tokens_generated) == (2, 5)
        with pytest.raises(Timeout):
            await anext(forgotten)
        gate.open()
        return caught.value, await _collect(engine, other)  # a fresh deadline

    error, text = _run(main())
    assert error.status_code == 504 and "chat_stream_timeout_s" in error.message
    assert text == _alone(handlers, [other])[0]


def test_a_replica_holds_exactly_its_limit_of_streams(handlers, run_in_thread):
    slots = StreamSlots(limit=3)
    engines = [ChatEngine(handlers["chat"], run_in_thread, 8, slots=slots) for _ in range(2)]

    async def main():
        streams = [engines[i % 2].generate(_item("Hello!", max_tokens=50)) for i in range(4)]
        for stream in streams[:3]:
            await anext(stream)  # three streams over two models: the replica's limit
        with pytest.raises(Unavailable) as caught:
            await anext(streams[3])
        await streams[0].aclose()
        assert await anext(engines[1].generate(_item("Hi", max_tokens=3)))  # room again
        for stream in streams[1:3]:
            await stream.aclose()
        return caught.value

    refused = _run(main())
    assert refused.status_code == 503 and refused.retry_after_s == 1
    assert "max_streams_per_replica" in refused.message
    assert slots.held == 0


# --- the encoder batcher ----------------------------------------------------------------------


def test_a_bad_request_in_a_batch_fails_alone_and_the_rest_runs_once_batched(
    handlers, monkeypatch, run_in_thread
):
    qa = handlers["qa"]
    forwards = []
    real_forward = qa.forward
    monkeypatch.setattr(qa, "forward", lambda batch: forwards.append(batch) or real_forward(batch))
    good = [QaItem(question="Where was Anna born?", context="Anna was born in Oslo.")] * 2
    bad = [QaItem(question="why " * 300, context="Because.")]

    async def main():
        batcher = Batcher(
            lambda items: run_in_thread(qa.predict, items),
            max_batch_size=8,
            check=lambda requests: run_in_thread(problems_alone, qa.preprocess, requests),
        )
        requests = [good[:1], bad, good]  # queued together: one batch of four items
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)

    first, refused, pair = _run(main())
    assert [len(batch.items) for batch in forwards] == [3]  # once, the good items together
    assert isinstance(refused, InvalidRequest) and refused.param == "inputs[0].question"
    # the same answers as alone; scores to float precision (a batch of three is not of one)
    for served, alone in ((first, qa.predict(good[:1])), (pair, qa.predict(good))):
        assert [(o.answer, o.start, o.end) for o in served] == [
            (o.answer, o.start, o.end) for o in alone
        ]
        assert [o.score for o in served] == pytest.approx([o.score for o in alone], rel=1e-5)
