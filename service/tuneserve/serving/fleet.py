"""The task servers as the control plane reaches them: one Serve application per task.

``ServeFleet`` is the control plane's ``Fleet`` over deployment handles (every replica,
through ``broadcast``); ``ServePromoter`` is the callback the job runner promotes with.
"""

from __future__ import annotations

import functools

from ray import serve
from ray.serve.handle import DeploymentHandle

from tuneserve.control.models import ModelService
from tuneserve.registry import connect
from tuneserve.serving.names import task_app_name, task_server_name
from tuneserve.settings import Settings
from tuneserve.telemetry import Recorder

ACK_TIMEOUT_S = 300


class ServeFleet:
    """Every running replica of each task server of one tuneserve deployment."""

    def __init__(self, app_name: str):
        self.app_name = app_name

    @functools.cache  # noqa: B019 - one handle per task for the fleet's life
    def handle(self, task: str) -> DeploymentHandle:
        app = task_app_name(self.app_name, task)
        return serve.get_deployment_handle(task_server_name(task), app_name=app)

    async def ask_every_replica(self, task: str, method: str) -> list:
        """Each running replica's answer to ``method`` (no arguments), from the event loop."""
        return await self.handle(task).broadcast(method).results_async()

    def load_everywhere(self, task: str, name: str, version: int) -> list[dict]:
        broadcast = self.handle(task).broadcast("load_version", name, version)
        return broadcast.results(timeout_s=ACK_TIMEOUT_S)

    def set_pins(self, task: str, name: str, versions: list[int]) -> None:
        self.handle(task).broadcast("set_pins", name, versions).results(timeout_s=ACK_TIMEOUT_S)


class ServePromoter:
    """Promotes a job's version through the application's replicas (runs in the runner)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @functools.cached_property
    def models(self) -> ModelService:
        registry, _ = connect(self.settings.registry)
        return ModelService(
            registry,
            ServeFleet(self.settings.app_name),
            Recorder(self.settings.telemetry.metrics_enabled),
        )

    def __call__(self, model: str, version: int, expected_from: int, reason: str) -> str:
        swap = self.models.swap_to(model, version, expected_from, reason)
        done = f"promoted in {swap.seconds:.2f} s on {len(swap.replicas)} replica(s)"
        return f"{done}; warning: {swap.warning}" if swap.warning else done
