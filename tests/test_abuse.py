"""Abuse through the real service: huge bodies refused while they stream in (no 500, no
hang), deep or huge-number JSON refused with a 4xx, and the memory of the gateway replica
and of Serve's HTTP proxy bounded meanwhile.

Memory is the kernel's own peak resident set (``peak_memory``).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import ray
from lazy_bodies import MULTIPART, GiB, MiB, Source, upload_source
from peak_memory import PeakMemory, actor_pids


def serve_pids() -> dict[str, int]:
    """The processes that hold a request body: the gateway replica and the HTTP proxy."""
    pids = actor_pids("gateway", lambda name: name.endswith(":Gateway"))
    pids |= actor_pids("proxy", lambda name: name == "ProxyActor")
    assert any(n.startswith("gateway") for n in pids) and any(n.startswith("proxy") for n in pids)
    return pids


def assert_too_large(response: httpx.Response, param: str | None) -> None:
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "payload_too_large"
    assert response.json()["error"]["param"] == param


@pytest.fixture(scope="module")
def pids(ready_service) -> dict[str, int]:
    assert ray.is_initialized()
    return serve_pids()


JSON = {"content-type": "application/json"}
HUGE = {
    "1 GiB chunked upload": ("/v1/files", lambda: upload_source(GiB), MULTIPART, "file"),
    "200 MB JSON, declared": (
        "/v1/classify",
        lambda: Source(200 * MiB),
        JSON | {"content-length": str(200 * MiB)},
        None,
    ),
    "200 MB JSON, chunked": ("/v1/classify", lambda: Source(200 * MiB), JSON, None),
}


@pytest.mark.parametrize("scenario", list(HUGE))
def test_a_huge_body_is_a_413_while_it_streams_in(http, pids, scenario):
    path, make, headers, param = HUGE[scenario]
    memory, source = PeakMemory(pids), make()
    assert_too_large(http.post(path, content=source, headers=headers), param)
    print(f"{scenario}: the client sent {source.sent / MiB:.1f} MiB before the 413")
    memory.check(scenario)
    assert source.sent < source.total  # the server stopped reading: it did not sink it all
    assert http.get("/healthz").status_code == 200


def test_20_parallel_50_mb_uploads_are_each_answered_by_the_limits(http, pids):
    """None fits the session's max_upload_bytes (256 KiB). Half declare their length
    (refused unread), half stream: refused past the limit, or a 503 while the gateway is
    reading its max_concurrent_uploads already."""
    memory = PeakMemory(pids)

    def post(index: int) -> int:
        source = upload_source(50 * MiB)
        headers = MULTIPART | ({"content-length": str(50 * MiB)} if index % 2 else {})
        with httpx.Client(base_url=str(http.base_url), timeout=120) as client:
            response = client.post("/v1/files", content=source, headers=headers)
        error = response.json()["error"]
        assert error["type"] in {"payload_too_large", "service_unavailable"}, response.text
        return response.status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(post, range(20)))
    print(f"20 parallel 50 MB uploads: {sorted(statuses)}")
    memory.check("20 parallel 50 MB uploads")
    assert set(statuses) <= {413, 503} and statuses.count(413) >= 10


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"inputs": "fine", "top_k": ' + b"9" * 100_000 + b"}", "more than 4300 digits"),
    ],
)
def test_deep_or_huge_number_json_is_a_400_saying_why(http, ready_service, body, reason):
    response = http.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]["message"]


def test_deep_or_huge_number_jsonl_lines_are_row_errors_naming_them(http, ready_service):
    good = json.dumps({"text": "fine", "label": "positive"}).encode() + b"\n"
    rows = good + b"[" * 100_000 + b"\n" + b'{"text": "x", "label": ' + b"9" * 100_000 + b"}\n"
    response = http.post(
        "/v1/files", files={"file": ("rows.jsonl", rows)}, data={"purpose": "fine-tune"}
    )
    assert response.status_code == 400, response.text
    details = response.json()["error"]["details"]
    assert [(d["line"], d["field"]) for d in details] == [(2, None), (3, None)]


def test_a_job_over_the_epoch_limit_is_refused_naming_n_epochs(
    http, ready_service, service_settings
):
    rows = b'{"text": "fine", "label": "positive"}\n{"text": "awful", "label": "negative"}\n'
    upload = http.post(
        "/v1/files", files={"file": ("r.jsonl", rows)}, data={"purpose": "fine-tune"}
    )
    assert upload.status_code == 200, upload.text
    over = service_settings.limits.max_epochs + 1
    body = {"model": "sentiment", "training_file": upload.json()["id"]}
    response = http.post(
        "/v1/fine_tuning/jobs", json=body | {"hyperparameters": {"n_epochs": over}}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "hyperparameters.n_epochs"
