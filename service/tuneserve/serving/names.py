"""The one place the Serve names and HTTP paths of a task's application are spelled.

Torch-, Ray- and FastAPI-free: the Serve config checks (``tuneserve k8s render``) and tests
read them without loading a server.
"""

from __future__ import annotations

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
