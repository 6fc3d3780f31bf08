"""Continuous batching gives every stream exactly what it would get alone."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from tuneserve.serving.chat_engine import ChatEngine
from tuneserve.tasks.chat import ChatItem

QUESTIONS = ["Hello!", "What is the capital of France?", "What colour is snow? " * 4, "Thanks!"]


def _item(question: str, max_tokens: int) -> ChatItem:
    return ChatItem(
        messages=[{"role": "user", "content": question}],
        max_tokens=max_tokens,
        temperature=0,
        ignore_eos=True,
    )


@pytest.fixture
def engine(handlers):
    executor = ThreadPoolExecutor(1)

    async def run_in_thread(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    yield ChatEngine(handlers["chat"], run_in_thread, max_batch_size=8)
    executor.shutdown()


async def _collect(engine: ChatEngine, item: ChatItem, start_after_steps: int) -> str:
    while engine.stats.steps < start_after_steps:
        await asyncio.sleep(0.001)
    return "".join([delta.text async for delta in engine.generate(item)])


def test_streams_joining_and_leaving_match_static_greedy_decoding(engine, handlers):
    items = [_item(q, max_tokens=6 + 3 * i) for i, q in enumerate(QUESTIONS)]
    expected = [handlers["chat"].predict([item])[0].content for item in items]

    async def main():
        # streams join at different steps and finish at different lengths
        return await asyncio.gather(
            *(
                _collect(engine, item, start)
                for item, start in zip(items, (0, 0, 2, 5), strict=True)
            )
        )

    assert asyncio.run(main()) == expected
    assert engine.stats.largest_batch > 1


def test_a_closed_stream_leaves_the_batch(engine):
    async def main():
        stream = engine.generate(_item("Hello!", max_tokens=200))
        await anext(stream)
        await anext(stream)
        await stream.aclose()  # what a client disconnect does
        other = await _collect(engine, _item("Thanks!", max_tokens=5), 0)
        return other

    assert asyncio.run(main())
    assert engine.stats.streams_cancelled == 1
    assert engine.stats.tokens_generated < 20
    assert engine.stats.most_tokens_after_cancel <= 2


def test_streams_arriving_together_share_one_prefill(handlers):
    """The join window holds an empty batch's first stream until the others arrive (here
    until the batch is full, long before the window ends), so all are prefilled at once."""
    executor = ThreadPoolExecutor(1)

    async def run_in_thread(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    engine = ChatEngine(handlers["chat"], run_in_thread, max_batch_size=3, join_window_s=60)
    items = [_item(q, max_tokens=4) for q in QUESTIONS[:3]]
    expected = [handlers["chat"].predict([item])[0].content for item in items]

    async def arriving_apart(item: ChatItem, delay_s: float) -> str:
        await asyncio.sleep(delay_s)  # the first stream would be prefilled alone by now
        return await _collect(engine, item, 0)

    async def main():
        return await asyncio.gather(
            *(arriving_apart(item, 0.2 * i) for i, item in enumerate(items))
        )

    try:
        assert asyncio.run(main()) == expected
    finally:
        executor.shutdown()
    assert engine.stats.prefills == 1
    assert engine.stats.largest_batch == 3
