"""The FastAPI applications: the gateway's control plane, and one per task for its route.

Every app has the same error handlers, body limit and access log. The gateway's OpenAPI
document describes the whole API, task routes included, though those are answered by the
task servers' own apps: clients generate their types from that one document.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from tuneserve import __version__
from tuneserve.serving.access_log import install_access_log
from tuneserve.serving.body_limit import install_body_limit
from tuneserve.serving.errors import install_error_handlers
from tuneserve.serving.names import task_path
from tuneserve.serving.routes import chat, files, jobs, keys, metrics, models, tasks
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.spec import TaskSpec

TITLE = "tuneserve"
DESCRIPTION = "NLP tasks served on Ray Serve, fine-tuned online."


def _app() -> FastAPI:
    api = FastAPI(title=TITLE, version=__version__, description=DESCRIPTION)
    install_error_handlers(api)
    install_body_limit(api)  # inside the access log, which then logs its 413s and 503s
    install_access_log(api)
    return api


def task_api(spec: TaskSpec) -> FastAPI:
    """The app a task server answers its route with."""
    api = _app()
    api.include_router(chat.router if spec.streams else tasks.task_router([spec]))
    api.add_middleware(FullPaths, path=task_path(spec))  # outermost: before anything routes
    return api


def create_api(catalog: TaskCatalog) -> FastAPI:
    """The gateway's app: the control plane, documenting the catalog's task routes too."""
    api = _app()
    control = (files.router, jobs.router, metrics.router, keys.router)
    for router in (models.router, *control):
        api.include_router(router)
    # models, the tasks, then the rest: the order the clients' generated types follow
    task_routes = [route for spec in catalog if task_path(spec) for route in task_api(spec).routes]
    documented = [*models.router.routes, *task_routes, *(r for c in control for r in c.routes)]

    def openapi() -> dict:
        if api.openapi_schema is None:
            routes = [route for route in documented if getattr(route, "include_in_schema", True)]
            document = get_openapi(
                title=TITLE, version=__version__, description=DESCRIPTION, routes=routes
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in chat.stream_schemas().items():
                schemas.setdefault(name, schema)
            api.openapi_schema = document
        return api.openapi_schema

    api.openapi = openapi
    return api


class FullPaths:
    """Route a task app by full paths (``/v1/classify``), as the gateway's app is routed.

    Serve's proxy sets the ASGI ``root_path`` to the application's route prefix, the task's
    path itself, which would leave the route an empty path. Taking that prefix back off the
    root path keeps one spelling of every route: in the routers, the access log's route
    label, the metrics and the body limits.
    """

    def __init__(self, app: ASGIApp, path: str):
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        if scope["type"] == "http" and root.endswith(self.path):
            scope = {**scope, "root_path": root[: -len(self.path)]}
        await self.app(scope, receive, send)
