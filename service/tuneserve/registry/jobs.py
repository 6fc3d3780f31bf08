"""Every query about fine-tuning: files, jobs and their status, events, checkpoints."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from tuneserve.errors import Conflict, NotFound
from tuneserve.registry.db import CheckpointRow, FileRow, JobEventRow, JobRow, utcnow
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
    def _transaction(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # --- files -------------------------------------------------------------------------
    def create_file(self, **fields: Any) -> FileInfo:
        labels = fields.pop("labels")
        with self._transaction() as session:
            row = FileRow(id=new_id("file"), labels={"labels": labels}, **fields)
            session.add(row)
        return self._file_info(row)

    def get_file(self, file_id: str) -> FileInfo:
        with self._transaction() as session:
            row = session.scalar(select(FileRow).where(FileRow.id == file_id))
            if row is None:
                raise NotFound(f"no file {file_id!r}", param="file_id")
            return self._file_info(row)

    def list_files(self) -> list[FileInfo]:
        with self._transaction() as session:
            rows = session.scalars(select(FileRow).order_by(FileRow.seq.desc())).all()
            return [self._file_info(row) for row in rows]

    def delete_file(self, file_id: str) -> FileInfo:
        """Remove a file's record, refused while an unfinished job reads it."""
        with self._transaction() as session:
            row = session.scalar(select(FileRow).where(FileRow.id == file_id))
            if row is None:
                raise NotFound(f"no file {file_id!r}", param="file_id")
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

    def get_job(self, job_id: str) -> JobInfo:
        with self._transaction() as session:
            return record_of(JobInfo, self._job_row(session, job_id))

    def list_jobs(self, after: str | None, limit: int) -> tuple[list[JobInfo], bool]:
        """Newest first; ``after`` is the id of the last job of the previous page."""
        with self._transaction() as session:
            query = select(JobRow).order_by(JobRow.seq.desc())
            if after is not None:
                query = query.where(JobRow.seq < self._job_row(session, after).seq)
            rows = session.scalars(query.limit(limit + 1)).all()
            return [record_of(JobInfo, row) for row in rows[:limit]], len(rows) > limit

    def next_job(self, statuses: tuple[str, ...]) -> JobInfo | None:
        """The oldest job in one of ``statuses``."""
        with self._transaction() as session:
            query = select(JobRow).where(JobRow.status.in_(statuses)).order_by(JobRow.seq)
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
        with self._transaction() as session:
            ids = session.scalars(
                select(JobRow.id).where(JobRow.status.in_(("running", "evaluating")))
            ).all()
        error = {"code": "interrupted", "message": reason, "param": None}
        return [
            i for i in ids if self.transition(i, ("running", "evaluating"), "failed", error=error)
        ]

    # --- for metrics ---------------------------------------------------------------------
    def count_by_state(self) -> dict[tuple[str, str], int]:
        """(task, status) → number of jobs."""
        with self._transaction() as session:
            query = select(JobRow.task, JobRow.status, func.count()).group_by(
                JobRow.task, JobRow.status
            )
            return {(task, status): count for task, status, count in session.execute(query)}

    def finished_durations(self) -> list[tuple[str, str, float]]:
        """(task, final status, seconds from creation to the end) of every finished job."""
        with self._transaction() as session:
            query = select(JobRow.task, JobRow.status, JobRow.created_at, JobRow.finished_at)
            rows = session.execute(query.where(JobRow.finished_at.is_not(None))).all()
            return [(t, s, (end - start).total_seconds()) for t, s, start, end in rows]

    def running_progress(self) -> list[tuple[JobInfo, dict[str, Any]]]:
        """Each running job with the latest value of each figure its step events reported.

        A step event carries every figure, so the latest few events are enough (an epoch
        event may come between); a scrape costs the same at step 10 and at step 10,000.
        """
        with self._transaction() as session:
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

    @staticmethod
    def _job_row(session: Session, job_id: str) -> JobRow:
        row = session.scalar(select(JobRow).where(JobRow.id == job_id))
        if row is None:
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
        with self._transaction() as session:
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
        with self._transaction() as session:
            self._job_row(session, job_id)
            query = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
            rows = session.scalars(query.order_by(CheckpointRow.seq.desc())).all()
            return [record_of(CheckpointInfo, r, id=f"ftckpt-{r.seq}") for r in rows]
