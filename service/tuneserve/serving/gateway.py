"""The gateway: Serve ingress that owns HTTP and runs inference on one TaskServer per task.

Routes reach this replica's gateway, and through it the control-plane services, by the
dependencies in ``deps.py``. The services connect to the registry on first use, off the
event loop, so the gateway starts even while the database is busy.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray
from pydantic import BaseModel
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from tuneserve.control.access import OPEN, Authenticator, Principal
from tuneserve.control.fine_tuning import FineTuningService
from tuneserve.control.models import ModelService
from tuneserve.control.resolver import Target
from tuneserve.errors import PayloadTooLarge
from tuneserve.logs import configure_logging
from tuneserve.registry import connect
from tuneserve.registry.keys import KeyStore
from tuneserve.serving.access_log import note_served, note_texts
from tuneserve.serving.errors import serve_errors_as_ours
from tuneserve.serving.fleet import ServeFleet
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.spec import Limits, TaskRequest, TaskSpec
from tuneserve.telemetry import Recorder
from tuneserve.telemetry.registry_collector import collector_registry
from tuneserve.training.identity import RUNNER_NAME

if TYPE_CHECKING:  # the type only: importing the pipeline would load Ray Train here
    from tuneserve.training.pipeline import Promoter


@dataclass(frozen=True)
class Services:
    models: ModelService
    fine_tuning: FineTuningService
    authenticator: Authenticator


class Gateway:
    def __init__(self, servers: dict[str, DeploymentHandle], settings: Settings, promote: Promoter):
        configure_logging()
        self.settings = settings
        self.promote = promote  # handed to the job runner this gateway may start
        self.catalog = TaskCatalog.load(settings.tasks.modules)
        self.servers = servers
        self.recorder = Recorder(settings.telemetry.metrics_enabled)
        self.limits = Limits(max_new_tokens=settings.limits.max_new_tokens)
        self._connect_lock = threading.Lock()

    # --- control plane -----------------------------------------------------------------
    @functools.cached_property
    def _services(self) -> Services:
        with self._connect_lock:
            registry, store = connect(self.settings.registry)
        defaults = {spec.name: spec.default_model for spec in self.catalog}
        models = ModelService(
            registry,
            ServeFleet(self.settings.app_name),
            self.recorder,
            defaults | self.settings.tasks.default_models,
            self.settings.serving.alias_cache_ttl_s,
            outage_grace_s=self.settings.serving.registry_outage_grace_s,
        )
        fine_tuning = FineTuningService(
            self.settings, registry, store, self.catalog, lambda: self.runner.wake.remote()
        )
        admin_token = self.settings.admin_token
        authenticator = Authenticator(
            KeyStore(registry.engine),
            admin_token.get_secret_value().encode() if admin_token else None,
            self.settings.auth.key_cache_ttl_s,
            outage_grace_s=self.settings.serving.registry_outage_grace_s,
        )
        return Services(models, fine_tuning, authenticator)

    async def services(self) -> Services:
        """The control-plane services; the first call connects, in a thread."""
        if "_services" not in self.__dict__:
            await asyncio.to_thread(lambda: self._services)
        return self._services

    async def authenticate(self, header: bytes | None) -> Principal:
        """The caller of a request, from its raw ``Authorization`` header (401 if unknown).

        Answered on the event loop from the in-memory keys; a database read (keys older
        than their time to live, or an id not seen yet) runs in a thread.
        """
        if self.settings.auth.mode == "open":
            return OPEN
        authenticator = (await self.services()).authenticator
        principal = authenticator.authenticate(header, may_read=False)
        return principal or await asyncio.to_thread(authenticator.authenticate, header)

    @property
    def runner(self):
        """The cluster's JobRunner actor with this deployment's settings, started (or
        replaced, after a redeploy that changed them) by whichever gateway needs it first."""
        from tuneserve.training.runner import get_or_start_runner

        return get_or_start_runner(self.settings, self.promote)

    async def runner_state(self) -> dict:
        """The job runner's settings fingerprint, jobs and heartbeat age (seconds since its
        loop last went round); a stale runner is replaced here when idle (readiness probes
        call this, so a redeploy's new settings reach it)."""
        wanted = self.settings.fingerprint()

        def look() -> dict:
            try:
                actor = ray.get_actor(RUNNER_NAME, namespace=self.settings.app_name)
            except ValueError:
                return {"state": "not started; the first fine-tuning job starts it"}
            state = ray.get(actor.state.remote(), timeout=10)
            if state["settings_fingerprint"] != wanted:
                state = ray.get(self.runner.state.remote(), timeout=10)
            return state

        try:
            state = await asyncio.to_thread(look)
        except ray.exceptions.GetTimeoutError:  # a new runner connecting to the registry
            state = {"state": "starting: the job runner did not answer within 10 s"}
        except ray.exceptions.ActorUnavailableError:  # it crashed; Ray is starting it again
            state = {"state": "restarting: the job runner stopped and Ray is restarting it"}
        except Exception as error:  # training is down: say so; serving is still ready
            # the kind of failure only: /readyz is public, an exception's text may not be
            state = {"error": f"the job runner did not answer ({type(error).__name__})"}
        return state | {"wanted_fingerprint": wanted}

    @functools.cached_property
    def metrics_registry(self):
        """The registry-derived metrics, read at scrape time (``GET /metrics``)."""

        def connected():
            fine_tuning = self._services.fine_tuning
            return fine_tuning.registry, fine_tuning.jobs

        return collector_registry(connected, list(self.servers))

    # --- inference ---------------------------------------------------------------------
    async def run_task(self, spec: TaskSpec, request: TaskRequest) -> dict[str, Any]:
        """A generated task route's whole work: items, limits, version, batch, response."""
        items = spec.items(request, self.limits)
        self.check_texts([spec.text_of(item) for item in items])
        target = await self.resolve(request.model, spec.name)
        served = await self.predict(target, items, request.variant)
        return {"model": target.name, "version": target.version} | served

    async def resolve(self, model: str | None, task: str) -> Target:
        services = await self.services()
        target = services.models.resolve_cached(model, task)
        if target is None:  # not in the cached view: read the registry in a thread
            target = await asyncio.to_thread(services.models.resolve, model, task)
        note_served(target.task, target.name, target.version)
        return target

    async def predict(
        self, target: Target, items: list[BaseModel], variant: str | None = None
    ) -> dict[str, Any]:
        """``{"variant": ..., "results": [...]}`` from the target's task server."""
        with serve_errors_as_ours():
            return await self.servers[target.task].predict.remote(
                target.name, target.version, items, variant
            )

    def chat_stream(self, target: Target, item: BaseModel) -> DeploymentResponseGenerator:
        server = self.servers[target.task].options(stream=True)
        return server.chat.remote(target.name, target.version, item)

    async def readiness(self) -> dict[str, list[str]]:
        """Per task, what its replicas still wait for; an empty list means ready."""
        results = await asyncio.gather(
            *(handle.broadcast("ready").results_async() for handle in self.servers.values()),
            return_exceptions=True,
        )
        return {
            task: _waiting_for(result) for task, result in zip(self.servers, results, strict=True)
        }

    def check_texts(self, texts: list[str], param: str = "inputs") -> None:
        """Enforce the request limits: items per request and characters per item."""
        limits = self.settings.limits
        if len(texts) > limits.max_batch_items:
            raise PayloadTooLarge(
                f"{len(texts)} inputs in one request; at most {limits.max_batch_items}",
                param=param,
            )
        for index, text in enumerate(texts):
            if len(text) > limits.max_input_chars:
                raise PayloadTooLarge(
                    f"input is {len(text)} characters; at most {limits.max_input_chars}",
                    param=f"{param}[{index}]",
                )
        if self.settings.telemetry.log_request_text:  # only texts within limits are logged
            note_texts(texts)


def _waiting_for(replies: list[dict] | BaseException) -> list[str]:
    """What a task's replicas wait for, from their ``ready`` replies (or the failure to ask)."""
    if isinstance(replies, BaseException):
        return [f"no replica answered: {type(replies).__name__}: {replies}"]
    if not replies:
        return ["a replica (none is running)"]
    return sorted({item for reply in replies for item in reply["waiting_for"]})
