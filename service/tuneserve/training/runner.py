"""JobRunner: the long-lived Ray actor that takes queued jobs and sees each one through.

validating_files → queued → running (Ray Train) → evaluating (candidate vs production)
→ registered as a new version → gated → promoted (or not, with the reason).

Its state is the database: a restarted runner settles jobs that were mid-flight, and picks
up queued ones where they are. A redeploy that changes the settings replaces it
(``get_or_start_runner``), never in the middle of a job. Its worker loop (``supervisor``)
survives every error; ``state()`` says how long ago it last went round (its heartbeat),
and the runner exports that age as a metric. Training workers report their events through
it (``progress``): they hold no database connection.

This module imports nothing of the training pipeline at its top. Ray imports an actor's
class module in every process that unpickles a handle of the actor, to learn its methods:
the gateway replicas (which look the runner up on every job created) and the training
workers (which report to it) would otherwise import Ray Train, torch and transformers for
a handle. The pipeline is imported in ``JobRunner.__init__``, in the runner's own process.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tuneserve.logs import configure_logging
from tuneserve.registry import connect, refuse_node_local
from tuneserve.registry.jobs import JobStore
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.telemetry import Recorder
from tuneserve.telemetry.catalog import RUNNER_HEARTBEAT_AGE
from tuneserve.training.identity import RUNNER_NAME, RunnerAddress

if TYPE_CHECKING:
    from tuneserve.training.context import Promoter

logger = logging.getLogger("tuneserve.runner")


class JobRunner:
    def __init__(self, settings: Settings, promote: Promoter):
        # the pipeline, here and not at the top: see the module's docstring
        from tuneserve.training.context import JobContext
        from tuneserve.training.fit_host import FitHosts
        from tuneserve.training.reconcile import Sweeper, reconcile
        from tuneserve.training.supervisor import JobSupervisor

        configure_logging()
        refuse_node_local(settings.registry, ray.nodes())
        self.settings = settings
        self.fingerprint = settings.fingerprint()
        registry, store = connect(settings.registry)
        self.jobs = JobStore(registry.engine)
        catalog = TaskCatalog.load(settings.tasks.modules)
        self.context = JobContext(
            settings,
            registry,
            store,
            self.jobs,
            catalog,
            promote,
            reporter=RunnerAddress(settings.app_name),
            fit_hosts=FitHosts(warm=settings.training.warm_fit_hosts),
        )
        # before any job is taken: settle interrupted jobs, collect storage; then sweep
        reconcile(settings, registry, store, self.jobs)
        Sweeper(settings, registry, store, self.jobs).start()
        self.supervisor = JobSupervisor(self.context)
        self.supervisor.start()
        if settings.telemetry.metrics_enabled:
            threading.Thread(target=self._export_heartbeat, daemon=True).start()

    def wake(self) -> None:
        """A job was created or cancelled: look at the queue now."""
        self.supervisor.wake()

    def running(self) -> list[str]:
        return self.supervisor.running()

    def state(self) -> dict:
        """The settings it runs with (as a fingerprint), its running jobs, whether retiring,
        and its heartbeat: seconds since its worker loop last showed life."""
        return {
            "settings_fingerprint": self.fingerprint,
            "running": self.running(),
            "retiring": self.supervisor.retiring,
            "heartbeat_age_s": round(self.supervisor.heartbeat_age(), 1),
        }

    def retire(self) -> list[str]:
        """Take no new job (newer settings are waiting to replace this runner); the jobs
        still running are returned, and finish here."""
        self.supervisor.retiring = True
        return self.running()

    def progress(self, job_id: str, message: str | None = None, data: Any = None) -> bool:
        """A training worker's report: its event (if any) is recorded; the answer says
        whether the job's cancel was asked for. A database error is logged, not passed on:
        the worker must not fail for it (the next report tries again)."""
        try:
            if message is not None:
                self.jobs.add_event(job_id, message, data=data)
            return self.jobs.get_job(job_id).cancel_requested
        except Exception:
            logger.exception("could not record a training report", extra={"job_id": job_id})
            return False

    def _export_heartbeat(self) -> None:
        """The heartbeat's age as a gauge, set from a thread of its own: it grows while the
        loop is stuck, and the series goes (Ray forgets it) when the runner is gone."""
        recorder = Recorder(enabled=True)
        while True:
            recorder.set(RUNNER_HEARTBEAT_AGE, self.supervisor.heartbeat_age())
            time.sleep(self.settings.telemetry.gauge_refresh_s)


def get_or_start_runner(settings: Settings, promote: Promoter):
    """The cluster's one JobRunner (detached, restarted by Ray if it dies), with ``settings``.

    A runner started with other settings (a redeploy changed them) is replaced: at once when
    it is idle; when it is training, it takes no new job, finishes its own, and the first
    call after that replaces it (the gateway calls on every job created and every /readyz).
    ``promote`` is how a job's gate moves production: the serving layer's callback.
    """
    try:
        current = RunnerAddress(settings.app_name).handle()
    except ValueError:
        current = None
    if current is not None:
        try:
            state = ray.get(current.state.remote())
        except ray.exceptions.ActorUnavailableError:  # Ray is restarting it after a crash:
            return current  # it takes the queue up when back; its settings are checked later
        if state["settings_fingerprint"] == settings.fingerprint():
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
            RunnerAddress(namespace).handle()
        except ValueError:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the old job runner did not stop within {timeout_s:g} s")
