"""Registry-derived metrics, read at scrape time by the gateway's ``/metrics``.

Versions, aliases and jobs live in the registry, not in any one process: reading them at
scrape time means every gateway replica answers the same, and a restart loses nothing.
A scrape that cannot reach the database still answers, with ``tuneserve_registry_up 0``.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from tuneserve import __version__
from tuneserve.registry import Registry
from tuneserve.registry.jobs import JOB_STATES, JobStore
from tuneserve.telemetry import catalog
from tuneserve.telemetry.catalog import MetricSpec

logger = logging.getLogger("tuneserve.metrics")

# a running job's latest value of each, from its step and epoch events
PROGRESS = {
    "step": catalog.TRAINING_STEP,
    "total_steps": catalog.TRAINING_TOTAL_STEPS,
    "epoch": catalog.TRAINING_EPOCH,
    "train_loss": catalog.TRAINING_LOSS,
    "learning_rate": catalog.TRAINING_LEARNING_RATE,
}


def _gauge(spec: MetricSpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.description, labels=spec.labels)


class RegistryCollector(Collector):
    def __init__(self, connect: Callable[[], tuple[Registry, JobStore]], tasks: list[str]):
        self._connect = connect
        self._tasks = tasks  # served tasks: their job counts are there, zeros included

    def collect(self) -> Iterator[Metric]:
        build = _gauge(catalog.BUILD_INFO)
        build.add_metric([__version__], 1)
        yield build
        up = _gauge(catalog.REGISTRY_UP)
        try:
            registry, jobs = self._connect()
            families = [*self._versions(registry), *self._jobs(jobs, self._tasks)]
        except Exception:  # the database is down: say so, keep the endpoint up
            logger.exception("could not read the registry for /metrics")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    @staticmethod
    def _versions(registry: Registry) -> list[Metric]:
        info, evaluation = _gauge(catalog.VERSION_INFO), _gauge(catalog.VERSION_EVALUATION)
        for model in registry.list_models():
            for alias, version in sorted(registry.aliases(model.name).items()):
                info.add_metric([model.name, model.task, alias, str(version)], 1)
            for version in registry.list_versions(model.name):
                for metric, value in sorted((version.metrics or {}).items()):
                    if _number(value):
                        labels = [model.name, model.task, str(version.version), metric]
                        evaluation.add_metric(labels, float(value))
        return [info, evaluation]

    @staticmethod
    def _jobs(jobs: JobStore, served: list[str]) -> list[Metric]:
        counts = _gauge(catalog.JOBS)
        by_state = jobs.count_by_state()
        tasks = sorted(set(served) | {task for task, _ in by_state})
        for task in tasks:  # every state of every task, zeros included: steady series
            for state in JOB_STATES:
                counts.add_metric([task, state], by_state.get((task, state), 0))

        spec = catalog.JOB_DURATION
        durations = HistogramMetricFamily(spec.name, spec.description, labels=spec.labels)
        finished: dict[tuple[str, str], list[float]] = {}
        for task, state, seconds in jobs.finished_durations():
            finished.setdefault((task, state), []).append(seconds)
        for (task, state), values in sorted(finished.items()):
            durations.add_metric(
                [task, state], _cumulative(values, spec.buckets), sum_value=sum(values)
            )

        progress = {name: _gauge(spec) for name, spec in PROGRESS.items()}
        for job, latest in jobs.running_progress():
            for name, value in latest.items():
                if name in progress and _number(value):
                    progress[name].add_metric([job.id, job.model, job.task], float(value))
        return [counts, durations, *progress.values()]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cumulative(values: list[float], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    """Prometheus buckets: how many values are at most each bound, then +Inf."""
    ordered = sorted(values)
    buckets = [(str(float(b)), float(bisect.bisect_right(ordered, b))) for b in bounds]
    return [*buckets, ("+Inf", float(len(ordered)))]


def collector_registry(
    connect: Callable[[], tuple[Registry, JobStore]], tasks: list[str]
) -> CollectorRegistry:
    """A prometheus-client registry holding only the registry collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(connect, tasks))
    return registry
