"""Recording per-replica metrics through Ray, which exports them from each node's agent.

A prometheus-client registry inside a replica would never be scraped: Ray's metrics
agent is what a KubeRay PodMonitor reaches. ``ray.serve.metrics`` adds the ``deployment``,
``replica`` and ``application`` labels inside Serve replicas and nothing elsewhere (the
job runner), so one recorder serves every process.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tuneserve.telemetry.catalog import MetricSpec

# Ray metric objects of this process, one per metric; made on first use (they cannot be
# shared between processes, and making one per recorder would register it again)
_instruments: dict[str, Any] = {}
_lock = threading.Lock()
logger = logging.getLogger("tuneserve.metrics")
_failed: set[str] = set()  # metrics whose recording failed and was logged


class Recorder:
    """Records catalogued metrics; a disabled recorder does nothing at all.

    Recording never raises: a metric must not fail the request it describes. A failure
    (a label set that does not match the catalog, say) is logged, once per metric.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def count(self, spec: MetricSpec, value: float = 1.0, **labels: object) -> None:
        if self.enabled and value > 0:  # Ray refuses a zero increment
            self._record(spec, "inc", value, labels)

    def observe(self, spec: MetricSpec, value: float, **labels: object) -> None:
        if self.enabled:
            self._record(spec, "observe", value, labels)

    def set(self, spec: MetricSpec, value: float, **labels: object) -> None:
        if self.enabled:
            self._record(spec, "set", value, labels)

    def _record(self, spec: MetricSpec, how: str, value: float, labels: dict) -> None:
        try:
            getattr(self._instrument(spec), how)(value, tags=_tags(spec, labels))
        except Exception:
            if spec.name not in _failed:
                _failed.add(spec.name)
                logger.exception("could not record %s", spec.name)

    @staticmethod
    def _instrument(spec: MetricSpec) -> Any:
        instrument = _instruments.get(spec.name)
        if instrument is None:
            with _lock:
                instrument = _instruments.get(spec.name) or _make(spec)
                _instruments[spec.name] = instrument
        return instrument


def _tags(spec: MetricSpec, labels: dict[str, object]) -> dict[str, str]:
    if labels.keys() != spec.label_set:
        raise ValueError(f"{spec.name} takes labels {spec.labels}, got {tuple(labels)}")
    return {key: "" if value is None else str(value) for key, value in labels.items()}


def _make(spec: MetricSpec) -> Any:
    from ray.serve import metrics

    if spec.kind == "counter":
        return metrics.Counter(spec.name, spec.description, tag_keys=spec.labels)
    if spec.kind == "gauge":
        return metrics.Gauge(spec.name, spec.description, tag_keys=spec.labels)
    return metrics.Histogram(
        spec.name, spec.description, boundaries=list(spec.buckets), tag_keys=spec.labels
    )
