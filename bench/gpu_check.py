"""GPU against CPU, through the service: ``bash bench/gpu_check.sh`` (needs an NVIDIA GPU).

One Ray cluster that has the GPU. Training: the same classification job (sentiment, same
rows and hyperparameters) with ``use_gpu`` true (one Ray Train worker on the GPU, bf16
autocast) and false (one worker on the CPU); samples/s from the job's own events. Serving:
the chat task server deployed with ``num_gpus: 1`` and then with none; tokens/s of
concurrent completions. Prints both with the GPU ÷ CPU ratio and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import torch
from tuneserve.registry import connect
from tuneserve.serving import local
from tuneserve.serving.app import serve_apps
from tuneserve.settings import Settings
from tuneserve.training.config import TrainingConfig
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import console, print_table, wait_ready, write_results
from bench.finetune import labelled_rows, through_service
from bench.serving import bench_settings


def gpu_settings(profile: str, chat_gpus: float) -> Settings:
    base = bench_settings(threads=4, profile=profile)
    return base.updated(
        serving={
            "served_tasks": ["classification", "chat"],
            "task_overrides": {"chat": {"num_gpus": chat_gpus}},
        },
        training={"torch_threads": 4, "cpus_per_worker": 1},
        ray={"num_cpus": 8},
    )


async def chat_tokens_per_s(url: str, requests: int, concurrency: int, max_tokens: int) -> dict:
    body = {
        "messages": [{"role": "user", "content": "Tell me about your weekend plans."}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def one() -> int:
            async with gate:
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                return response.json()["usage"]["completion_tokens"]

        await one()  # warm-up
        started = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one() for _ in range(requests))))
        seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def redeploy_chat(settings: Settings) -> str:
    serve_apps(settings, bind_host=settings.serving.host)
    url = f"http://{settings.serving.host}:{settings.serving.port}"
    wait_ready(url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--chat-requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no GPU: run this where nvidia-smi shows one"
    settings = gpu_settings(args.profile, chat_gpus=1)
    registry, store = connect(settings.registry)
    for report in build_all(settings, ["sentiment", "chat"]):
        register_starter_model(report, settings, registry, store)
    train, validation, source = labelled_rows(args.rows, 200)
    config = TrainingConfig(n_epochs=1, batch_size=32, learning_rate=5e-5, seed=0)
    results: dict = {"gpu": torch.cuda.get_device_name(0), "rows": len(train), "source": source}
    url = local.start(settings)
    try:
        wait_ready(url)
        for device, use_gpu in (("gpu", True), ("cpu", False)):
            results[f"training_{device}"] = through_service(
                url, settings, train, validation, config, use_gpu=use_gpu
            )
        for device, gpus in (("gpu", 1), ("cpu", 0)):
            url = redeploy_chat(gpu_settings(args.profile, chat_gpus=gpus))
            results[f"chat_{device}"] = asyncio.run(
                chat_tokens_per_s(url, args.chat_requests, args.concurrency, args.max_tokens)
            )
    finally:
        local.stop()
    train_gpu, train_cpu = results["training_gpu"], results["training_cpu"]
    chat_gpu, chat_cpu = results["chat_gpu"], results["chat_cpu"]
    print_table(
        f"GPU ({results['gpu']}) against CPU, through the service",
        ["", "GPU", "CPU", "GPU ÷ CPU"],
        [
            [
                "training samples/s",
                train_gpu["samples_per_s"],
                train_cpu["samples_per_s"],
                train_gpu["samples_per_s"] / train_cpu["samples_per_s"],
            ],
            [
                "chat tokens/s",
                chat_gpu["tokens_per_s"],
                chat_cpu["tokens_per_s"],
                chat_gpu["tokens_per_s"] / chat_cpu["tokens_per_s"],
            ],
        ],
    )
    console.print(f"validation accuracy after the GPU job: {train_gpu['validation_accuracy']}")
    console.print(f"results: {write_results('gpu_check', results)}")


if __name__ == "__main__":
    main()
