"""The gateway: Serve ingress that owns HTTP and calls one TaskServer per task.

Routes are plain FastAPI functions in ``serving/routes/``; they reach the running gateway
through the ``current_gateway`` dependency, so they stay testable and free of Ray.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import threading
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from tuneserve import __version__
from tuneserve.errors import PayloadTooLarge, Unauthorized
from tuneserve.logs import configure_logging
from tuneserve.registry import ArtifactStore, Registry, connect
from tuneserve.registry.jobs import JobStore
from tuneserve.serving.access_log import install_access_log, note_served, note_texts
from tuneserve.serving.errors import install_error_handlers, serve_errors_as_ours
from tuneserve.serving.resolver import ModelResolver, Target
from tuneserve.settings import Settings
from tuneserve.telemetry import Recorder
from tuneserve.telemetry.registry_collector import collector_registry


class Gateway:
    def __init__(self, servers: dict[str, DeploymentHandle], settings: Settings):
        configure_logging()
        self.settings = settings
        self.servers = servers
        self.recorder = Recorder(settings.metrics_enabled)
        self._connect_lock = threading.Lock()

    @functools.cached_property
    def _connection(self) -> tuple[Registry, ArtifactStore]:
        """Connected on first use, so the gateway starts even while the database is busy."""
        with self._connect_lock:
            return connect(self.settings)

    @property
    def registry(self) -> Registry:
        return self._connection[0]

    @property
    def store(self) -> ArtifactStore:
        return self._connection[1]

    @functools.cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.registry.engine)

    @functools.cached_property
    def runner(self):
        """The cluster's JobRunner actor, started by whichever gateway needs it first."""
        from tuneserve.training.runner import get_or_start_runner

        return get_or_start_runner(self.settings)

    @functools.cached_property
    def metrics_registry(self):
        """The registry-derived metrics, read at scrape time (``GET /metrics``)."""
        return collector_registry(lambda: (self.registry, self.jobs), list(self.servers))

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    @functools.cached_property
    def resolver(self) -> ModelResolver:
        return ModelResolver(
            self.registry, self.settings.default_models, self.settings.alias_cache_ttl_s
        )

    async def resolve(self, model: str | None, task: str) -> Target:
        target = self.resolver.resolve_cached(model, task) if "resolver" in self.__dict__ else None
        if target is None:  # not connected yet, or not in the cached view
            target = await asyncio.to_thread(lambda: self.resolver.resolve(model, task))
        note_served(target.task, target.name, target.version)
        return target

    async def predict(self, target: Target, items: list[dict[str, Any]]) -> list[dict]:
        with serve_errors_as_ours():
            return await self.servers[target.task].predict.remote(
                target.name, target.version, items
            )

    def chat_stream(self, target: Target, item: dict[str, Any]) -> DeploymentResponseGenerator:
        server = self.servers[target.task].options(stream=True)
        return server.chat.remote(target.name, target.version, item)

    async def readiness(self) -> dict[str, bool]:
        """Per task: is every replica's production version loaded and warm?"""
        results = await asyncio.gather(
            *(handle.broadcast("ready").results_async() for handle in self.servers.values()),
            return_exceptions=True,
        )
        return {
            task: isinstance(result, list) and bool(result) and all(result)
            for task, result in zip(self.servers, results, strict=True)
        }

    def check_texts(self, texts: list[str], param: str = "inputs") -> None:
        """Enforce the request limits: items per request and characters per item."""
        if len(texts) > self.settings.max_batch_items:
            raise PayloadTooLarge(
                f"{len(texts)} inputs in one request; at most {self.settings.max_batch_items}",
                param=param,
            )
        for index, text in enumerate(texts):
            if len(text) > self.settings.max_input_chars:
                raise PayloadTooLarge(
                    f"input is {len(text)} characters; at most {self.settings.max_input_chars}",
                    param=f"{param}[{index}]",
                )
        if self.settings.log_request_text:  # only texts within the limits reach the log
            note_texts(texts)


def require_admin(request: Request) -> None:
    """Admin routes (promote, rollback) need ``Authorization: Bearer <admin_token>`` when
    the ``admin_token`` setting is set."""
    token = current_gateway().settings.admin_token
    if token is None:
        return
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
        raise Unauthorized("this route needs the admin token: Authorization: Bearer <token>")


def current_gateway() -> Gateway:
    """The gateway instance of this replica (FastAPI dependency)."""
    return serve.get_replica_context().servable_object


GatewayDep = Annotated[Gateway, Depends(current_gateway)]
AdminDep = Depends(require_admin)


def create_api() -> FastAPI:
    """The FastAPI app with every router and the error handlers installed."""
    from tuneserve.serving.routes import chat, files, jobs, metrics, models, tasks

    api = FastAPI(
        title="tuneserve",
        version=__version__,
        description="Five NLP tasks served on Ray Serve, fine-tuned online.",
    )
    install_error_handlers(api)
    install_access_log(api)
    routers = (models.router, tasks.router, chat.router, files.router, jobs.router, metrics.router)
    for router in routers:
        api.include_router(router)
    return api
