"""Build the Serve application from a Settings object.

One code path for every entry point: the CLI calls ``build_app(settings)``; ``serve run``
and Serve config YAML (and so a KubeRay RayService) call ``app_builder(args)``, whose args
are Settings fields.
"""

from __future__ import annotations

from typing import Any

import ray
from ray import serve
from ray.serve import Application

from tuneserve.registry import ensure_schema, refuse_node_local
from tuneserve.serving.api import create_api
from tuneserve.serving.fleet import ServePromoter, task_server_name
from tuneserve.serving.gateway import Gateway
from tuneserve.serving.task_server import TaskServer
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog


def build_app(settings: Settings) -> Application:
    """The gateway bound to one TaskServer deployment per served task."""
    if ray.is_initialized():  # `serve run`/`serve deploy` build on the cluster itself
        refuse_node_local(settings.registry, ray.nodes())
    ensure_schema(settings.registry)
    catalog = TaskCatalog.load(settings.tasks.modules)
    servers = {
        spec.name: serve.deployment(TaskServer, name=task_server_name(spec.name))
        .options(**settings.serving.task_server_options(spec.name).serve_options())
        .bind(spec.name, settings.for_task_server())
        for spec in catalog.select(settings.serving.served_tasks)
    }
    gateway = serve.deployment(serve.ingress(create_api(catalog))(Gateway), name="Gateway")
    options = settings.serving.gateway.serve_options()
    # the job runner promotes through this callback: training never imports serving
    return gateway.options(**options).bind(servers, settings, ServePromoter(settings))


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point of ``serve run tuneserve.serving.app:app_builder`` and config YAML."""
    return build_app(Settings(**args))
