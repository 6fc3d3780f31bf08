"""Serving benchmark: ``python -m bench.serving`` (``make bench``).

Sentiment (the full-profile MiniLM starter model) over HTTP at concurrency 1, 8 and 32:
tuneserve against (a) the raw in-process batched forward, the ceiling, (b) a naive
FastAPI + transformers server doing one forward per request, (c) a plain Ray Serve
deployment with ``@serve.batch`` — all in one run, every contender with the same torch
thread count. Then chat tokens/s over 1 and 8 concurrent streams against sequential
in-process generation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from tuneserve.registry import connect
from tuneserve.settings import Settings
from tuneserve.tasks.chat import ChatItem
from tuneserve.tasks.classification import ClassificationItem
from tuneserve.tasks.handlers.chat import ChatHandler
from tuneserve.tasks.handlers.classification import ClassificationHandler
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import (
    console,
    free_port,
    post_json,
    print_table,
    review_sentences,
    run_load,
    wait_http,
    wait_ready,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [(1, 60), (8, 200), (32, 320)]  # (concurrency, requests)


def bench_settings(threads: int, profile: str) -> Settings:
    data_dir = ROOT / ".tuneserve" / "bench"
    return Settings(
        data_dir=data_dir,
        zoo={
            "cache_dir": ROOT / ".tuneserve" / "zoo",
            "corpora_dir": ROOT / ".tuneserve" / "corpora",
            "profile": profile,
        },
        registry={
            "database_url": f"sqlite:///{tempfile.mkdtemp(dir=ROOT / '.tuneserve')}/registry.db"
        },
        serving={
            "port": free_port(),
            "torch_threads": threads,
            "served_tasks": ["classification", "chat"],
        },
        ray={
            "num_cpus": 4,
            "metrics_export_port": free_port(),
            "temp_dir": Path(tempfile.mkdtemp(prefix="ray-", dir=ROOT / ".tuneserve")),
        },
    )


def raw_forward(model_dir: Path, sentences: list[str], threads: int) -> dict:
    """The ceiling: batches of 32 straight through the handler, and single-item latency."""
    torch.set_num_threads(threads)
    handler = ClassificationHandler.load(model_dir)
    items = [ClassificationItem(text=s) for s in sentences]
    handler.predict(items[:32])
    started = time.perf_counter()
    handler.predict_in_chunks(items, 32)
    batched = len(items) / (time.perf_counter() - started)
    singles = []
    for item in items[:40]:
        t = time.perf_counter()
        handler.predict([item])
        singles.append(time.perf_counter() - t)
    return {"seq_per_s": batched, "single_ms": 1000 * sorted(singles)[len(singles) // 2]}


async def load_levels(name: str, url: str, path: str, body_of) -> list:
    results = []
    async with httpx.AsyncClient(
        base_url=url,
        timeout=120,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    ) as client:
        call = post_json(client, path, body_of)
        await run_load(name, 4, 20, call)  # warm-up
        for concurrency, requests in LEVELS:
            results.append(await run_load(name, concurrency, requests, call))
    return results


async def chat_tokens_per_s(url: str, streams: int, max_tokens: int) -> float:
    """Aggregate streamed tokens/s over ``streams`` concurrent chat completions."""
    body = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    async def one(client: httpx.AsyncClient) -> int:
        tokens = 0
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {") and '"usage"' in line:
                    tokens = json.loads(line[6:])["usage"]["completion_tokens"]
        return tokens

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await one(client)
        started = time.perf_counter()
        counts = await asyncio.gather(*(one(client) for _ in range(streams)))
    return sum(counts) / (time.perf_counter() - started)


def sequential_generate(model_dir: Path, streams: int, max_tokens: int, threads: int) -> float:
    torch.set_num_threads(threads)
    handler = ChatHandler.load(model_dir, max_length=512)
    item = ChatItem(
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=max_tokens,
        temperature=0,
        ignore_eos=True,
    )
    handler.predict([item])
    started = time.perf_counter()
    tokens = sum(handler.predict([item])[0].completion_tokens for _ in range(streams))
    return tokens / (time.perf_counter() - started)


def run_naive(model_dir: Path, threads: int, sentences: list[str]) -> list:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.naive_server", str(model_dir), str(port), str(threads)],
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, "/docs")
        body_of = lambda i: {"inputs": sentences[i % len(sentences)]}  # noqa: E731
        return asyncio.run(load_levels("naive FastAPI", url, "/classify", body_of))
    finally:
        server.terminate()
        server.wait()


def run_ray(settings: Settings, model_dirs: dict[str, Path], sentences: list[str], args) -> dict:
    from ray import serve
    from tuneserve.serving import local

    from bench.plain_serve import PlainClassifier

    url = local.start(settings)
    try:
        wait_ready(url)
        ours = asyncio.run(
            load_levels(
                "tuneserve",
                url,
                "/v1/classify",
                lambda i: {"inputs": sentences[i % len(sentences)], "model": "sentiment"},
            )
        )
        serve.run(
            PlainClassifier.bind(str(model_dirs["sentiment"]), settings.serving.torch_threads),
            name="plain",
            route_prefix="/plain",
            blocking=False,
        )
        plain = asyncio.run(
            load_levels(
                "plain Ray Serve",
                url,
                "/plain",
                lambda i: {"inputs": sentences[i % len(sentences)]},
            )
        )
        serve.delete("plain")
        chat = {n: asyncio.run(chat_tokens_per_s(url, n, args.chat_tokens)) for n in (1, 8)}
    finally:
        local.stop()
    return {"ours": ours, "plain": plain, "chat": chat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every contender")
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument("--chat-tokens", type=int, default=200)
    args = parser.parse_args()
    settings = bench_settings(args.threads, args.profile)
    registry, store = connect(settings.registry)
    for report in build_all(settings, ["sentiment", "chat"]):
        register_starter_model(report, settings, registry, store)
    model_dirs = {name: settings.zoo.dir / name for name in ("sentiment", "chat")}
    sentences = review_sentences(400)
    words = sum(len(s.split()) for s in sentences) / len(sentences)
    console.print(
        f"{len(sentences)} sentences, {words:.1f} words on average; "
        f"torch threads {args.threads} for every contender"
    )

    raw = raw_forward(model_dirs["sentiment"], sentences, args.threads)
    naive = run_naive(model_dirs["sentiment"], args.threads, sentences)
    served = run_ray(settings, model_dirs, sentences, args)
    sequential = sequential_generate(model_dirs["chat"], 8, args.chat_tokens, args.threads)

    rows = [
        ["raw batched forward", args.threads, "-", raw["seq_per_s"], 1.0, raw["single_ms"], "-", 0]
    ]
    for result in naive + served["plain"] + served["ours"]:
        rows.append(
            [
                result.contender,
                args.threads,
                result.concurrency,
                result.throughput,
                result.throughput / raw["seq_per_s"],
                result.p50_ms,
                result.p99_ms,
                result.failed,
            ]
        )
    print_table(
        "sentiment over HTTP (throughput in requests/s; raw: sequences/s)",
        [
            "contender",
            "threads",
            "concurrency",
            "throughput",
            "÷ raw",
            "p50 ms",
            "p99 ms",
            "failed",
        ],
        rows,
    )
    chat_rows = [["sequential generate (in-process)", 1, sequential, 1.0]] + [
        [f"tuneserve, {n} concurrent streams", n, tps, tps / served["chat"][1]]
        for n, tps in served["chat"].items()
    ]
    print_table(
        f"chat tokens/s ({args.chat_tokens} tokens per stream)",
        ["contender", "streams", "tokens/s", "÷ one stream"],
        chat_rows,
    )
    path = write_results(
        "serving",
        {
            "threads": args.threads,
            "profile": args.profile,
            "mean_words": words,
            "raw": raw,
            "naive": naive,
            "plain": served["plain"],
            "ours": served["ours"],
            "chat": {"sequential_tokens_per_s": sequential, "streams_tokens_per_s": served["chat"]},
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
