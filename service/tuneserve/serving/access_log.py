"""Per HTTP request on the gateway: one JSON log line and the HTTP metrics.

The log line carries the request id, route, model, version, status and latency. The
request id is Serve's own: the proxy takes the client's ``X-Request-ID`` (or makes one)
and returns it on the response. Metrics are labelled by route *template*, never by the
raw path, so a scan of random URLs cannot blow up the series count.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

from fastapi import FastAPI, Request
from ray import serve

from tuneserve.telemetry import catalog

logger = logging.getLogger("tuneserve.access")
# routes record the model and version that served the request here (see Gateway.resolve)
SERVED: ContextVar[dict | None] = ContextVar("tuneserve_served", default=None)
UNMATCHED = "unmatched"  # the route label of a request no route took (a 404)
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}  # else "other"


def _request_id() -> str:
    from ray.serve.context import _get_serve_request_context

    context = _get_serve_request_context()
    return context.request_id if context else ""


def note_served(task: str, model: str, version: int) -> None:
    served = SERVED.get()
    if served is not None:
        served.update(task=task, model=model, version=version)


def note_texts(texts: list[str]) -> None:
    """Keep the request's texts for its log line (only when ``log_request_text`` is on)."""
    served = SERVED.get()
    if served is not None:
        served["texts"] = texts


async def access_log(request: Request, call_next):
    """The middleware (module-level, so the app pickles by reference to Serve replicas)."""
    started, served = time.perf_counter(), {}
    token = SERVED.set(served)
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        seconds = time.perf_counter() - started
        template = getattr(request.scope.get("route"), "path", None)
        logger.info(
            "request",
            extra={
                "request_id": _request_id(),
                "method": request.method,
                "route": template or request.url.path,
                "status": status,
                "latency_ms": round(1000 * seconds, 2),
                **served,
            },
        )
        SERVED.reset(token)
        _record(request.method, template or UNMATCHED, status, seconds, served)


def _record(method: str, route: str, status: int, seconds: float, served: dict) -> None:
    recorder = serve.get_replica_context().servable_object.recorder
    labels = {
        "route": route,
        "status_class": f"{status // 100}xx",
        "task": served.get("task", ""),
        "model": served.get("model", ""),
        "version": served.get("version", ""),
    }
    method = method if method in METHODS else "other"  # a client may send any token
    recorder.count(catalog.HTTP_REQUESTS, method=method, **labels)
    recorder.observe(catalog.HTTP_DURATION, seconds, **labels)


def install_access_log(app: FastAPI) -> None:
    app.middleware("http")(access_log)
