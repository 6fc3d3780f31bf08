"""The gateway: the control plane's Serve ingress (models, files, jobs, keys, metrics).

Inference does not pass through it: each task server is the ingress of its own application
on its task's route (``app.py``), one hop from the proxy. The gateway reaches the task
servers' replicas by handle (``ServeFleet``) to promote, pin and ask for readiness.

Routes reach this replica's gateway, and through it the control-plane services, by the
dependencies in ``deps.py``. The services connect to the registry on first use, off the
event loop, so the gateway starts even while the database is busy.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ray

from tuneserve.control.access import OPEN, Authenticator, Principal
from tuneserve.control.fine_tuning import FineTuningService
from tuneserve.control.models import ModelService
from tuneserve.logs import configure_logging
from tuneserve.registry import connect
from tuneserve.serving.fleet import ServeFleet
from tuneserve.serving.front import authenticate, make_authenticator
from tuneserve.serving.names import routed_tasks
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.telemetry import Recorder
from tuneserve.telemetry.registry_collector import collector_registry
from tuneserve.training.identity import RunnerAddress

if TYPE_CHECKING:  # the type only: importing the pipeline would load Ray Train here
    from tuneserve.training.pipeline import Promoter


@dataclass(frozen=True)
class Services:
    models: ModelService
    fine_tuning: FineTuningService
    authenticator: Authenticator


class Gateway:
    def __init__(self, settings: Settings, promote: Promoter):
        configure_logging()
        self.settings = settings
        self.promote = promote  # handed to the job runner this gateway may start
        self.catalog = TaskCatalog.load(settings.tasks.modules)
        self.tasks = list(routed_tasks(self.catalog, settings.serving.served_tasks))
        self.fleet = ServeFleet(settings.app_name)
        self.recorder = Recorder(settings.telemetry.metrics_enabled)
        self._connect_lock = threading.Lock()

    # --- control plane -----------------------------------------------------------------
    @functools.cached_property
    def _services(self) -> Services:
        with self._connect_lock:
            registry, store = connect(self.settings.registry)
        models = ModelService(registry, self.fleet, self.recorder)
        fine_tuning = FineTuningService(
            self.settings, registry, store, self.catalog, lambda: self.runner.wake.remote()
        )
        authenticator = make_authenticator(
            registry,
            self.settings.auth,
            self.settings.admin_token,
            self.settings.serving.registry_outage_grace_s,
        )
        return Services(models, fine_tuning, authenticator)

    async def services(self) -> Services:
        """The control-plane services; the first call connects, in a thread."""
        if "_services" not in self.__dict__:
            await asyncio.to_thread(lambda: self._services)
        return self._services

    async def authenticate(self, header: bytes | None) -> Principal:
        """The caller of a request, from its raw ``Authorization`` header (401 if unknown)."""
        if self.settings.auth.mode == "open":
            return OPEN
        return await authenticate((await self.services()).authenticator, header)

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
                actor = RunnerAddress(self.settings.app_name).handle()
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

        return collector_registry(connected, self.tasks)

    # --- the task servers -------------------------------------------------------------
    async def readiness(self) -> dict[str, list[str]]:
        """Per task, what its replicas still wait for; an empty list means ready."""
        results = await asyncio.gather(
            *(self.fleet.ask_every_replica(task, "ready") for task in self.tasks),
            return_exceptions=True,
        )
        return {
            task: _waiting_for(result) for task, result in zip(self.tasks, results, strict=True)
        }


def _waiting_for(replies: list[dict] | BaseException) -> list[str]:
    """What a task's replicas wait for, from their ``ready`` replies (or the failure to ask)."""
    if isinstance(replies, BaseException):
        return [f"no replica answered: {type(replies).__name__}: {replies}"]
    if not replies:
        return ["a replica (none is running)"]
    return sorted({item for reply in replies for item in reply["waiting_for"]})
