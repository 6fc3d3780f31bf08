"""Chat benchmark: ``python -m bench.chat`` (``make bench``).

Tokens/s and time to first token of the embedded chat model (SmolLM2-135M) over 1, 8 and 32
concurrent streams through tuneserve, beside the model in-process: one stream decoded after
another, and 8 or 32 decoded as one batch (how far batching alone carries the model on this
machine, with no server in between). Each is measured ``--rounds`` times (a served round
runs 1, 8 and 32 streams in turn) and each round's ratio to its own one stream is taken in
that round: on a small shared machine a single run moves by a fifth either way, so the
table gives medians and ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
from tuneserve.registry import connect
from tuneserve.serving import local
from tuneserve.settings import Settings
from tuneserve.tasks.chat import ChatItem
from tuneserve.tasks.handlers.chat import ChatHandler
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import (
    console,
    load_session,
    percentile,
    print_table,
    wait_ready,
    write_results,
)
from bench.serving import bench_settings

STREAMS = (1, 8, 32)  # concurrent chat streams
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


async def chat_streams(url: str, streams: int, max_tokens: int) -> dict:
    """Aggregate streamed tokens/s over ``streams`` concurrent chat completions, and the
    time each waited for its first token."""
    body = {
        "messages": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first_token_s: list[float] = []

    async def one(client: aiohttp.ClientSession) -> int:
        tokens, started, first = 0, time.perf_counter(), None
        async with client.post(f"{url}/v1/chat/completions", json=body) as response:
            async for raw in response.content:
                line = raw.decode()
                if first is None and '"content"' in line:
                    first = time.perf_counter() - started
                if line.startswith("data: {") and '"usage"' in line:
                    tokens = json.loads(line[6:])["usage"]["completion_tokens"]
        first_token_s.append(first or 0.0)
        return tokens

    async with load_session(timeout_s=600) as client:
        await one(client)
        first_token_s.clear()
        started = time.perf_counter()
        counts = await asyncio.gather(*(one(client) for _ in range(streams)))
    return {
        "tokens_per_s": sum(counts) / (time.perf_counter() - started),
        "ttft_p50_ms": 1000 * percentile(first_token_s, 0.5),
        "ttft_p99_ms": 1000 * percentile(first_token_s, 0.99),
    }


def in_process_generate(handler: ChatHandler, max_tokens: int) -> dict[int, float]:
    """Tokens/s of the chat model in this process: one stream decoded after another
    (``1``), and ``n`` streams decoded as one batch (``n``)."""
    item = ChatItem(messages=PROMPT, max_tokens=max_tokens, temperature=0, ignore_eos=True)
    handler.predict([item])
    rates = {}
    for streams in STREAMS:
        rounds = 4 if streams == 1 else 1
        started = time.perf_counter()
        tokens = sum(
            out.completion_tokens
            for _ in range(rounds)
            for out in handler.predict([item] * streams)
        )
        rates[streams] = tokens / (time.perf_counter() - started)
    return rates


def summary(rounds: list[dict[int, float]]) -> dict[int, dict[str, float]]:
    """Per stream count: the median tokens/s and its range, and the median of each round's
    ratio to that round's one stream."""
    return {
        n: {
            "tokens_per_s": statistics.median(r[n] for r in rounds),
            "low": min(r[n] for r in rounds),
            "high": max(r[n] for r in rounds),
            "ratio": statistics.median(r[n] / r[1] for r in rounds),
        }
        for n in STREAMS
    }


def through_service(settings: Settings, tokens: int, rounds: int) -> list[dict[int, dict]]:
    """Each round: 1, 8 and 32 concurrent streams, through one local service."""
    url = local.start(settings)
    try:
        wait_ready(url)
        return [
            {n: asyncio.run(chat_streams(url, n, tokens)) for n in STREAMS} for _ in range(rounds)
        ]
    finally:
        local.stop()


def write_report(args, settings: Settings, in_process: list[dict], served: list[dict]) -> None:
    """The table, and the JSON with every round."""
    rates = summary(in_process)
    served_rates = summary([{n: r[n]["tokens_per_s"] for n in STREAMS} for r in served])
    ttft = {n: statistics.median(r[n]["ttft_p50_ms"] for r in served) for n in STREAMS}
    rows = [
        [
            "in-process, " + ("one after another" if n == 1 else "one batch"),
            n,
            s["tokens_per_s"],
            f"{s['low']:.1f}–{s['high']:.1f}",
            s["ratio"],
            "-",
        ]
        for n, s in rates.items()
    ] + [
        [
            f"tuneserve, {n} concurrent streams",
            n,
            s["tokens_per_s"],
            f"{s['low']:.1f}–{s['high']:.1f}",
            s["ratio"],
            ttft[n],
        ]
        for n, s in served_rates.items()
    ]
    print_table(
        f"chat tokens/s ({args.tokens} tokens per stream, median of {args.rounds} rounds)",
        ["contender", "streams", "tokens/s", "range", "÷ its one stream", "TTFT p50 ms"],
        rows,
    )
    path = write_results(
        "chat",
        {
            "profile": args.profile,
            "tokens": args.tokens,
            "join_window_s": settings.serving.chat_join_window_s,
            "in_process_rounds": in_process,
            "served_rounds": served,
            "in_process": rates,
            "served": served_rates,
        },
    )
    console.print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument("--tokens", type=int, default=64, help="tokens per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--join-window-s", type=float, default=None, help="serving.chat_join_window_s"
    )
    args = parser.parse_args()
    settings = bench_settings(None, args.profile)
    serving = {"served_tasks": ["chat"]}
    if args.join_window_s is not None:
        serving["chat_join_window_s"] = args.join_window_s
    settings = settings.updated(serving=serving)
    registry, store = connect(settings.registry)
    for report in build_all(settings, ["chat"]):
        register_starter_model(report, settings, registry, store)
    handler = ChatHandler.load(settings.zoo.dir / "chat", max_length=512)
    in_process = [in_process_generate(handler, args.tokens) for _ in range(args.rounds)]
    del handler
    served = through_service(settings, args.tokens, args.rounds)
    write_report(args, settings, in_process, served)


if __name__ == "__main__":
    main()
