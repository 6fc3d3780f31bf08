"""Build the Serve application from a Settings object.

One code path for every entry point: the CLI calls ``build_app(settings)``; ``serve run``
and Serve config YAML (and so a KubeRay RayService) call ``app_builder(args)``, whose args
are Settings fields.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray import serve
from ray.serve import Application

from tuneserve.control.access import resolve_mode
from tuneserve.registry import Registry, ensure_schema, refuse_node_local
from tuneserve.registry.keys import KeyStore
from tuneserve.serving.api import create_api
from tuneserve.serving.fleet import ServePromoter, task_server_name
from tuneserve.serving.gateway import Gateway
from tuneserve.serving.task_server import TaskServer
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog

logger = logging.getLogger("tuneserve.app")


def build_app(settings: Settings, bind_host: str | None = None) -> Application:
    """The gateway bound to one TaskServer deployment per served task.

    ``bind_host`` is the address the HTTP proxy binds, when the caller knows it (the CLI);
    None (a Serve config, a RayService) counts as reachable by anyone: keys are required.
    """
    if ray.is_initialized():  # `serve run`/`serve deploy` build on the cluster itself
        refuse_node_local(settings.registry, ray.nodes())
    ensure_schema(settings.registry)
    settings = with_access_mode(settings, bind_host)
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


def with_access_mode(settings: Settings, bind_host: str | None) -> Settings:
    """``settings`` with ``auth.mode`` resolved to 'keys' or 'open' (refusing what is unsafe)."""
    registry = Registry.from_url(settings.registry.database_url, migrate=False)
    try:
        has_keys = bool(KeyStore(registry.engine).active())
    finally:
        registry.engine.dispose()
    has_credentials = has_keys or settings.admin_token is not None
    mode = resolve_mode(settings.auth.mode, bind_host, has_credentials)
    if mode == "open":
        logger.warning(
            "serving OPEN on %s: no API keys, every caller is admin. Create a key (`tuneserve "
            "keys create --tenant ops --scope admin`) to require keys.",
            bind_host,
        )
    return settings if mode == settings.auth.mode else settings.updated(auth={"mode": mode})


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point of ``serve run tuneserve.serving.app:app_builder`` and config YAML."""
    # the bind address counts only when the config states it (as http_options.host):
    # the default would let a RayService binding 0.0.0.0 run open
    bind_host = (args.get("serving") or {}).get("host")
    return build_app(Settings(**args), bind_host=bind_host)
