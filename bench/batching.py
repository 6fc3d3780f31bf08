"""Batching benchmark: ``python -m bench.batching`` (``make bench``).

How a replica should cut what is queued into model batches, measured in-process on the
sentiment starter (MiniLM-L6) with SST-2 sentences (generated ones without ../shared/data):
arrival order in batches of 1–64 (every batch padded to its longest text), against the
same queue sorted by length and cut into batches of at most N items, or of at most T
padded tokens (as TEI does), and what a replica does (``serving/packing.py``: each queue of
32 sorted and cut by tokens estimated from characters). Sequences/s of each, for the fp32
weights and each variant (int8, bf16); the serving defaults (``serving.max_batch_size``,
``serving.batch_token_budget``) are chosen from this table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tuneserve.serving.packing import by_length, estimated_tokens
from tuneserve.settings import Settings
from tuneserve.tasks.classification import ClassificationItem
from tuneserve.tasks.handlers.classification import ClassificationHandler
from tuneserve.tasks.handlers.variants import as_variant
from tuneserve.zoo.build import build_all

from bench.common import console, print_table, review_sentences, write_results
from bench.serving import FORMS

ROOT = Path(__file__).resolve().parents[1]


def in_order(count: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, count))) for i in range(0, count, size)]


def sorted_by_items(lengths: Sequence[int], size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i : i + size] for i in range(0, len(order), size)]


def throughput(handler: ClassificationHandler, items: list, batches: list[list[int]]) -> float:
    handler.predict([items[i] for i in batches[0]])  # warm
    started = time.perf_counter()
    for batch in batches:
        handler.predict([items[i] for i in batch])
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument("--queue", type=int, default=256, help="queued texts per measurement")
    args = parser.parse_args()
    settings = Settings(
        data_dir=ROOT / ".tuneserve" / "bench",
        zoo={
            "cache_dir": ROOT / ".tuneserve" / "zoo",
            "corpora_dir": ROOT / ".tuneserve" / "corpora",
            "profile": args.profile,
        },
    )
    build_all(settings, ["sentiment"])  # cached after the first build
    fp32 = ClassificationHandler.load(settings.zoo.dir / "sentiment")
    texts = review_sentences(args.queue, seed=3)
    items = [ClassificationItem(text=t) for t in texts]
    lengths = [len(ids) for ids in fp32.tokenizer(texts, truncation=True)["input_ids"]]
    console.print(
        f"{len(texts)} texts, {sum(lengths) / len(lengths):.1f} tokens on average "
        f"(shortest {min(lengths)}, longest {max(lengths)}); torch threads "
        f"{torch.get_num_threads()}"
    )
    estimated = [estimated_tokens(text) for text in texts]
    count = len(items)
    plans = {f"arrival order, {n} items": in_order(count, n) for n in (1, 8, 16, 32, 64)}
    plans |= {f"sorted by length, {n} items": sorted_by_items(lengths, n) for n in (16, 32, 64)}
    plans |= {f"sorted, ≤{t} padded tokens": by_length(lengths, t) for t in (256, 512, 1024)}
    # what a replica does: tokens estimated from characters, within each queue of 32
    plans["served: queues of 32, sorted, ≤512 estimated"] = [
        [start + i for i in group]
        for start in range(0, count, 32)
        for group in by_length(estimated[start : start + 32], 512)
    ]
    results: dict[str, dict[str, float]] = {}
    for kind in FORMS:
        handler = as_variant(fp32, kind)
        for name, batches in plans.items():
            results.setdefault(name, {})[kind] = throughput(handler, items, batches)
    reference = results["arrival order, 32 items"]["fp32"]
    print_table(
        "sequences/s by batching plan (÷: to arrival order, 32 items, fp32)",
        ["plan", *(column for kind in FORMS for column in (kind, "÷"))],
        [
            [name, *(value for kind in FORMS for value in (r[kind], r[kind] / reference))]
            for name, r in results.items()
        ],
    )
    path = write_results(
        "batching",
        {
            "profile": args.profile,
            "threads": torch.get_num_threads(),
            "lengths": lengths,
            "sequences_per_s": results,
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
