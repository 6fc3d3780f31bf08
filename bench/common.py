"""What the benchmarks share: the load generator, sentences, tables and result files."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table
from tuneserve.zoo.data import sentiment

RESULTS = Path(__file__).parent / "results"
console = Console(width=160)


@dataclass
class LoadResult:
    contender: str
    concurrency: int
    requests: int
    failed: int
    seconds: float
    throughput: float  # requests (or sequences) per second
    p50_ms: float
    p99_ms: float
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per request, by process


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def run_load(
    name: str, concurrency: int, requests: int, call: Callable[[int], Awaitable[bool]]
) -> LoadResult:
    """``requests`` calls, ``concurrency`` at a time; latency of each, failures counted."""
    latencies: list[float] = []
    failed = 0
    next_index = iter(range(requests))

    async def worker() -> None:
        nonlocal failed
        for index in next_index:
            started = time.perf_counter()
            ok = await call(index)
            latencies.append(time.perf_counter() - started)
            failed += not ok

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return LoadResult(
        contender=name,
        concurrency=concurrency,
        requests=requests,
        failed=failed,
        seconds=seconds,
        throughput=requests / seconds,
        p50_ms=1000 * statistics.median(latencies),
        p99_ms=1000 * percentile(latencies, 0.99),
    )


def load_session(connections: int = 64, timeout_s: float = 120) -> aiohttp.ClientSession:
    """The load generator's HTTP client. aiohttp, not httpx: on two cores shared with the
    server it measures, every CPU-second the client spends is taken from that server, and
    httpx spent 2.6 to 3.3 ms of CPU per small JSON request here against aiohttp's 0.17 to
    0.23 ms (both at concurrency 32 against one uvicorn server)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


@asynccontextmanager
async def json_poster(
    url: str, path: str, body_of: Callable[[int], dict], connections: int = 64
) -> AsyncIterator[Callable[[int], Awaitable[bool]]]:
    """A call for ``run_load``: POST ``body_of(index)`` to ``url + path``; True on a 200."""
    async with load_session(connections) as session:

        async def call(index: int) -> bool:
            try:
                async with session.post(url + path, json=body_of(index)) as response:
                    await response.read()
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        yield call


def review_sentences(n: int, seed: int = 7) -> list[str]:
    """Real SST-2 sentences when TUNESERVE_SHARED_DATA has them, else generated ones of
    similar length (one to three generated review sentences, 5–45 words)."""
    labelled = sst2_rows(n, seed)
    if labelled is not None:
        return [text for text, _ in labelled]
    rng = random.Random(seed)
    pool = [row["text"] for row in sentiment.generate("train", 2000, seed)]
    return [" ".join(rng.sample(pool, rng.randint(1, 3))) for _ in range(n)]


def sst2_rows(n: int, seed: int = 7) -> list[tuple[str, str]] | None:
    """``n`` SST-2 sentences with their labels (negative / positive), drawn with replacement;
    None when ../shared/data (or TUNESERVE_SHARED_DATA) is absent. The starter never trained
    on SST-2: this is real text it never saw."""
    shared = os.environ.get("TUNESERVE_SHARED_DATA")
    path = Path(shared or "../shared/data") / "classification" / "sst2_glue_train.tsv"
    if not path.is_file():
        return None
    rng = random.Random(seed)
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    picked = [rng.choice(lines).split("\t") for _ in range(n)]
    return [(text, ("negative", "positive")[int(label)]) for text, label in picked]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)))
    return path


def wait_http(url: str, path: str, deadline_s: float = 300) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url}{path} never answered")


def wait_ready(url: str, deadline_s: float = 300) -> None:
    """Until the service's /readyz says every production model is loaded."""
    wait_http(url, "/readyz", deadline_s)
    deadline = time.monotonic() + deadline_s
    while httpx.get(f"{url}/readyz", timeout=30).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} never became ready")
        time.sleep(0.5)
