"""What metrics cost: ``python -m bench.metrics_cost`` (``make bench``).

Two copies of the service on one Ray cluster, same models and replicas: one records
metrics (the default), the other runs with ``metrics_enabled=false``. Rounds alternate
between them, so drift of the machine (other load, thermal) hits both alike; the table
gives each one's median throughput and p50 over the rounds, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from ray import serve
from tuneserve.registry import connect
from tuneserve.serving import local
from tuneserve.serving.app import build_app
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import console, post_json, print_table, review_sentences, run_load, write_results
from bench.serving import bench_settings, wait_http

LEVELS = [(1, 60), (32, 320)]  # (concurrency, requests) per round


def wait_ready(url: str) -> None:
    wait_http(url, "/readyz")
    deadline = time.monotonic() + 300
    while httpx.get(f"{url}/readyz", timeout=30).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} never became ready")
        time.sleep(0.5)


async def one_round(name: str, url: str, sentences: list[str], concurrency: int, requests: int):
    async with httpx.AsyncClient(
        base_url=url, timeout=120, limits=httpx.Limits(max_connections=64)
    ) as client:
        body_of = lambda i: {"inputs": sentences[i % len(sentences)]}  # noqa: E731
        call = post_json(client, "/v1/classify", body_of)
        return await run_load(name, concurrency, requests, call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = bench_settings(args.threads, args.profile).model_copy(
        update={"served_tasks": ["classification"]}
    )
    registry, store = connect(settings)
    for report in build_all(settings, ["sentiment"]):
        register_starter_model(report, settings, registry, store)
    sentences = review_sentences(400)

    url = local.start(settings)
    contenders = {"metrics on": url, "metrics off": f"{url}/off"}
    try:
        off = settings.model_copy(update={"metrics_enabled": False, "app_name": "metrics-off"})
        serve.run(build_app(off), name="metrics-off", route_prefix="/off", blocking=False)
        for address in contenders.values():
            wait_ready(address)
            asyncio.run(one_round("warm-up", address, sentences, 4, 40))
        results: dict[tuple[str, int], list] = {}
        for round_index in range(args.rounds):
            order = list(contenders.items())
            if round_index % 2:
                order.reverse()
            for name, address in order:
                for concurrency, requests in LEVELS:
                    result = asyncio.run(one_round(name, address, sentences, concurrency, requests))
                    results.setdefault((name, concurrency), []).append(result)
    finally:
        local.stop()

    rows, summary = [], {}
    for concurrency, _ in LEVELS:
        on, off = results[("metrics on", concurrency)], results[("metrics off", concurrency)]
        on_rps = statistics.median(r.throughput for r in on)
        off_rps = statistics.median(r.throughput for r in off)
        on_p50 = statistics.median(r.p50_ms for r in on)
        off_p50 = statistics.median(r.p50_ms for r in off)
        failed = sum(r.failed for r in on + off)
        rows.append([concurrency, on_rps, off_rps, on_rps / off_rps, on_p50, off_p50, failed])
        summary[concurrency] = {
            "metrics_on_rps": on_rps,
            "metrics_off_rps": off_rps,
            "throughput_on_over_off": on_rps / off_rps,
            "p50_on_ms": on_p50,
            "p50_off_ms": off_p50,
            "rounds": {"on": on, "off": off},
        }
    print_table(
        f"sentiment over HTTP, metrics on vs off (median of {args.rounds} alternating rounds)",
        ["concurrency", "on req/s", "off req/s", "on ÷ off", "on p50 ms", "off p50 ms", "failed"],
        rows,
    )
    path = write_results("metrics_cost", {"threads": args.threads, "levels": summary})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
