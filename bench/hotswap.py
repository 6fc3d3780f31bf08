"""Hot-swap benchmark: ``python -m bench.hotswap`` (part of ``make bench``).

Steady load on ``sentiment`` (two replicas, 8 client threads) while production is promoted
to another version and rolled back, 10 times each. Reports failed requests, p50/p99 in
steady state and during swaps, and how long each swap takes: from the promote (rollback)
call to the moment after which every response comes from the new version.
"""

from __future__ import annotations

import argparse
import threading
import time

import httpx
from tuneserve.registry import connect
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import console, percentile, print_table, wait_ready, write_results
from bench.serving import bench_settings


class Load:
    def __init__(self, url: str, threads: int):
        self.url, self.records = url, []  # (sent, latency, status, version)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post("/v1/classify", json={"inputs": "A moving film."})
                    status = response.status_code
                    version = response.json().get("version") if status == 200 else None
                except httpx.HTTPError:
                    status, version = 0, None
                self.records.append((sent, time.monotonic() - sent, status, version))

    def settled_at(self, version: int, after: float, timeout_s: float = 60) -> float:
        """When responses switched for good: first answer of the last run of ``version``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            recent = [r for r in self.records if r[0] > after]
            if len(recent) >= 16 and all(r[3] == version for r in recent[-16:]):
                switch = after
                for sent, latency, _, served in recent:
                    if served != version:
                        switch = sent + latency
                return switch
            time.sleep(0.02)
        raise RuntimeError(f"never settled on version {version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    args = parser.parse_args()
    settings = bench_settings(1, args.profile).updated(
        serving={
            "served_tasks": ["classification"],
            "alias_cache_ttl_s": 0.5,
            "task_overrides": {"classification": {"num_replicas": 2}},
        }
    )
    registry, store = connect(settings.registry)
    for report in build_all(settings, ["sentiment"]):
        register_starter_model(report, settings, registry, store)
    first = registry.get_version("sentiment", 1)
    registry.register_version(
        "sentiment",
        artifact_uri=first.artifact_uri,
        sha256=first.sha256,
        metrics=first.metrics,
        base_version=1,
        lineage={"bench": "copy"},
    )
    from tuneserve.serving import local

    url = local.start(settings)
    swaps, during = [], []
    try:
        wait_ready(url)
        load = Load(url, args.threads)
        for thread in load.threads:
            thread.start()
        time.sleep(8)  # steady state first
        steady_end = time.monotonic()
        with httpx.Client(base_url=url, timeout=120) as admin:
            for _ in range(args.swaps):
                for kind, call, version in (
                    ("promote", ("promote", {"version": 2}), 2),
                    ("rollback", ("rollback", None), 1),
                ):
                    started = time.monotonic()
                    response = admin.post(f"/v1/models/sentiment/{call[0]}", json=call[1])
                    assert response.status_code == 200, response.text
                    settled = load.settled_at(version, started)
                    swaps.append(
                        {
                            "kind": kind,
                            "call_s": response.json()["seconds"],
                            "to_all_responses_s": settled - started,
                        }
                    )
                    during.append((started, settled))
        load.stop.set()
        for thread in load.threads:
            thread.join()
    finally:
        local.stop()
    steady = [r[1] for r in load.records if r[0] < steady_end]
    swapping = [r[1] for r in load.records if any(a <= r[0] <= b for a, b in during)]
    failed = sum(r[2] != 200 for r in load.records)
    rows = []
    for kind in ("promote", "rollback"):
        times = [s["to_all_responses_s"] for s in swaps if s["kind"] == kind]
        calls = [s["call_s"] for s in swaps if s["kind"] == kind]
        rows.append([kind, len(times), sum(calls) / len(calls), max(times)])
    print_table(
        "swap duration (seconds)", ["swap", "count", "mean call", "max to all responses"], rows
    )
    print_table(
        f"{len(load.records)} requests, {failed} failed",
        ["phase", "p50 ms", "p99 ms"],
        [
            ["steady", 1000 * percentile(steady, 0.5), 1000 * percentile(steady, 0.99)],
            ["during swaps", 1000 * percentile(swapping, 0.5), 1000 * percentile(swapping, 0.99)],
        ],
    )
    path = write_results(
        "hotswap",
        {
            "requests": len(load.records),
            "failed": failed,
            "swaps": swaps,
            "steady_p50_ms": 1000 * percentile(steady, 0.5),
            "steady_p99_ms": 1000 * percentile(steady, 0.99),
            "swap_p50_ms": 1000 * percentile(swapping, 0.5),
            "swap_p99_ms": 1000 * percentile(swapping, 0.99),
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
