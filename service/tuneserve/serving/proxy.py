"""What Serve's HTTP proxy runs before any application: the body guard and our error shape.

Serve calls ``proxy_middlewares`` as the proxy starts when
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names it (``PROXY_CALLBACK``) in the
environment the cluster's processes start with (``local.connect_ray``, the Dockerfile).

The body guard: the proxy reads a client's body into an unbounded queue as fast as it
arrives, from the moment it routes the request (also while the request waits for a busy
replica) until the replica's answer is complete; only a guard in the proxy bounds that.

The error shape: the proxy answers some requests itself, in plain text — a task server's
queue is full (503, with ``Retry-After``), the request timed out (408) — or not at all: its
replica died holding the request. Inference requests go from the proxy straight to a task server's
replica, with no gateway to turn those into JSON, so this does: every error a client gets
has the ``{"error": {...}}`` body, and a replica that died says "retry" (503), not 500.
"""

from __future__ import annotations

import os

from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuneserve.errors import NotFound, Timeout, TuneserveError, Unavailable
from tuneserve.serving.body_limit import BodyLimit, proxy_rules
from tuneserve.serving.errors import error_response

PROXY_CALLBACK = "tuneserve.serving.proxy:proxy_middlewares"
REPLICA_GONE = "the server process handling this request stopped; retry shortly"
# headers of the proxy's answer that ours replaces (the request id and the rest stay)
_REPLACED = {b"content-type", b"content-length", b"retry-after", b"www-authenticate"}


def proxy_middlewares() -> list[Middleware]:
    """The proxy's middlewares (Serve's callback). Behind HAProxy, Serve puts them around
    each ingress replica's own HTTP server instead, where an early answer keeps the
    connection (``body_limit``'s docstring says why)."""
    behind_haproxy = os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "0") == "1"
    guard = Middleware(BodyLimit, rules=proxy_rules, keep_connection=behind_haproxy)
    return [Middleware(ProxyErrors), guard]


def as_ours(status: int, text: str, retry_after: str | None) -> TuneserveError:
    """The error a plain-text answer of the proxy stands for."""
    if status in (500, 503):  # our apps answer every failure in JSON: the replica is gone
        reason = text or "the server is not available"
        seconds = int(retry_after) if retry_after and retry_after.isdigit() else 1
        return Unavailable(f"{reason.rstrip('.')}; retry shortly", retry_after_s=seconds)
    known = {404: NotFound, 408: Timeout}.get(status, TuneserveError)
    error = known(text or f"HTTP {status}")
    error.status_code = status  # the proxy's status stands; only the body changes
    return error


class ProxyErrors:
    """Pure ASGI: an error the proxy answers in plain text goes out in our JSON shape."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None  # the start of a plain-text error, until its body ends
        body = b""
        started = False

        async def send_ours(message: Message) -> None:
            nonlocal held, body, started
            if message["type"] == "http.response.start":
                started = True
                if _plain_error(message):
                    held = message
                    return
            if held is None:
                await send(message)
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                headers = dict(held.get("headers", []))
                text = body.decode("utf-8", "replace").strip()
                retry = headers.get(b"retry-after", b"").decode("latin-1") or None
                response = error_response(as_ours(held["status"], text, retry))
                kept = [(k, v) for k, v in held.get("headers", []) if k.lower() not in _REPLACED]
                await _send(send, response, kept)

        await self.app(scope, receive, send_ours)
        if not started:  # Serve's proxy sends nothing when the replica died holding it
            await _send(send, error_response(Unavailable(REPLICA_GONE, retry_after_s=1)))


async def _send(send: Send, response: Response, headers: list | None = None) -> None:
    start = {"type": "http.response.start", "status": response.status_code}
    await send(start | {"headers": [*(headers or []), *response.raw_headers]})
    await send({"type": "http.response.body", "body": response.body})


def _plain_error(start: Message) -> bool:
    """An error status whose body is not JSON: only the proxy's own answers are."""
    headers = dict(start.get("headers", []))
    content_type = headers.get(b"content-type", b"")
    return start["status"] >= 400 and not content_type.startswith(b"application/json")
