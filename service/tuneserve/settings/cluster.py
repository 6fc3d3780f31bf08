"""The Ray cluster's section of the settings (``TUNESERVE_RAY__*``): which cluster, and how
a local one is started (its CPUs, temp dir, metrics port, HTTP ingress)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tuneserve.settings.sections import Section


class RaySettings(Section):
    """The Ray cluster (``TUNESERVE_RAY__*``)."""

    address: str | None = Field(
        default=None, description="Existing Ray cluster to join; default: start a local one."
    )
    num_cpus: float | None = Field(
        default=None, gt=0, description="CPUs a local Ray cluster advertises."
    )
    temp_dir: Path | None = Field(
        default=None, description="Ray session files; default: data_dir/ray."
    )
    metrics_export_port: int = Field(
        default=8090,
        gt=0,
        description="Port where a local Ray cluster's metrics agent serves Prometheus "
        "(/metrics): every per-replica tuneserve_ series and Ray Serve's own ray_serve_.",
    )
    metrics_report_interval_ms: int | None = Field(
        default=None,
        ge=1000,
        description="How often a local cluster's workers push metrics to the agent; "
        "default: Ray's (10 s).",
    )
    haproxy: bool = Field(
        default=False,
        description="A local cluster's HTTP ingress is Ray Serve's HAProxy (experimental in "
        "Ray): requests go from a C load balancer straight to a replica's own HTTP server, "
        "with no Python proxy. Measured here: c=1 latency as a plain FastAPI server's, 1.5-2.2x "
        "the throughput at c=32. An early 413 then keeps the connection and discards the rest "
        "of the body (README, Benchmarks). A cluster joined by address uses "
        "what its processes' environment says (RAY_SERVE_ENABLE_HA_PROXY=1).",
    )
    ingress_drain_s: float = Field(
        default=5.0,
        ge=0,
        description="Behind HAProxy, how long a stopping replica keeps serving so that "
        "HAProxy stops sending it requests first (Ray's default, 30 s, allows for load "
        "balancers outside the cluster; Serve's controller pushes the change to the node's "
        "own HAProxy in batches every 0.1 s). "
        "A local cluster only; on one joined by address, its processes' "
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S.",
    )
