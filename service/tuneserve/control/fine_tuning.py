"""FineTuningService: training files, jobs, their events and checkpoints, per tenant.

Every use case takes the calling ``Principal``: a tenant's key sees and changes only its
tenant's files and jobs (another tenant's id is a 404, so ids do not leak), an admin sees
all. Quotas (unfinished jobs, stored bytes) are per tenant.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from tuneserve.api.fine_tuning import (
    CheckpointList,
    CheckpointPublic,
    EventList,
    EventPublic,
    FileDeleted,
    FileList,
    FilePublic,
    JobCreate,
    JobList,
    JobPublic,
)
from tuneserve.control.access import ADMIN, Principal
from tuneserve.control.job_limits import check_job_size
from tuneserve.errors import InvalidRequest, QuotaExceeded
from tuneserve.registry import ArtifactStore, Registry
from tuneserve.registry.jobs import JobStore
from tuneserve.registry.refs import ModelRef
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.training.config import TrainingConfig
from tuneserve.training.data import parse_training_file
from tuneserve.training.dataset import ArrowRowWriter


class FineTuningService:
    """The fine-tuning use cases; ``wake_runner`` tells the job runner to look at its queue."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: ArtifactStore,
        catalog: TaskCatalog,
        wake_runner: Callable[[], None],
    ):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.jobs = JobStore(registry.engine)
        self.catalog = catalog
        self.wake_runner = wake_runner

    # --- files -------------------------------------------------------------------------
    def upload_file(
        self, caller: Principal, data: bytes, filename: str, purpose: str, task: str | None
    ) -> FilePublic:
        """Validate every row (errors name line and field), store the rows, record the file."""
        if purpose != "fine-tune":
            raise InvalidRequest(
                f"purpose {purpose!r} is not supported; use 'fine-tune'", param="purpose"
            )
        self._check_storage_quota(caller.tenant, len(data))
        limits = self.settings.limits
        with tempfile.TemporaryDirectory() as folder:
            arrow = Path(folder) / "rows.arrow"
            with ArrowRowWriter(arrow) as sink:  # converted once, as the rows stream by
                parsed = parse_training_file(
                    data,
                    filename,
                    self.catalog,
                    sink,
                    task=task,
                    max_bytes=limits.max_upload_bytes,
                    max_rows=limits.max_file_rows,
                    max_errors=limits.max_file_errors,
                )
            key = f"files/{parsed.sha256[:16]}/{uuid.uuid4().hex}.arrow"
            uri = self.store.put_file(arrow, key)
        info = self.jobs.create_file(
            filename=filename,
            purpose=purpose,
            bytes=len(data),
            sha256=parsed.sha256,
            rows=parsed.rows,
            task=parsed.task,
            labels=parsed.labels,
            uri=uri,
            owner=caller.tenant,
        )
        return FilePublic.model_validate(info)

    def _check_storage_quota(self, tenant: str, adding: int) -> None:
        quota = self.settings.quotas.max_stored_bytes
        used = self.jobs.stored_bytes(tenant)
        if used + adding > quota:
            raise QuotaExceeded(
                f"tenant {tenant!r} keeps {used} bytes of files; this upload of {adding} would "
                f"pass its quota of {quota}. Delete files it no longer needs",
                param="file",
            )

    def list_files(self, caller: Principal) -> FileList:
        files = self.jobs.list_files(caller.owner_filter())
        return FileList(data=[FilePublic.model_validate(f) for f in files])

    def get_file(self, caller: Principal, file_id: str) -> FilePublic:
        return FilePublic.model_validate(self.jobs.get_file(file_id, caller.owner_filter()))

    def delete_file(self, caller: Principal, file_id: str) -> FileDeleted:
        """Delete a file; refused (409) while an unfinished job uses it."""
        info = self.jobs.delete_file(file_id, caller.owner_filter())
        self.store.delete(info.uri)
        return FileDeleted(id=file_id)

    # --- jobs --------------------------------------------------------------------------
    def create_job(self, caller: Principal, body: JobCreate) -> JobPublic:
        """Queue a job that fine-tunes ``body.model``; its config is resolved here, once.

        Automatic promotion moves production, so it needs the admin scope like a manual one.
        """
        promotion = body.promotion
        if promotion.auto:
            caller.require(ADMIN)
        auto = caller.is_admin and promotion.auto is not False
        promotion = promotion.model_copy(update={"auto": auto})
        hyper = body.resolved_hyperparameters()
        ref = ModelRef.parse(body.model)
        base = self.registry.resolve_ref(ref)
        if body.task is not None and body.task != base.task:
            raise InvalidRequest(
                f"model {ref.name!r} is a {base.task} model, not {body.task}", param="task"
            )
        for param in ("training_file", "validation_file"):
            if getattr(body, param):  # 404 naming a file that is missing or not the caller's
                self.jobs.get_file(getattr(body, param), caller.owner_filter())
        unfinished = self.jobs.unfinished_jobs(caller.tenant)
        if unfinished >= self.settings.quotas.max_queued_jobs:
            raise QuotaExceeded(
                f"tenant {caller.tenant!r} has {unfinished} unfinished jobs, its quota; wait "
                "for one to finish or cancel one",
                param="training_file",
            )
        config = TrainingConfig.resolve(hyper, self.catalog.get(base.task), self.settings)
        check_job_size(config, self.jobs.get_file(body.training_file).rows, self.settings.limits)
        job = self.jobs.create_job(
            model=ref.name,
            base_version=base.version,
            task=base.task,
            training_file=body.training_file,
            validation_file=body.validation_file,
            hyperparameters=config.model_dump(),
            promotion=promotion.model_dump(),
            suffix=body.suffix,
            owner=caller.tenant,
        )
        self.wake_runner()
        return JobPublic.model_validate(job)

    def list_jobs(self, caller: Principal, after: str | None, limit: int) -> JobList:
        jobs, has_more = self.jobs.list_jobs(after, limit, caller.owner_filter())
        return JobList(data=[JobPublic.model_validate(j) for j in jobs], has_more=has_more)

    def get_job(self, caller: Principal, job_id: str) -> JobPublic:
        return JobPublic.model_validate(self.jobs.get_job(job_id, caller.owner_filter()))

    def cancel_job(self, caller: Principal, job_id: str) -> JobPublic:
        """Cancel now if not started; a running job stops at its next step (or is killed)."""
        self.jobs.get_job(job_id, caller.owner_filter())
        job = self.jobs.request_cancel(job_id)
        self.wake_runner()
        return JobPublic.model_validate(job)

    def list_events(
        self, caller: Principal, job_id: str, after: str | None, limit: int
    ) -> EventList:
        self.jobs.get_job(job_id, caller.owner_filter())
        events, has_more = self.jobs.list_events(job_id, after, limit)
        return EventList(data=[EventPublic.model_validate(e) for e in events], has_more=has_more)

    def list_checkpoints(self, caller: Principal, job_id: str) -> CheckpointList:
        self.jobs.get_job(job_id, caller.owner_filter())
        checkpoints = self.jobs.list_checkpoints(job_id)
        return CheckpointList(data=[CheckpointPublic.model_validate(c) for c in checkpoints])
