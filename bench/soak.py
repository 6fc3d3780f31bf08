"""Soak benchmark: ``python -m bench.soak`` (part of ``make bench``).

Does the service stay healthy for minutes of sustained traffic while its control plane
works? The short benchmarks cannot tell: a slow leak, a replica that degrades after a few
thousand requests or a swap that fails one request in a thousand only shows over time.

1. Capacity: a closed-loop ramp (1, 2, 4, 8 clients) of mixed traffic over the five tasks
   (classify, ner, qa, translate, chat with a few tokens); it stops when more clients no
   longer add 10% throughput, and the best throughput is the capacity.
2. Baseline: open-loop traffic at 80% of capacity (requests sent on a fixed schedule,
   latency counted from the scheduled time, so a stall is not hidden) for ``--steady-s``.
3. Soak: the same traffic for ``--minutes`` while one fine-tuning job of ``sentiment`` runs
   (``promotion.auto`` false) and then its candidate is promoted and rolled back five times,
   spread over the rest of the run.

Reports errors by task (every non-2xx or transport error; target 0), p50/p99 per task in
the soak against the baseline, and the resident memory (VmRSS) of every Serve replica, the
HTTP proxy and the job runner before and after the soak (target: under 5% growth). Prints
tables and writes ``bench/results/soak-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import aiohttp
import httpx
from tuneserve.registry import connect
from tuneserve.training.config import TrainingConfig
from tuneserve.zoo.build import build_all
from tuneserve.zoo.data import dialogues, entities, qa, translation
from tuneserve.zoo.register import register_starter_model

from bench.common import (
    console,
    load_session,
    percentile,
    print_table,
    review_sentences,
    run_load,
    wait_ready,
    write_results,
)
from bench.finetune import labelled_rows, through_service
from bench.process_memory import memory_growth, rss, service_processes
from bench.serving import bench_settings

ROUTES = {
    "classify": "/v1/classify",
    "ner": "/v1/ner",
    "qa": "/v1/qa",
    "translate": "/v1/translate",
    "chat": "/v1/chat/completions",
}
RAMP = (1, 2, 4, 8)  # closed-loop clients
LOAD_SHARE = 0.8  # of capacity, for the baseline and the soak
MODEL = "sentiment"  # the model fine-tuned, promoted and rolled back
IN_FLIGHT = 64  # requests open at once; the rest wait their turn in the client
Request = tuple[str, str, dict]  # (task, route, body)
Sample = tuple[str, float, float, int]  # (task, due at s, latency s, status; 0: transport error)


def mixed_requests(per_task: int, seed: int = 5) -> list[Request]:
    """Held-out inputs of the starter models' own generators, the tasks interleaved."""
    bodies = {
        "classify": [{"inputs": s} for s in review_sentences(per_task, seed)],
        "ner": [
            {"inputs": " ".join(r["tokens"])} for r in entities.generate("heldout", per_task, seed)
        ],
        "qa": [
            {"question": r["question"], "context": r["context"]}
            for r in qa.generate("heldout", per_task, seed)
        ],
        "translate": [
            {"inputs": r["source"], "max_new_tokens": 24}
            for r in translation.generate("heldout", per_task, seed)
        ],
        "chat": [  # the dialogue up to its last answer, which the model writes (briefly)
            {"messages": r["messages"][:-1], "max_tokens": 8, "temperature": 0}
            for r in dialogues.generate("heldout", per_task, seed)
        ],
    }
    return [(task, ROUTES[task], bodies[task][i]) for i in range(per_task) for task in ROUTES]


async def send(http: aiohttp.ClientSession, url: str, request: Request) -> int:
    """The status of one request; 0 for a transport error (refused, reset, timed out)."""
    _, route, body = request
    try:
        async with http.post(url + route, json=body) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def find_capacity(url: str, requests: list[Request], per_level: int) -> list:
    """Closed-loop ramp until throughput stops growing; the results of each level."""

    async with load_session(IN_FLIGHT) as http:

        async def call(index: int) -> bool:
            return 200 <= await send(http, url, requests[index % len(requests)]) < 300

        await run_load("warm-up", 4, 4 * len(ROUTES), call)
        levels = []
        for clients in RAMP:
            levels.append(await run_load(f"{clients} clients", clients, per_level, call))
            if len(levels) > 1 and levels[-1].throughput < 1.1 * levels[-2].throughput:
                break
    return levels


async def open_loop(
    url: str,
    requests: list[Request],
    rate: float,
    seconds: float,
    until: asyncio.Task | None = None,
) -> list[Sample]:
    """``rate`` requests/s on a fixed schedule for ``seconds`` (and until ``until`` is done).

    Latency counts from when a request was due, not when it went out: a stalled service
    delays the sending too, and timing from the send would hide the stall. Requests past
    ``IN_FLIGHT`` wait on a semaphore, not in the client's pool, whose queue costs the client
    CPU in proportion to its length on every request (a full core in a first run here).
    """
    samples: list[Sample] = []
    pending: set[asyncio.Task] = set()
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def timed(request: Request, due: float) -> None:
        async with gate:
            status = await send(http, url, request)
        samples.append((request[0], due - started, time.perf_counter() - due, status))

    async with load_session(IN_FLIGHT) as http:
        started, index = time.perf_counter(), 0
        while True:
            due = started + index / rate
            if due - started >= seconds and (until is None or until.done()):
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(timed(requests[index % len(requests)], due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            index += 1
        await asyncio.gather(*pending)
    return samples


def timeline(samples: list[Sample], step_s: float = 60) -> list[dict]:
    """Every task together, minute by minute: does latency drift, and does it recover?"""
    minutes: dict[int, list[Sample]] = {}
    for sample in samples:
        minutes.setdefault(int(sample[1] // step_s), []).append(sample)
    return [
        {
            "from_s": step_s * minute,
            "requests": len(group),
            "errors": sum(not 200 <= s[3] < 300 for s in group),
            "p50_ms": 1000 * percentile([s[2] for s in group], 0.5),
            "p99_ms": 1000 * percentile([s[2] for s in group], 0.99),
        }
        for minute, group in sorted(minutes.items())
    ]


def by_task(samples: list[Sample]) -> dict[str, dict]:
    """Per task: requests, errors (by status), and p50/p99 of the successful ones."""
    summary = {}
    for task in ROUTES:
        mine = [(latency, status) for name, _, latency, status in samples if name == task]
        ok = [latency for latency, status in mine if 200 <= status < 300]
        errors = Counter(str(status) for _, status in mine if not 200 <= status < 300)
        summary[task] = {
            "requests": len(mine),
            "errors": sum(errors.values()),
            "errors_by_status": dict(errors),
            "p50_ms": 1000 * percentile(ok, 0.5),
            "p99_ms": 1000 * percentile(ok, 0.99),
        }
    return summary


async def move(admin: httpx.AsyncClient, kind: str, body: dict | None, t0: float) -> dict:
    """One promote or rollback of ``MODEL``, as the control-plane record shows it."""
    at = time.monotonic() - t0
    response = await admin.post(f"/v1/models/{MODEL}/{kind}", json=body)
    json_body = response.headers.get("content-type", "").startswith("application/json")
    answer = response.json() if json_body else {"text": response.text}
    return {
        "action": kind,
        "at_s": at,
        "status": response.status_code,
        "seconds": time.monotonic() - t0 - at,
        "swap_s": answer.get("seconds"),  # the service's own: load, warm-up, flip
        "to_version": answer.get("to_version"),
        "detail": None if response.status_code == 200 else answer,
    }


async def control_plane(
    url: str, settings, seconds: float, cycles: int, rows: int, settled: dict[str, int | None]
) -> list:
    """The fine-tuning job, then ``cycles`` promote/rollback pairs spread over the rest.

    A rollback right after a promotion needs no version: it goes back to what the promotion
    replaced (only a second rollback in a row must name one). After the first pair every
    replica holds both versions; ``settled`` gets each process's RSS then, the baseline
    that tells a leak from a second resident version.
    """
    t0 = time.monotonic()
    train, validation, _ = labelled_rows(rows, rows // 4)
    config = TrainingConfig(n_epochs=1, batch_size=16, learning_rate=5e-5, seed=0)
    try:
        job = await asyncio.to_thread(through_service, url, settings, train, validation, config)
    except AssertionError as failed:  # the job did not succeed: nothing to promote
        return [{"action": "fine-tune", "at_s": 0.0, "status": "failed", "detail": str(failed)}]
    actions = [{"action": "fine-tune", "at_s": 0.0, "status": 200, **job}]
    actions[0]["seconds"] = time.monotonic() - t0
    async with httpx.AsyncClient(base_url=url, timeout=300) as admin:
        result = (await admin.get(f"/v1/fine_tuning/jobs/{job['job']}")).json()["result"]
        candidate = result["candidate_version"]
        first = time.monotonic() - t0
        slot = max(seconds - first, 8.0 * cycles) / cycles
        for k in range(2 * cycles):  # promote at the start of a slot, roll back mid-slot
            await asyncio.sleep(max(0.0, t0 + first + k * slot / 2 - time.monotonic()))
            kind, body = ("promote", {"version": candidate}) if k % 2 == 0 else ("rollback", None)
            actions.append(await move(admin, kind, body, t0))
            if k == 1:
                settled.update({label: rss(pid) for label, pid in service_processes().items()})
    return actions


async def measure(url: str, settings, args) -> dict:
    """Capacity, baseline and soak, in that order, on one running service."""
    requests = mixed_requests(100)
    ramp = await find_capacity(url, requests, args.ramp_requests)
    rate = LOAD_SHARE * max(level.throughput for level in ramp)
    console.print(f"capacity {rate / LOAD_SHARE:.1f} requests/s; load {rate:.1f} requests/s")
    steady = await open_loop(url, requests, rate, args.steady_s)
    processes = service_processes()
    before = {label: rss(pid) for label, pid in processes.items()}
    soak_s = 60 * args.minutes
    settled: dict[str, int | None] = {}
    control = asyncio.create_task(
        control_plane(url, settings, soak_s, args.cycles, args.rows, settled)
    )
    soaked = await open_loop(url, requests, rate, soak_s, until=control)
    return {
        "rate": rate,
        "ramp": ramp,
        "steady": by_task(steady),
        "soak": against_baseline(by_task(steady), by_task(soaked)),
        "soak_requests": len(soaked),
        "soak_timeline": timeline(soaked),
        "control": control.result(),
        "memory": memory_growth(before, processes),
        "memory_after_first_cycle": memory_growth(settled, processes),
    }


def against_baseline(steady: dict[str, dict], soak: dict[str, dict]) -> dict[str, dict]:
    """Per task: the soak's figures, the baseline's p50/p99, and soak ÷ baseline."""

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    return {
        task: {
            **figures,
            "steady_p50_ms": steady[task]["p50_ms"],
            "steady_p99_ms": steady[task]["p99_ms"],
            "p50_ratio": ratio(figures["p50_ms"], steady[task]["p50_ms"]),
            "p99_ratio": ratio(figures["p99_ms"], steady[task]["p99_ms"]),
        }
        for task, figures in soak.items()
    }


def report(result: dict) -> None:
    print_table(
        "capacity ramp (closed loop, mixed tasks)",
        ["clients", "requests/s", "p50 ms", "p99 ms", "failed"],
        [[r.concurrency, r.throughput, r.p50_ms, r.p99_ms, r.failed] for r in result["ramp"]],
    )
    keys = ["steady_p50_ms", "steady_p99_ms", "p50_ms", "p99_ms", "p50_ratio", "p99_ratio"]
    print_table(
        f"latency (ms) at {result['rate']:.1f} requests/s: soak against baseline",
        ["task", "steady p50", "p99", "soak p50", "p99", "p50 ×", "p99 ×", "requests", "errors"],
        [
            [task, *(t[k] for k in keys), t["requests"], t["errors"]]
            for task, t in result["soak"].items()
        ],
    )
    print_table(
        "the soak minute by minute (every task)",
        ["from s", "requests", "errors", "p50 ms", "p99 ms"],
        [list(minute.values()) for minute in result["soak_timeline"]],
    )
    print_table(
        "control plane during the soak",
        ["action", "at s", "status", "seconds", "to version"],
        [
            [a["action"], a["at_s"], a["status"], a.get("seconds", "-"), a.get("to_version", "-")]
            for a in result["control"]
        ],
    )
    print_table(
        "resident memory before → after the soak",
        ["process", "start MiB", "end MiB", "growth %"],
        [[label, *m.values()] for label, m in result["memory"].items()],
    )
    print_table(
        "resident memory after the first promote/rollback → end (target: growth < 5%)",
        ["process", "settled MiB", "end MiB", "growth %"],
        [[label, *m.values()] for label, m in result["memory_after_first_cycle"].items()],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="length of the soak")
    parser.add_argument("--steady-s", type=float, default=60, help="length of the baseline")
    parser.add_argument("--cycles", type=int, default=5, help="promote/rollback pairs")
    parser.add_argument("--rows", type=int, default=200, help="training rows of the job")
    parser.add_argument("--ramp-requests", type=int, default=150, help="per ramp level")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per replica")
    parser.add_argument("--profile", default="tiny", choices=["full", "tiny"])
    args = parser.parse_args()
    settings = bench_settings(args.threads, args.profile).updated(
        serving={"served_tasks": None}, training={"torch_threads": args.threads}
    )
    registry, store = connect(settings.registry)
    for built in build_all(settings):
        register_starter_model(built, settings, registry, store)
    from tuneserve.serving import local

    url = local.start(settings)
    try:
        wait_ready(url)
        result = asyncio.run(measure(url, settings, args))
    finally:
        local.stop()
    report(result)
    errors = sum(task["errors"] for task in result["soak"].values())
    settled = result["memory_after_first_cycle"].values()
    growth = [m["growth_pct"] for m in settled if m["growth_pct"] is not None]
    console.print(
        f"soak: {errors} errors in {result['soak_requests']} requests; "
        f"largest RSS growth after the first cycle {max(growth, default=float('nan')):.1f}%"
    )
    path = write_results("soak", {"profile": args.profile, "minutes": args.minutes, **result})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
