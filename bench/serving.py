"""Serving benchmark: ``python -m bench.serving`` (``make bench``).

Sentiment (the full-profile MiniLM starter model) at concurrency 1, 8 and 32, all in one
run: the raw in-process batched forward in fp32 (the reference) and as each variant (int8,
bf16, ONNX Runtime fp32 and int8), a naive FastAPI + transformers server doing one forward
per request, a plain Ray Serve deployment with ``@serve.batch``, and tuneserve at its
defaults, asked for each form by name (the row marked "serves" is what a request that names
no variant gets), then again with HAProxy as the HTTP ingress (``ray.haproxy``) on a fresh
cluster. Every contender runs with torch's default threads (the machine's cores) unless
``--threads`` says otherwise; tuneserve with its own default (the replica's cores).
With ../shared/data, the accuracy of each form on SST-2 sentences the model never saw.
Chat has its own benchmark, ``bench/chat.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
import torch
from tuneserve.registry import connect
from tuneserve.settings import Settings, VariantSettings
from tuneserve.tasks.classification import ClassificationItem, ClassificationRow
from tuneserve.tasks.handlers.by_size import BY_SIZE
from tuneserve.tasks.handlers.classification import ClassificationHandler
from tuneserve.tasks.handlers.variants import as_variant
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import (
    console,
    free_port,
    json_poster,
    print_table,
    review_sentences,
    run_load,
    sst2_rows,
    wait_http,
    wait_ready,
    write_results,
)
from bench.process_cpu import CpuMeter, serve_groups

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [(1, 60), (8, 200), (32, 320)]  # (concurrency, requests)
FORMS = ("fp32", *VariantSettings().kinds)  # fp32 and each variant kind


def bench_settings(threads: int | None, profile: str) -> Settings:
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


def raw_forward(handler: ClassificationHandler, sentences: list[str]) -> dict:
    """The reference: batches of 32 straight through the handler (the median of three
    passes after a whole pass to warm up: the first pass over new batch shapes runs a
    third slower), the CPU each sequence took in them, and single-item latency."""
    items = [ClassificationItem(text=s) for s in sentences]
    handler.predict_in_chunks(items, 32)
    passes = []
    cpu_started = time.process_time()
    for _ in range(3):
        started = time.perf_counter()
        handler.predict_in_chunks(items, 32)
        passes.append(time.perf_counter() - started)
    cpu_ms = 1000 * (time.process_time() - cpu_started) / (3 * len(items))
    batched = len(items) / statistics.median(passes)
    singles = []
    for item in items[:40]:
        t = time.perf_counter()
        handler.predict([item])
        singles.append(time.perf_counter() - t)
    single_ms = 1000 * sorted(singles)[len(singles) // 2]
    return {"seq_per_s": batched, "single_ms": single_ms, "cpu_ms": cpu_ms}


def raw_variants(
    model_dir: Path, verdicts: dict[str, dict], sentences: list[str], labelled
) -> dict[str, dict]:
    """Each form in-process (``by-size`` where verification recorded it): speed, and
    accuracy on labelled SST-2 rows when present."""
    fp32 = ClassificationHandler.load(model_dir)
    results = {}
    for kind in (*FORMS, *([BY_SIZE] if BY_SIZE in verdicts else [])):
        handler = as_variant(fp32, kind, verdicts)
        results[kind] = raw_forward(handler, sentences)
        if labelled:
            rows = [ClassificationRow(text=text, label=label) for text, label in labelled]
            results[kind]["accuracy"] = handler.evaluate(rows)["accuracy"]
    return results


async def load_levels(name: str, url: str, path: str, body_of, groups: dict) -> list:
    """Each level's result, with the CPU per request of the client, of each process group
    in ``groups`` (label → pids) and of the rest of the machine."""
    results = []
    async with json_poster(url, path, body_of) as call:
        await run_load(name, 4, 20, call)  # warm-up
        for concurrency, requests in LEVELS:
            meter = CpuMeter(groups)
            meter.start()
            result = await run_load(name, concurrency, requests, call)
            results.append(replace(result, cpu_ms=meter.per_request(requests)))
    return results


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
        groups = {"naive server": [server.pid]}
        return asyncio.run(load_levels("naive FastAPI", url, "/classify", body_of, groups))
    finally:
        server.terminate()
        server.wait()


def measure_ours(url: str, sentences: list[str], ingress: str) -> tuple[str, dict[str, list]]:
    """The variant tuneserve serves unasked, and each form asked for by name at each level."""
    text = lambda i: {"inputs": sentences[i % len(sentences)], "model": "sentiment"}  # noqa: E731
    served_as = httpx.post(f"{url}/v1/classify", json=text(0), timeout=60).json()["variant"]
    ours = {
        kind: asyncio.run(
            load_levels(
                f"tuneserve {kind}{ingress}" + (" (serves)" if kind == served_as else ""),
                url,
                "/v1/classify",
                lambda i, kind=kind: text(i) | {"variant": kind},
                serve_groups(),
            )
        )
        for kind in dict.fromkeys((*FORMS, served_as))  # by-size: where it serves
    }
    return served_as, ours


def run_haproxy(settings: Settings, sentences: list[str]) -> dict[str, list]:
    """tuneserve again, on a fresh local cluster whose HTTP ingress is HAProxy."""
    from tuneserve.serving import local

    url = local.start(settings.updated(ray={"haproxy": True}))
    try:
        wait_ready(url)
        return measure_ours(url, sentences, " · HAProxy")[1]
    finally:
        local.stop()


def run_ray(settings: Settings, model_dir: Path, sentences: list[str]) -> dict:
    from ray import serve
    from tuneserve.serving import local

    from bench.plain_serve import PlainClassifier

    url = local.start(settings)
    try:
        wait_ready(url)
        served_as, ours = measure_ours(url, sentences, "")
        serve.run(
            PlainClassifier.bind(str(model_dir), torch.get_num_threads()),
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
                serve_groups(),
            )
        )
        serve.delete("plain")
    finally:
        local.stop()
    return {"ours": ours, "served_as": served_as, "plain": plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads, every contender (default: "
        "torch's own for the baselines, tuneserve's own default for it)",
    )
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    settings = bench_settings(args.threads, args.profile)
    settings = settings.updated(serving={"served_tasks": ["classification"]})
    registry, store = connect(settings.registry)
    (report,) = build_all(settings, ["sentiment"])
    register_starter_model(report, settings, registry, store)
    model_dir = settings.zoo.dir / "sentiment"
    sentences = review_sentences(400)
    labelled = sst2_rows(2000, seed=11)
    words = sum(len(s.split()) for s in sentences) / len(sentences)
    console.print(
        f"{len(sentences)} sentences, {words:.1f} words on average; torch threads {threads} "
        f"for the baselines, tuneserve {settings.serving.threads()} per replica"
    )

    raw = raw_variants(model_dir, report.variants or {}, sentences, labelled)
    naive = run_naive(model_dir, threads, sentences)
    served = run_ray(settings, model_dir, sentences)
    haproxy = run_haproxy(settings, sentences)

    reference = raw["fp32"]["seq_per_s"]
    accuracy = {kind: raw[kind].get("accuracy", "-") for kind in raw}
    rows = [
        [
            f"raw batched forward {kind}",
            "-",
            r["seq_per_s"],
            r["seq_per_s"] / reference,
            r["single_ms"],
            "-",
            0,
            r["cpu_ms"],
            accuracy[kind],
        ]
        for kind, r in raw.items()
    ]
    ours = [
        (kind, result)
        for measured in (served["ours"], haproxy)
        for kind, results in measured.items()
        for result in results
    ]
    contenders = [("fp32", r) for r in naive + served["plain"]] + ours
    for kind, result in contenders:
        rows.append(
            [
                result.contender,
                result.concurrency,
                result.throughput,
                result.throughput / reference,
                result.p50_ms,
                result.p99_ms,
                result.failed,
                result.cpu_ms["total"],
                accuracy.get(kind, "-"),
            ]
        )
    print_table(
        "sentiment (throughput in requests/s; raw: sequences/s; accuracy on SST-2 rows)",
        [
            "contender",
            "concurrency",
            "throughput",
            "÷ raw fp32",
            "p50 ms",
            "p99 ms",
            "failed",
            "CPU ms/req",
            "accuracy",
        ],
        rows,
    )
    print_table(
        "CPU per request at concurrency 32 (ms of CPU time), by process",
        ["contender", "process", "ms"],
        [
            [result.contender, label, ms]
            for _, result in contenders
            if result.concurrency == 32
            for label, ms in result.cpu_ms.items()
            if ms >= 0.05
        ],
    )
    path = write_results(
        "serving",
        {
            "threads": threads,
            "tuneserve_threads": settings.serving.threads(),
            "profile": args.profile,
            "mean_words": words,
            "sst2_rows": len(labelled or []),
            "raw": raw,
            "naive": naive,
            "plain": served["plain"],
            "ours": served["ours"],
            "ours_haproxy": haproxy,
            "served_variant": served["served_as"],
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
