"""JobRunner: the long-lived Ray actor that takes queued jobs and sees each one through.

validating_files → queued → running (Ray Train) → evaluating (candidate vs production)
→ registered as a new version → gated → promoted (or not, with the reason).

Its state is the database: a restarted runner marks jobs that were mid-flight as failed,
and picks up queued ones where they are. A redeploy that changes the settings replaces it
(``get_or_start_runner``), never in the middle of a job.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tuneserve.errors import TuneserveError
from tuneserve.logs import configure_logging
from tuneserve.registry import connect, refuse_node_local
from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.training import pipeline
from tuneserve.training.identity import RUNNER_NAME
from tuneserve.training.pipeline import JobContext, Promoter
from tuneserve.training.trainer import JobFailure

logger = logging.getLogger("tuneserve.runner")


@dataclass
class _Slot:
    job_id: str | None = None


class JobRunner:
    def __init__(self, settings: Settings, promote: Promoter):
        configure_logging()
        refuse_node_local(settings.registry, ray.nodes())
        self.settings = settings
        self.fingerprint = settings.fingerprint()
        self._retiring = False
        registry, store = connect(settings.registry)
        self.jobs = JobStore(registry.engine)
        catalog = TaskCatalog.load(settings.tasks.modules)
        self.context = JobContext(settings, registry, store, self.jobs, catalog, promote)
        interrupted = self.jobs.fail_interrupted(
            "the service stopped while this job was running; create it again"
        )
        if interrupted:
            logger.warning("marked interrupted jobs as failed: %s", interrupted)
        self._wake = threading.Condition()
        self._slots = [_Slot() for _ in range(settings.training.max_concurrent_jobs)]
        for slot in self._slots:
            threading.Thread(target=self._work, args=(slot,), daemon=True).start()

    def wake(self) -> None:
        """A job was created or cancelled: look at the queue now."""
        with self._wake:
            self._wake.notify_all()

    def running(self) -> list[str]:
        return [slot.job_id for slot in self._slots if slot.job_id]

    def state(self) -> dict:
        """The settings it runs with (as a fingerprint), its running jobs, whether retiring."""
        return {
            "settings_fingerprint": self.fingerprint,
            "running": self.running(),
            "retiring": self._retiring,
        }

    def retire(self) -> list[str]:
        """Take no new job (newer settings are waiting to replace this runner); the jobs
        still running are returned, and finish here."""
        self._retiring = True
        return self.running()

    def _work(self, slot: _Slot) -> None:
        while True:
            job = self._claim()
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=2.0)
                continue
            slot.job_id = job.id
            try:
                self._run(job)
            finally:
                slot.job_id = None

    def _claim(self) -> JobInfo | None:
        """Validate the oldest new job, or start the oldest queued one (compare-and-set)."""
        if self._retiring:
            return None
        job = self.jobs.next_job(("validating_files",))
        if job is not None:
            self._validate(job)  # then straight on: it may be the next queued job
        job = self.jobs.next_job(("queued",))
        if job is not None and self.jobs.transition(job.id, ("queued",), "running"):
            return self.jobs.get_job(job.id)
        return None

    def _validate(self, job: JobInfo) -> None:
        try:
            pipeline.validate(job, self.context)
        except (JobFailure, TuneserveError) as failure:
            self._fail(job.id, ("validating_files",), failure)
            return
        self.jobs.transition(job.id, ("validating_files",), "queued")

    def _run(self, job: JobInfo) -> None:
        logger.info("job started", extra={"job_id": job.id, "model": job.model})
        try:
            pipeline.run(job, self.context)
        except (JobFailure, TuneserveError) as failure:
            self._fail(job.id, ("running", "evaluating"), failure)
        except Exception as error:  # a bug or an infrastructure fault: say so, keep serving
            logger.exception("job crashed", extra={"job_id": job.id})
            self._fail(
                job.id,
                ("running", "evaluating"),
                JobFailure("internal_error", f"{type(error).__name__}: {error}"),
            )

    def _fail(self, job_id: str, expected: tuple[str, ...], failure: Exception) -> None:
        code = getattr(failure, "code", None) or getattr(failure, "type", "error")
        logger.warning("job failed: %s", code, extra={"job_id": job_id})
        error = {
            "code": code,
            "message": getattr(failure, "message", str(failure)),
            "param": getattr(failure, "param", None),
        }
        self.jobs.add_event(job_id, f"failed: {error['message']}", level="error")
        self.jobs.transition(job_id, expected, "failed", error=error)


def get_or_start_runner(settings: Settings, promote: Promoter):
    """The cluster's one JobRunner (detached, restarted by Ray if it dies), with ``settings``.

    A runner started with other settings (a redeploy changed them) is replaced: at once when
    it is idle; when it is training, it takes no new job, finishes its own, and the first
    call after that replaces it (the gateway calls on every job created and every /readyz).
    ``promote`` is how a job's gate moves production: the serving layer's callback.
    """
    try:
        current = ray.get_actor(RUNNER_NAME, namespace=settings.app_name)
    except ValueError:
        current = None
    if current is not None:
        if ray.get(current.state.remote())["settings_fingerprint"] == settings.fingerprint():
            return current
        still_running = ray.get(current.retire.remote())
        if still_running:
            logger.info("job runner settings changed; replacing it after %s", still_running)
            return current
        logger.info("job runner settings changed; replacing the idle runner")
        ray.kill(current, no_restart=True)
        _wait_until_gone(settings.app_name)
    actor = ray.remote(JobRunner).options(
        name=RUNNER_NAME,
        namespace=settings.app_name,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
        max_concurrency=4,
        # beside its caller (the gateway, on the head node in Kubernetes), not on a worker
        # node the autoscaler may remove mid-job
        scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=True
        ),
    )
    return actor.remote(settings, promote)


def _wait_until_gone(namespace: str, timeout_s: float = 30) -> None:
    """Until the killed runner's name is free: Ray releases it once the actor is dead."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(RUNNER_NAME, namespace=namespace)
        except ValueError:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the old job runner did not stop within {timeout_s:g} s")
