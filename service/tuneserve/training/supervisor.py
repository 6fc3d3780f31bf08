"""The job runner's worker loop, apart from the Ray actor: take the next job, see it through,
and survive every error on the way.

Each worker goes round: validate the oldest new job, or start the oldest queued one. An
error of the loop itself (the database away, say) is logged and waited out, with a backoff
that doubles up to a cap; the loop then goes on. A job's own failure (its files, its
hyperparameters, its gate: a ``JobFailure`` or a 4xx ``TuneserveError``) fails it with that
error, never retried. Any other error is internal: the job runs again after a backoff, up to
``training.max_job_attempts`` starts, then fails with the code ``internal_error``. Users see
a code and a message with a reference; the exception is logged under that reference.

Every round, and every poll while a job trains or is evaluated, beats the worker's
heartbeat; the runner reports the age of the stalest one. Ray-free: tests drive it with a
real registry and their own train and evaluate phases.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tuneserve.errors import TuneserveError
from tuneserve.registry.jobs import JobInfo
from tuneserve.settings import TrainingSettings
from tuneserve.training import pipeline
from tuneserve.training.context import RUN_STATES, JobContext
from tuneserve.training.trainer import JobFailure, log_internal, new_reference

logger = logging.getLogger("tuneserve.runner")


def backoff(training: TrainingSettings, failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling, capped."""
    return min(training.retry_backoff_max_s, training.retry_backoff_s * 2 ** min(failures - 1, 30))


def is_users(error: Exception) -> bool:
    """A failure the job's owner can act on (its data, its settings): never retried."""
    if isinstance(error, JobFailure):
        return True
    return isinstance(error, TuneserveError) and error.status_code < 500


def users_error(error: JobFailure | TuneserveError) -> dict:
    """The job's ``error`` for a failure of its own: the code and our message, as written."""
    code = getattr(error, "code", None) or getattr(error, "type", "error")
    return {"code": code, "message": error.message, "param": error.param}


def internal_error(message: str) -> dict:
    return {"code": "internal_error", "message": message, "param": None}


@dataclass
class Slot:
    """One worker: the job it holds (still held if the job's end could not be recorded)."""

    job_id: str | None = None
    errors: int = 0  # errors of the loop in a row
    beat: float = field(default_factory=time.monotonic)


@dataclass
class _Retry:
    failures: int
    not_before: float  # on the supervisor's clock


class JobSupervisor:
    """The worker loop(s) of one runner over ``context``'s registry."""

    def __init__(self, context: JobContext, clock: Callable[[], float] = time.monotonic):
        self.context = dataclasses.replace(context, heartbeat=self.beat)
        self.jobs = context.jobs
        self.training = context.settings.training
        self.clock = clock
        self.retiring = False
        self.slots = [Slot(beat=clock()) for _ in range(self.training.max_concurrent_jobs)]
        self._retries: dict[str, _Retry] = {}
        self._lock = threading.Lock()  # over _retries: every worker reads and writes it
        self._local = threading.local()  # the slot of the worker thread running
        self._wake = threading.Condition()
        self._stopped = threading.Event()

    # --- the threads -------------------------------------------------------------------
    def start(self) -> None:
        for slot in self.slots:
            threading.Thread(target=self._work, args=(slot,), daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self.wake()

    def wake(self) -> None:
        """A job was created or cancelled: look at the queue now."""
        with self._wake:
            self._wake.notify_all()

    def _work(self, slot: Slot) -> None:
        while not self._stopped.is_set():
            pause = self.go_round(slot)
            if slot.errors:  # a backoff: not cut short by a wake
                self._stopped.wait(pause)
            elif pause:
                with self._wake:
                    self._wake.wait(timeout=pause)

    # --- what the runner reports ----------------------------------------------------------
    def running(self) -> list[str]:
        return [slot.job_id for slot in self.slots if slot.job_id]

    def beat(self) -> None:
        """The calling worker is alive (its loop went round, or it waits on a job)."""
        slot = getattr(self._local, "slot", None)
        if slot is not None:
            slot.beat = self.clock()

    def heartbeat_age(self) -> float:
        """Seconds since the stalest worker last showed life."""
        return self.clock() - min(slot.beat for slot in self.slots)

    # --- one round -----------------------------------------------------------------------
    def go_round(self, slot: Slot) -> float:
        """One round of a worker; the seconds to wait before the next. Never raises."""
        self._local.slot = slot
        self.beat()
        try:
            if slot.job_id is not None:
                self._settle_unrecorded(slot)
            worked = self._take_work(slot)
        except Exception:
            slot.errors += 1
            pause = backoff(self.training, slot.errors)
            logger.exception(
                "job runner loop failed (%d in a row); next try in %g s", slot.errors, pause
            )
            return pause
        slot.errors = 0
        return 0.0 if worked else self.training.poll_interval_s

    def _take_work(self, slot: Slot) -> bool:
        """Validate the oldest new job, or start the oldest queued one; False if none."""
        if self.retiring:
            return False
        waiting = self._waiting()
        job = self.jobs.next_job(("validating_files",), exclude=waiting)
        if job is not None:
            self._validate(job)
            return True
        job = self.jobs.next_job(("queued",), exclude=waiting)
        if job is None:
            return False
        started = self.jobs.start_job(job.id)  # None: cancelled, or taken by another worker
        if started is not None:
            slot.job_id = started.id
            self._run(started)
            slot.job_id = None
        return True

    def _validate(self, job: JobInfo) -> None:
        try:
            pipeline.validate(job, self.context)
        except Exception as error:
            if is_users(error):
                self._fail(job.id, ("validating_files",), users_error(error))
            else:
                self._retry_validation(job)
            return
        if self.jobs.transition(job.id, ("validating_files",), "queued"):
            self._forget(job.id)

    def _run(self, job: JobInfo) -> None:
        """Run the job; its end is recorded here (this raises only if recording failed)."""
        logger.info("job started (attempt %d)", job.attempts, extra={"job_id": job.id})
        try:
            pipeline.run(job, self.context)
        except Exception as error:
            if is_users(error):
                self._fail(job.id, RUN_STATES, users_error(error))
                return
            what = f"job {job.id} stopped with an internal error in attempt {job.attempts}"
            self._after_internal_error(job.id, log_internal(what, job.id))
            return
        self._forget(job.id)

    # --- failures ------------------------------------------------------------------------
    def _after_internal_error(self, job_id: str, reference: str) -> None:
        """Run the job again after a backoff, or fail it once its attempts are spent (or
        once it has registered a version: a second run would register another)."""
        job = self.jobs.get_job(job_id)
        if job.status not in RUN_STATES:  # it ended meanwhile (cancelled, say)
            return
        version = pipeline.registered_version(job, self.context)
        limit = self.training.max_job_attempts
        if version is None and job.attempts < limit:
            pause = backoff(self.training, job.attempts)
            if self.jobs.transition(job_id, RUN_STATES, "queued"):
                self._hold(job_id, job.attempts, pause)
                self.jobs.add_event(
                    job_id,
                    f"attempt {job.attempts} of {limit} stopped with an internal error "
                    f"(reference {reference}); the job runs again in {pause:g} s",
                    level="warning",
                )
            return
        if version is not None:
            message = (
                f"the job stopped with an internal error (reference {reference}) after it "
                f"registered version {version}; see the model's aliases for where it stands"
            )
        else:
            message = (
                f"the job stopped with an internal error in each of its {job.attempts} "
                f"attempts (reference {reference}); create it again, and report the "
                "reference if it keeps happening"
            )
        self._fail(job_id, RUN_STATES, internal_error(message))

    def _retry_validation(self, job: JobInfo) -> None:
        with self._lock:
            failures = self._retries[job.id].failures + 1 if job.id in self._retries else 1
        what = f"checking the files of job {job.id} failed with an internal error"
        reference = log_internal(what, job.id)
        if failures >= self.training.max_job_attempts:
            message = (
                f"checking the job's files failed with an internal error {failures} times "
                f"(reference {reference}); create it again, and report the reference if it "
                "keeps happening"
            )
            self._fail(job.id, ("validating_files",), internal_error(message))
            return
        pause = backoff(self.training, failures)
        self._hold(job.id, failures, pause)
        self.jobs.add_event(
            job.id,
            f"checking the files stopped with an internal error (reference {reference}); "
            f"trying again in {pause:g} s",
            level="warning",
        )

    def _settle_unrecorded(self, slot: Slot) -> None:
        """The slot's last job ended but recording its end failed: settle it now, as an
        internal error (its own error, if that was it, comes back on its next attempt)."""
        reference = new_reference()
        logger.error(
            "the end of job %s could not be recorded; settling it now (reference %s)",
            slot.job_id,
            reference,
            extra={"job_id": slot.job_id},
        )
        self._after_internal_error(slot.job_id, reference)
        slot.job_id = None

    def _fail(self, job_id: str, expected: tuple[str, ...], error: dict) -> None:
        if self.jobs.transition(job_id, expected, "failed", error=error):
            self.jobs.add_event(job_id, f"failed: {error['message']}", level="error")
            logger.warning("job failed: %s", error["code"], extra={"job_id": job_id})
        self._forget(job_id)

    # --- jobs waiting for a retry ----------------------------------------------------------
    def _hold(self, job_id: str, failures: int, pause: float) -> None:
        with self._lock:
            self._retries[job_id] = _Retry(failures, self.clock() + pause)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._retries.pop(job_id, None)

    def _waiting(self) -> list[str]:
        """Jobs whose retry is not due yet: no worker takes them."""
        now = self.clock()
        with self._lock:
            return [job_id for job_id, retry in self._retries.items() if retry.not_before > now]
