"""The proxy's own plain-text errors go out in our JSON shape (``serving/proxy.py``).

In-process, at the ASGI level, with an inner app that answers as Serve's proxy does; the
live path (a task server's full queue answered by the real proxy) is in
``test_serving_limits.py``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from tuneserve.serving.proxy import ProxyErrors


def answer(status: int, body: bytes, headers: list[tuple[bytes, bytes]], chunks: int = 1):
    """An inner app sending ``body`` in ``chunks`` parts, with ``headers``."""

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        size = -(-len(body) // chunks)
        for index in range(chunks):
            part = body[index * size : (index + 1) * size]
            await send(
                {"type": "http.response.body", "body": part, "more_body": index < chunks - 1}
            )

    return app


def through_proxy_errors(app) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/classify", "headers": []}
    asyncio.run(ProxyErrors(app)(scope, receive, send))
    start, *bodies = sent
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in bodies)


PLAIN = [(b"content-type", b"text/plain; charset=utf-8"), (b"x-request-id", b"abc")]


def test_a_full_queue_is_a_json_503_keeping_retry_after_and_the_request_id():
    text = b"Request dropped due to backpressure (num_queued_requests=1, max_queued_requests=1)."
    status, headers, body = through_proxy_errors(
        answer(503, text, [*PLAIN, (b"retry-after", b"2")], chunks=3)
    )
    error = json.loads(body)["error"]
    assert status == 503 and error["type"] == "service_unavailable"
    assert "backpressure" in error["message"] and error["message"].endswith("retry shortly")
    assert headers[b"retry-after"] == b"2" and headers[b"x-request-id"] == b"abc"
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body)


def test_a_replica_that_died_holding_the_request_says_retry_not_500():
    status, headers, body = through_proxy_errors(answer(500, b"Internal Server Error", PLAIN))
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert json.loads(body)["error"]["type"] == "service_unavailable"


def test_a_request_the_proxy_leaves_unanswered_is_a_503_to_retry():
    """Serve's proxy sends nothing at all when the replica died holding the request."""

    async def silent(scope, receive, send) -> None:
        return None

    status, headers, body = through_proxy_errors(silent)
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert json.loads(body)["error"]["type"] == "service_unavailable"


@pytest.mark.parametrize(("status", "kind"), [(408, "timeout_error"), (404, "not_found_error")])
def test_other_proxy_errors_keep_their_status_in_our_shape(status, kind):
    got, _, body = through_proxy_errors(answer(status, b"Request abc timed out.", PLAIN))
    assert got == status and json.loads(body)["error"]["type"] == kind


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (422, b"application/json", b'{"error": {"type": "invalid_request_error"}}'),
        (200, b"text/plain; version=0.0.4", b"# HELP metrics\n"),  # /metrics
        (200, b"text/event-stream", b"data: [DONE]\n\n"),
    ],
)
def test_what_the_apps_answer_passes_untouched(status, content_type, body):
    headers = [(b"content-type", content_type)]
    assert through_proxy_errors(answer(status, body, headers, chunks=2)) == (
        status,
        dict(headers),
        body,
    )
