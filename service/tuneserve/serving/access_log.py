"""One JSON log line per HTTP request on the gateway: request id, route, model, version,
status and latency. The request id is Serve's own: the proxy takes the client's
``X-Request-ID`` (or makes one) and returns it on the response."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

from fastapi import FastAPI, Request

logger = logging.getLogger("tuneserve.access")
# routes record the model and version that served the request here (see Gateway.resolve)
SERVED: ContextVar[dict | None] = ContextVar("tuneserve_served", default=None)


def _request_id() -> str:
    from ray.serve.context import _get_serve_request_context

    context = _get_serve_request_context()
    return context.request_id if context else ""


def note_served(model: str, version: int) -> None:
    served = SERVED.get()
    if served is not None:
        served.update(model=model, version=version)


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
        route = getattr(request.scope.get("route"), "path", request.url.path)
        logger.info(
            "request",
            extra={
                "request_id": _request_id(),
                "method": request.method,
                "route": route,
                "status": status,
                "latency_ms": round(1000 * (time.perf_counter() - started), 2),
                **served,
            },
        )
        SERVED.reset(token)


def install_access_log(app: FastAPI) -> None:
    app.middleware("http")(access_log)
