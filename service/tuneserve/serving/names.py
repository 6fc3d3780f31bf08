"""The one place the Serve names and HTTP paths of a task's application are spelled.

Torch-, Ray- and FastAPI-free: the Serve config checks (``tuneserve k8s render``) and tests
read them without loading a server.
"""

from __future__ import annotations

from collections.abc import Sequence

from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.spec import TaskSpec

TASK_ROUTE_PREFIX = "/v1"  # a generated task route is POST /v1/<spec.route>
CHAT_PATH = "/v1/chat/completions"  # OpenAI's, for the streaming task


def task_server_name(task: str) -> str:
    """The Serve deployment that serves ``task``."""
    return f"TaskServer-{task}"


def task_app_name(app_name: str, task: str) -> str:
    """The Serve application of ``task`` in the deployment whose gateway is ``app_name``."""
    return f"{app_name}-{task}"


def task_path(spec: TaskSpec) -> str | None:
    """The path of ``spec``'s route, its application's route prefix; None: it has none."""
    if spec.streams:
        return CHAT_PATH
    return f"{TASK_ROUTE_PREFIX}{spec.route}" if spec.route is not None else None


def routed_tasks(catalog: TaskCatalog, served: Sequence[str] | None) -> dict[str, str]:
    """Each served task that has a route, by name, with its path: one Serve application
    each (the apps built, the ones the gateway asks for readiness, a Serve config's list)."""
    return {
        spec.name: path for spec in catalog.select(served) if (path := task_path(spec)) is not None
    }
