"""The task routes (``/v1/classify``, ``/v1/ner``, …), generated from the task specs.

Each spec with a ``route`` gets ``POST /v1/<route>`` taking its ``Request`` and documented
with its ``Response``. The route runs in the task server's own replica (``api.task_api``);
the body is parsed once by FastAPI and handed to its front (``serving/front.py``).
"""

# no ``from __future__ import annotations``: FastAPI reads each endpoint's annotations, and
# they name the spec's own request class, known only when the route is made

from collections.abc import Iterable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tuneserve.api.tasks import ErrorBody
from tuneserve.serving.deps import InferenceCaller, TaskServerDep
from tuneserve.serving.names import TASK_ROUTE_PREFIX
from tuneserve.tasks.spec import TaskSpec

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 503)}


def task_router(specs: Iterable[TaskSpec]) -> APIRouter:
    router = APIRouter(prefix=TASK_ROUTE_PREFIX, tags=["tasks"], responses=ERRORS)
    for spec in specs:
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
    async def run_task(
        body: spec.Request, server: TaskServerDep, _: InferenceCaller
    ) -> JSONResponse:
        # outputs were validated by the handler's models: no second validation pass
        return JSONResponse(await server.front.run_task(body))

    run_task.__doc__ = spec.summary
    return run_task
