"""Build tuneserve's Serve applications from a Settings object.

One tuneserve deployment is several Serve applications: the gateway (the control plane, at
the route prefix, say ``/``) and one per served task, whose ingress is the task server
itself, at its task's path (``/v1/classify``, ``/v1/chat/completions``). Serve's proxy
sends a request to the application with the longest matching prefix, so an inference
request reaches the replica that runs the model in one hop, with no gateway in between.

One code path for every entry point: the CLI and tests call ``serve_apps(settings)``;
Serve config YAML (and so a KubeRay RayService) lists the applications, calling
``app_builder(args)`` for the gateway and ``task_app_builder(args)`` for each task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.serve import Application

from tuneserve.control.access import resolve_mode
from tuneserve.registry import Registry, ensure_schema, refuse_node_local
from tuneserve.registry.keys import KeyStore
from tuneserve.serving.api import create_api, task_api
from tuneserve.serving.fleet import ServePromoter
from tuneserve.serving.gateway import Gateway
from tuneserve.serving.names import routed_tasks, task_app_name, task_server_name
from tuneserve.serving.task_server import TaskServer
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog

logger = logging.getLogger("tuneserve.app")


@dataclass(frozen=True)
class ServeApp:
    """One Serve application of a tuneserve deployment, as ``serve.run`` takes it."""

    name: str
    route_prefix: str
    app: Application


def build_apps(
    settings: Settings, bind_host: str | None = None, prefix: str = "/"
) -> list[ServeApp]:
    """The gateway at ``prefix`` and each served task's application under it.

    ``bind_host`` is the address the HTTP proxy binds, when the caller knows it (the CLI);
    None (a Serve config, a RayService) counts as reachable by anyone: keys are required.
    """
    settings = checked(settings, bind_host)
    base = prefix.rstrip("/")
    apps = [ServeApp(settings.app_name, prefix, build_gateway(settings))]
    for task, path in _routed(settings).items():
        name = task_app_name(settings.app_name, task)
        apps.append(ServeApp(name, base + path, build_task_app(settings, task)))
    return apps


def serve_apps(settings: Settings, bind_host: str | None = None, prefix: str = "/") -> None:
    """Deploy every application of ``settings`` on the connected cluster, waiting until
    each is running (a task server is running before its models are loaded: ``/readyz``)."""
    targets = [
        serve.RunTarget(app.app, name=app.name, route_prefix=app.route_prefix)
        for app in build_apps(settings, bind_host, prefix)
    ]
    serve.run_many(targets)


def delete_apps(settings: Settings) -> None:
    """Remove every application ``serve_apps`` deployed for ``settings``."""
    for task in _routed(settings):
        serve.delete(task_app_name(settings.app_name, task))
    serve.delete(settings.app_name)


def _routed(settings: Settings) -> dict[str, str]:
    return routed_tasks(TaskCatalog.load(settings.tasks.modules), settings.serving.served_tasks)


def checked(settings: Settings, bind_host: str | None) -> Settings:
    """``settings`` after the checks every application makes before it is built: the
    storage is reachable from every node, the schema is current, the access mode is safe."""
    if ray.is_initialized():  # `serve run`/`serve deploy` build on the cluster itself
        refuse_node_local(settings.registry, ray.nodes())
    ensure_schema(settings.registry)
    return with_access_mode(settings, bind_host)


def build_gateway(settings: Settings) -> Application:
    """The control plane's application: the gateway, with the job runner's promote callback
    (training never imports serving)."""
    catalog = TaskCatalog.load(settings.tasks.modules)
    gateway = serve.deployment(serve.ingress(create_api(catalog))(Gateway), name="Gateway")
    options = settings.serving.gateway.serve_options()
    return gateway.options(**options).bind(settings, ServePromoter(settings))


def build_task_app(settings: Settings, task: str) -> Application:
    """``task``'s application: its TaskServer answers the task's route itself."""
    spec = TaskCatalog.load(settings.tasks.modules).get(task)
    ingress = serve.ingress(task_api(spec))(TaskServer)
    server = serve.deployment(ingress, name=task_server_name(task))
    options = settings.serving.task_server_options(task).serve_options()
    return server.options(**options).bind(task, settings.for_task_server())


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


def build_app(settings: Settings, bind_host: str | None = None) -> Application:
    """The gateway's application, after the checks (``app_builder``'s work)."""
    return build_gateway(checked(settings, bind_host))


def _bind_host(args: dict[str, Any]) -> str | None:
    # the bind address counts only when the config states it (as http_options.host):
    # the default would let a RayService binding 0.0.0.0 run open
    return (args.get("serving") or {}).get("host")


def app_builder(args: dict[str, Any]) -> Application:
    """Serve config entry point of the gateway; ``args`` are Settings fields."""
    return build_app(Settings(**args), bind_host=_bind_host(args))


def task_app_builder(args: dict[str, Any]) -> Application:
    """Serve config entry point of one task's application: ``{"task": ..., "settings":
    {...}}``, the settings being the gateway's own (a YAML anchor keeps them one)."""
    settings_args = args.get("settings") or {}
    settings = checked(Settings(**settings_args), _bind_host(settings_args))
    return build_task_app(settings, args["task"])
