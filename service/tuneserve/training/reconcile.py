"""The job runner's upkeep besides jobs: settle what a stopped service left half-done when
the runner starts, then collect storage now and then.

A job found ``running`` or ``evaluating`` when the runner starts was interrupted: only the
runner moves jobs through those states, and it is only now starting. If the job had already
registered its version (one whose lineage names the job), the work it was there for is
done: it succeeds, its result marked ``recovered``; its version becomes ``candidate`` unless
a newer one is; it counts as promoted only if production already points at it (nothing is
promoted here: that takes the replicas, and a person may do it by hand). A job interrupted
before that fails with the code ``interrupted``, as it always has. Then one storage
collection runs (``retention.collect``). A second reconciliation finds nothing to do.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from tuneserve.errors import Conflict, NotFound
from tuneserve.registry import ArtifactStore, Registry, VersionInfo
from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.registry.refs import CANDIDATE, PRODUCTION, ModelRef
from tuneserve.settings import Settings
from tuneserve.training.retention import Collection, collect

logger = logging.getLogger("tuneserve.reconcile")
INTERRUPTED = "the service stopped while this job was running; create it again"
IN_FLIGHT = ("running", "evaluating")


@dataclass(frozen=True)
class Reconciliation:
    recovered: list[str]  # jobs finished as succeeded: their version was registered
    failed: list[str]  # jobs failed as interrupted
    collection: Collection | None  # None: the store could not be collected this time


def reconcile(
    settings: Settings, registry: Registry, store: ArtifactStore, jobs: JobStore
) -> Reconciliation:
    """Settle the interrupted jobs, then collect storage; run before taking any job.

    A store that cannot be reached does not keep the runner from starting: the failure is
    logged, and the next sweep tries again.
    """
    recovered = [job.id for job in jobs.jobs_in(IN_FLIGHT) if _recover(job, registry, jobs)]
    failed = jobs.fail_interrupted(INTERRUPTED)
    for job_id in failed:
        jobs.add_event(job_id, f"failed: {INTERRUPTED}", level="error")
    if recovered:
        logger.warning("finished interrupted jobs whose version was registered: %s", recovered)
    if failed:
        logger.warning("marked interrupted jobs as failed: %s", failed)
    try:
        collection = collect(settings, registry, jobs, store)
    except Exception:  # the store or the database is down: jobs need not wait for it
        logger.exception("storage collection at start failed; the next sweep tries again")
        collection = None
    return Reconciliation(recovered, failed, collection)


def _recover(job: JobInfo, registry: Registry, jobs: JobStore) -> bool:
    """Finish a job whose version was registered before the stop; False if it has none."""
    try:
        versions = registry.list_versions(job.output_model)
    except NotFound:  # a suffix job's new model, never created: nothing was registered
        return False
    version = next((v for v in versions if v.lineage.get("job") == job.id), None)
    if version is None:
        return False
    _make_candidate(registry, job, version.version)
    production = registry.aliases(job.output_model).get(PRODUCTION)
    promoted = production == version.version
    reason = (
        f"recovered after a restart: version {version.version} was registered before the "
        "service stopped; "
        + ("it is production" if promoted else "not promoted (promote it by hand if wanted)")
    )
    jobs.add_event(job.id, reason, level="warning")
    result = _result(job, version, production, promoted, reason, _scores(jobs, job.id))
    return jobs.transition(
        job.id,
        IN_FLIGHT,
        "succeeded",
        result=result,
        fine_tuned_model=str(ModelRef(job.output_model, version=version.version)),
    )


def _make_candidate(registry: Registry, job: JobInfo, version: int) -> None:
    """Point ``candidate`` at ``version`` as the job would have, unless it names a newer one."""
    current = registry.aliases(job.output_model).get(CANDIDATE)
    if current is not None and current >= version:
        return
    try:
        registry.move_alias(job.output_model, CANDIDATE, version, current, f"job {job.id}")
    except Conflict:  # moved by someone else meanwhile: their move stands
        logger.info("candidate of %s moved meanwhile; left as it is", job.output_model)


def _scores(jobs: JobStore, job_id: str) -> dict[str, Any]:
    """The evaluation's scores from its event, if the job got that far ({} if not)."""
    events, _ = jobs.list_events(job_id, None, 50)  # newest first; evaluation is near the end
    for event in events:
        if event.message.startswith("evaluated: ") and event.data:
            return event.data
    return {}


def _result(
    job: JobInfo,
    version: VersionInfo,
    production: int | None,
    promoted: bool,
    reason: str,
    scores: dict[str, Any],
) -> dict[str, Any]:
    """The fields a finished job's result has (``pipeline.run``), as far as they are known
    after the fact: production is the version now, the metric the one the job named."""
    return {
        "promoted": promoted,
        "reason": reason,
        "recovered": True,
        "metric": job.promotion.get("metric"),
        "candidate_version": version.version,
        "production_version": production,
        "candidate_metrics": version.metrics,
        "production_metrics": scores.get("production"),
    }


class Sweeper:
    """A storage collection every ``training.gc_interval_s`` on a daemon thread (0: none)."""

    def __init__(
        self, settings: Settings, registry: Registry, store: ArtifactStore, jobs: JobStore
    ):
        self._parts = (settings, registry, jobs, store)
        self.interval_s = settings.training.gc_interval_s
        self._stopped = threading.Event()
        self.swept = threading.Event()  # set after each collection
        self.last: Collection | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Sweeper:
        if self.interval_s > 0:
            self.thread = threading.Thread(target=self._run, name="tuneserve-gc", daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.last = collect(*self._parts)
            except Exception:  # the registry or the store is down: try again next time
                logger.exception("storage collection failed; next try in %g s", self.interval_s)
            self.swept.set()
