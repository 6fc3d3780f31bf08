"""What metrics cost: ``python -m bench.metrics_cost`` (``make bench``).

Two copies of the service on one Ray cluster, same models and replicas: one records
metrics (the default), the other runs with ``metrics_enabled=false``. Rounds alternate
between them, so drift of the machine (other load, thermal) hits both alike; the table
gives each one's median throughput and p50 over the rounds, and their ratio.

Round-to-round noise on a small machine is larger than what metrics cost, so the bench
also times the recording calls themselves inside a Ray worker: a noise-free figure for
the cost per request (a classify request at concurrency 1 makes 8 of them).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import ray
from ray import serve
from tuneserve.registry import connect
from tuneserve.serving import local
from tuneserve.serving.app import serve_apps
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import (
    console,
    json_poster,
    print_table,
    review_sentences,
    run_load,
    wait_ready,
    write_results,
)
from bench.serving import bench_settings

LEVELS = [(1, 60), (32, 320)]  # (concurrency, requests) per round
# a lone classify request: HTTP count + duration (gateway), request + items counts,
# batch size, queue wait, batch duration, input tokens (task server)
RECORDS_PER_REQUEST = 8


@ray.remote(num_cpus=0)
def recording_cost(calls: int = 20_000) -> dict[str, float]:
    """Microseconds per counter increment and per histogram observation, in a worker."""
    from tuneserve.telemetry import Recorder, catalog

    recorder = Recorder(enabled=True)
    labels = {"task": "classification", "model": "bench", "version": "1"}
    timings = {}
    for name, record in (
        ("count_us", lambda: recorder.count(catalog.INFERENCE_ITEMS, 1, **labels)),
        ("observe_us", lambda: recorder.observe(catalog.QUEUE_DURATION, 0.01, **labels)),
    ):
        record()
        started = time.perf_counter()
        for _ in range(calls):
            record()
        timings[name] = 1e6 * (time.perf_counter() - started) / calls
    return timings


async def one_round(name: str, url: str, sentences: list[str], concurrency: int, requests: int):
    body_of = lambda i: {"inputs": sentences[i % len(sentences)]}  # noqa: E731
    async with json_poster(url, "/v1/classify", body_of) as call:
        return await run_load(name, concurrency, requests, call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = bench_settings(args.threads, args.profile).updated(
        serving={"served_tasks": ["classification"]}
    )
    registry, store = connect(settings.registry)
    for report in build_all(settings, ["sentiment"]):
        register_starter_model(report, settings, registry, store)
    sentences = review_sentences(400)

    local.connect_ray(settings)
    serve.start(http_options={"host": settings.serving.host, "port": settings.serving.port})
    url = f"http://{settings.serving.host}:{settings.serving.port}"
    contenders = {"metrics on": f"{url}/on", "metrics off": f"{url}/off"}
    try:
        # two sibling apps, deployed alike: only the metrics setting tells them apart
        for name, enabled in (("on", True), ("off", False)):
            app = settings.updated(
                app_name=f"metrics-{name}", telemetry={"metrics_enabled": enabled}
            )
            serve_apps(app, bind_host=app.serving.host, prefix=f"/{name}")
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
        per_call = ray.get(recording_cost.remote())
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
    per_request_us = RECORDS_PER_REQUEST * max(per_call.values())
    lone_p50_ms = summary[1]["p50_off_ms"]
    console.print(
        f"recording: {per_call['count_us']:.1f} µs per count, {per_call['observe_us']:.1f} µs "
        f"per observation; about {per_request_us:.0f} µs per request, "
        f"{100 * per_request_us / (1000 * lone_p50_ms):.2f}% of the p50 at concurrency 1"
    )
    path = write_results(
        "metrics_cost",
        {
            "threads": args.threads,
            "levels": summary,
            "recording_us": per_call,
            "recording_us_per_request": per_request_us,
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
