"""``/metrics``: the registry-derived series in Prometheus text format.

Per-replica series (requests, latency, batches, tokens, loads, swaps) are not here: Ray's
metrics agent on each node exports them (``ray_metrics_export_port``).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tuneserve.api.tasks import ErrorBody
from tuneserve.errors import NotFound
from tuneserve.serving.deps import GatewayDep

router = APIRouter(tags=["observability"])


# the Prometheus text format, documented as such; 404: metrics are turned off
RESPONSES = {
    200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
    404: {"model": ErrorBody},
}


@router.get("/metrics", response_class=Response, responses=RESPONSES)
async def metrics(gateway: GatewayDep) -> Response:
    """Versions and aliases, jobs by state and duration, training progress, evaluations."""
    if not gateway.settings.telemetry.metrics_enabled:
        raise NotFound("metrics are turned off (metrics_enabled)", param="metrics_enabled")
    body = await asyncio.to_thread(generate_latest, gateway.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
