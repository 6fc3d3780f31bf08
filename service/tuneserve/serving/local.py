"""Start and stop the service on a Ray cluster (a local one unless ``ray_address`` is set)."""

from __future__ import annotations

import os

import ray
from ray import serve

from tuneserve.serving.app import serve_apps, with_access_mode
from tuneserve.serving.fleet import ServePromoter
from tuneserve.serving.proxy import PROXY_CALLBACK
from tuneserve.settings import Settings
from tuneserve.training.runner import get_or_start_runner


def start(settings: Settings) -> str:
    """Connect to (or start) Ray, deploy the application, and return its base URL."""
    connect_ray(settings)
    return deploy(settings)


def connect_ray(settings: Settings) -> None:
    """Join the cluster at ``ray_address``, or start a local one under the data dir.

    A local cluster's HTTP proxy gets its middlewares (``proxy.PROXY_CALLBACK``), and is
    HAProxy when ``ray.haproxy`` says so, whose replicas drain for ``ray.ingress_drain_s``:
    Serve reads all three from the environment its processes start with.
    """
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", PROXY_CALLBACK)
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1" if settings.ray.haproxy else "0"
    os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = str(settings.ray.ingress_drain_s)
    if settings.ray.address:
        ray.init(address=settings.ray.address)
        return
    settings.ray.temp_dir.mkdir(parents=True, exist_ok=True)
    ray.init(
        num_cpus=settings.ray.num_cpus,
        _temp_dir=str(settings.ray.temp_dir),
        include_dashboard=False,
        _metrics_export_port=settings.ray.metrics_export_port,
        _system_config=_metrics_config(settings),
        log_to_driver=False,
    )


def _metrics_config(settings: Settings) -> dict | None:
    interval = settings.ray.metrics_report_interval_ms
    return {"metrics_report_interval_ms": interval} if interval else None


def deploy(settings: Settings) -> str:
    """Start the job runner and the Serve applications on the connected cluster."""
    settings = with_access_mode(settings, settings.serving.host)
    # the job runner first, and waited for: it marks jobs a previous run left mid-flight,
    # so nobody sees a stale "running" job once the API answers
    runner = get_or_start_runner(settings, ServePromoter(settings))
    ray.get(runner.running.remote())
    serve.start(
        proxy_location=settings.serving.proxy_location,
        http_options={"host": settings.serving.host, "port": settings.serving.port},
    )
    serve_apps(settings, bind_host=settings.serving.host)
    return f"http://{settings.serving.host}:{settings.serving.port}"


def stop() -> None:
    """Remove the Serve applications and disconnect from (or stop) the local Ray cluster."""
    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()
