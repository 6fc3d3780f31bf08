"""Every query about fine-tuning: files, jobs and their status, events, checkpoints."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from tuneserve.errors import Conflict, NotFound
from tuneserve.registry.db import READ_ONLY, CheckpointRow, FileRow, JobEventRow, JobRow, utcnow
from tuneserve.registry.records import CheckpointInfo, EventInfo, FileInfo, JobInfo, record_of

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("validating_files", "queued", "running", "evaluating")
JOB_STATES = ACTIVE + TERMINAL


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class JobStore:
    """Files, jobs, events and checkpoints over the registry's engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction; ``write=False`` for reads, which on SQLite then never queue
        behind a writer (see ``db._sqlite_engine``). Postgres treats both alike."""
        options = {} if write else {READ_ONLY: True}
        with (
            Session(self.engine, expire_on_commit=False, execution_options=options) as session,
            session.begin(),
        ):
            yield session

    # --- files -------------------------------------------------------------------------
    def create_file(self, **fields: Any) -> FileInfo:
        labels = fields.pop("labels")
        with self._transaction() as session:
            row = FileRow(id=new_id("file"), labels={"labels": labels}, **fields)
            session.add(row)
        return self._file_info(row)

    def get_file(self, file_id: str, owner: str | None = None) -> FileInfo:
        """A file; ``owner`` set: only that tenant's (another's is NotFound, not Forbidden:
        a tenant does not learn which ids exist)."""
        with self._transaction(write=False) as session:
            return self._file_info(self._file_row(session, file_id, owner))

    def list_files(self, owner: str | None = None) -> list[FileInfo]:
        """Newest first; every tenant's, or ``owner``'s only."""
        with self._transaction(write=False) as session:
            query = select(FileRow).order_by(FileRow.seq.desc())
            if owner is not None:
                query = query.where(FileRow.owner == owner)
            return [self._file_info(row) for row in session.scalars(query).all()]

    def stored_bytes(self, owner: str) -> int:
        """Bytes of the files ``owner`` keeps (its storage quota's use)."""
        with self._transaction(write=False) as session:
            total = session.scalar(select(func.sum(FileRow.bytes)).where(FileRow.owner == owner))
            return int(total or 0)

    @staticmethod
    def _file_row(session: Session, file_id: str, owner: str | None) -> FileRow:
        row = session.scalar(select(FileRow).where(FileRow.id == file_id))
        if row is None or (owner is not None and row.owner != owner):
            raise NotFound(f"no file {file_id!r}", param="file_id")
        return row

    def delete_file(self, file_id: str, owner: str | None = None) -> FileInfo:
        """Remove a file's record, refused while an unfinished job reads it."""
        with self._transaction() as session:
            row = self._file_row(session, file_id, owner)
            users = session.scalars(
                select(JobRow.id).where(
                    JobRow.status.in_(ACTIVE),
                    (JobRow.training_file == file_id) | (JobRow.validation_file == file_id),
                )
            ).all()
            if users:
                raise Conflict(
                    f"file {file_id} is used by unfinished job(s) {', '.join(users)}; cancel "
                    "them or wait for them to finish",
                    param="file_id",
                )
            info = self._file_info(row)
            session.delete(row)
            return info

    @staticmethod
    def _file_info(row: FileRow) -> FileInfo:
        return record_of(FileInfo, row, labels=row.labels["labels"])

    # --- jobs --------------------------------------------------------------------------
    def create_job(self, **fields: Any) -> JobInfo:
        with self._transaction() as session:
            row = JobRow(id=new_id("ftjob"), status="validating_files", **fields)
            session.add(row)
        self.add_event(row.id, f"created fine-tuning job {row.id}")
        return record_of(JobInfo, row)

    def get_job(self, job_id: str, owner: str | None = None) -> JobInfo:
        """A job; ``owner`` set: only that tenant's (another's is NotFound)."""
        with self._transaction(write=False) as session:
            return record_of(JobInfo, self._job_row(session, job_id, owner))

    def list_jobs(
        self, after: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[JobInfo], bool]:
        """Newest first; ``after`` is the id of the last job of the previous page."""
        with self._transaction(write=False) as session:
            query = select(JobRow).order_by(JobRow.seq.desc())
            if owner is not None:
                query = query.where(JobRow.owner == owner)
            if after is not None:
                query = query.where(JobRow.seq < self._job_row(session, after, owner).seq)
            rows = session.scalars(query.limit(limit + 1)).all()
            return [record_of(JobInfo, row) for row in rows[:limit]], len(rows) > limit

    def next_job(self, statuses: tuple[str, ...], exclude: Collection[str] = ()) -> JobInfo | None:
        """The oldest job in one of ``statuses`` and not in ``exclude`` (waiting for a retry)."""
        with self._transaction(write=False) as session:
            query = select(JobRow).where(JobRow.status.in_(statuses)).order_by(JobRow.seq)
            if exclude:
                query = query.where(JobRow.id.not_in(exclude))
            row = session.scalars(query.limit(1)).first()
            return record_of(JobInfo, row) if row else None

    def transition(self, job_id: str, expected: tuple[str, ...], status: str, **fields) -> bool:
        """Move a job to ``status`` only if it is in one of ``expected`` (compare-and-set)."""
        if status in TERMINAL:
            fields.setdefault("finished_at", utcnow())
        if status == "running":
            fields.setdefault("started_at", utcnow())
        with self._transaction() as session:
            result = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status.in_(expected))
                .values(status=status, **fields)
                .execution_options(synchronize_session=False)
            )
            moved = result.rowcount == 1
        if moved:
            self.add_event(job_id, f"status: {status}", data={"status": status})
        return moved

    def start_job(self, job_id: str) -> JobInfo | None:
        """Queued → running, counting the attempt (compare-and-set); None if it was not queued.
        Counting every start bounds the retries of a job that keeps meeting internal errors."""
        if not self.transition(job_id, ("queued",), "running", attempts=JobRow.attempts + 1):
            return None
        return self.get_job(job_id)

    def update_job(self, job_id: str, **fields: Any) -> None:
        with self._transaction() as session:
            session.execute(update(JobRow).where(JobRow.id == job_id).values(**fields))

    def request_cancel(self, job_id: str) -> JobInfo:
        """Cancel at once if the job has not started; else flag it for the runner."""
        job = self.get_job(job_id)
        if job.status in TERMINAL:
            raise Conflict(f"job {job_id} is already {job.status}", param="fine_tuning_job_id")
        if not self.transition(job_id, ("validating_files", "queued"), "cancelled"):
            self.update_job(job_id, cancel_requested=True)
            self.add_event(job_id, "cancellation requested")
        return self.get_job(job_id)

    def fail_interrupted(self, reason: str) -> list[str]:
        """Mark jobs that were mid-flight when the service stopped as failed (after a restart)."""
        with self._transaction(write=False) as session:
            ids = session.scalars(
                select(JobRow.id).where(JobRow.status.in_(("running", "evaluating")))
            ).all()
        error = {"code": "interrupted", "message": reason, "param": None}
        return [
            i for i in ids if self.transition(i, ("running", "evaluating"), "failed", error=error)
        ]

    # --- for start-up reconciliation and storage collection ------------------------------
    def jobs_in(self, statuses: tuple[str, ...] | None = None) -> list[JobInfo]:
        """Every job in one of ``statuses`` (None: every job), oldest first."""
        with self._transaction(write=False) as session:
            query = select(JobRow).order_by(JobRow.seq)
            if statuses is not None:
                query = query.where(JobRow.status.in_(statuses))
            return [record_of(JobInfo, row) for row in session.scalars(query)]

    def all_checkpoints(self) -> list[CheckpointInfo]:
        """Every job's checkpoints, oldest first."""
        with self._transaction(write=False) as session:
            rows = session.scalars(select(CheckpointRow).order_by(CheckpointRow.seq))
            return [record_of(CheckpointInfo, r, id=f"ftckpt-{r.seq}") for r in rows]

    def delete_checkpoint(self, checkpoint_id: str) -> bool:
        """Drop one checkpoint's row (its artifact is the caller's); False if already gone."""
        seq = int(checkpoint_id.removeprefix("ftckpt-"))
        with self._transaction() as session:
            result = session.execute(delete(CheckpointRow).where(CheckpointRow.seq == seq))
            return result.rowcount == 1

    # --- for metrics ---------------------------------------------------------------------
    def count_by_state(self) -> dict[tuple[str, str], int]:
        """(task, status) → number of jobs."""
        with self._transaction(write=False) as session:
            query = select(JobRow.task, JobRow.status, func.count()).group_by(
                JobRow.task, JobRow.status
            )
            return {(task, status): count for task, status, count in session.execute(query)}

    def finished_durations(self) -> list[tuple[str, str, float]]:
        """(task, final status, seconds from creation to the end) of every finished job."""
        with self._transaction(write=False) as session:
            query = select(JobRow.task, JobRow.status, JobRow.created_at, JobRow.finished_at)
            rows = session.execute(query.where(JobRow.finished_at.is_not(None))).all()
            return [(t, s, (end - start).total_seconds()) for t, s, start, end in rows]

    def running_progress(self) -> list[tuple[JobInfo, dict[str, Any]]]:
        """Each running job with the latest value of each figure its step events reported.

        A step event carries every figure, so the latest few events are enough (an epoch
        event may come between); a scrape costs the same at step 10 and at step 10,000.
        """
        with self._transaction(write=False) as session:
            rows = session.scalars(select(JobRow).where(JobRow.status == "running")).all()
            progress = []
            for row in rows:
                recent = session.scalars(
                    select(JobEventRow.data)
                    .where(JobEventRow.job_id == row.id, JobEventRow.type == "metrics")
                    .order_by(JobEventRow.seq.desc())
                    .limit(4)
                ).all()
                latest: dict[str, Any] = {}
                for data in reversed(recent):
                    latest.update(data or {})
                progress.append((record_of(JobInfo, row), latest))
            return progress

    def unfinished_jobs(self, owner: str) -> int:
        """How many of ``owner``'s jobs are not finished (its job quota's use)."""
        with self._transaction(write=False) as session:
            query = select(func.count()).where(JobRow.owner == owner, JobRow.status.in_(ACTIVE))
            return int(session.scalar(query) or 0)

    @staticmethod
    def _job_row(session: Session, job_id: str, owner: str | None = None) -> JobRow:
        row = session.scalar(select(JobRow).where(JobRow.id == job_id))
        if row is None or (owner is not None and row.owner != owner):
            raise NotFound(f"no fine-tuning job {job_id!r}", param="fine_tuning_job_id")
        return row

    # --- events and checkpoints --------------------------------------------------------
    def add_event(
        self, job_id: str, message: str, *, level: str = "info", data: dict[str, Any] | None = None
    ) -> None:
        kind = "metrics" if data and "step" in data else "message"
        with self._transaction() as session:
            session.add(
                JobEventRow(job_id=job_id, level=level, type=kind, message=message, data=data)
            )

    def list_events(self, job_id: str, after: str | None, limit: int):
        """Newest first, like OpenAI; event ids are ``ftevent-<seq>``."""
        with self._transaction(write=False) as session:
            self._job_row(session, job_id)
            query = select(JobEventRow).where(JobEventRow.job_id == job_id)
            if after is not None:
                query = query.where(JobEventRow.seq < int(after.removeprefix("ftevent-")))
            rows = session.scalars(query.order_by(JobEventRow.seq.desc()).limit(limit + 1)).all()
            events = [record_of(EventInfo, r, id=f"ftevent-{r.seq}") for r in rows[:limit]]
            return events, len(rows) > limit

    def add_checkpoint(
        self, job_id: str, epoch: int, step: int, uri: str, metrics: dict[str, Any]
    ) -> None:
        with self._transaction() as session:
            session.add(
                CheckpointRow(job_id=job_id, epoch=epoch, step=step, uri=uri, metrics=metrics)
            )

    def list_checkpoints(self, job_id: str) -> list[CheckpointInfo]:
        with self._transaction(write=False) as session:
            self._job_row(session, job_id)
            query = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
            rows = session.scalars(query.order_by(CheckpointRow.seq.desc())).all()
            return [record_of(CheckpointInfo, r, id=f"ftckpt-{r.seq}") for r in rows]
