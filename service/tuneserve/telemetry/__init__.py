"""Metrics: the catalog of what is exported, Ray-backed recording in replicas, and the
registry-derived collector behind the gateway's ``/metrics``."""

from tuneserve.telemetry.catalog import ALL_METRICS, MetricSpec, exported_names
from tuneserve.telemetry.recorder import Recorder

__all__ = ["ALL_METRICS", "MetricSpec", "Recorder", "exported_names"]
