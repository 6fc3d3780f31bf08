"""The task routes (``/v1/classify``, ``/v1/ner``, …), generated from the task specs.

Each spec with a ``route`` gets ``POST /v1/<route>`` taking its ``Request`` and documented
with its ``Response``; the body is parsed once by FastAPI and handed to the gateway.
"""

# no ``from __future__ import annotations``: FastAPI reads each endpoint's annotations, and
# they name the spec's own request class, known only when the route is made

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tuneserve.api.tasks import ErrorBody
from tuneserve.serving.deps import GatewayDep, InferenceCaller
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.spec import TaskSpec

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 503)}


def task_router(catalog: TaskCatalog) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["tasks"], responses=ERRORS)
    for spec in catalog:
        if spec.route is not None:
            router.add_api_route(
                spec.route,
                _endpoint(spec),
                methods=["POST"],
                response_model=spec.Response,
                summary=spec.summary,
                name=spec.name,
            )
    return router


def _endpoint(spec: TaskSpec):
    async def run_task(body: spec.Request, gateway: GatewayDep, _: InferenceCaller) -> JSONResponse:
        # outputs were validated by the task server's models: no second validation pass
        return JSONResponse(await gateway.run_task(spec, body))

    run_task.__doc__ = spec.summary
    return run_task
