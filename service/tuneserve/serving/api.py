"""The FastAPI application: every router, one generated route per task, error handlers."""

from __future__ import annotations

from fastapi import FastAPI

from tuneserve import __version__
from tuneserve.serving.access_log import install_access_log
from tuneserve.serving.body_limit import install_body_limit
from tuneserve.serving.errors import install_error_handlers
from tuneserve.serving.routes import chat, files, jobs, keys, metrics, models, tasks
from tuneserve.tasks.catalog import TaskCatalog


def create_api(catalog: TaskCatalog) -> FastAPI:
    """The app served by the gateway: the catalog's tasks decide the task routes."""
    api = FastAPI(
        title="tuneserve",
        version=__version__,
        description="NLP tasks served on Ray Serve, fine-tuned online.",
    )
    install_error_handlers(api)
    install_body_limit(api)  # inside the access log, which then logs its 413s and 503s
    install_access_log(api)
    routers = (
        models.router,
        tasks.task_router(catalog),
        chat.router,
        files.router,
        jobs.router,
        metrics.router,
        keys.router,
    )
    for router in routers:
        api.include_router(router)
    _document_stream_chunks(api)
    return api


def _document_stream_chunks(api: FastAPI) -> None:
    """Add the streamed chat chunk's schemas to the OpenAPI document (built once, cached)."""
    build = api.openapi

    def openapi() -> dict:
        if api.openapi_schema is None:
            document = build()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in chat.stream_schemas().items():
                schemas.setdefault(name, schema)
        return api.openapi_schema

    api.openapi = openapi
