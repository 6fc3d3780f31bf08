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
    Hyperparameters,
    JobCreate,
    JobList,
    JobPublic,
)
from tuneserve.control.access import ADMIN, Principal
from tuneserve.control.job_limits import check_job_size
from tuneserve.errors import InvalidRequest, NotFound, QuotaExceeded
from tuneserve.registry import ArtifactStore, Registry, VersionInfo
from tuneserve.registry.jobs import JobStore
from tuneserve.registry.refs import MODEL_NAME, MODEL_NAME_RULE, ModelRef, derived_name
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.lora import LoraParameters
from tuneserve.tasks.spec import BASE_ENCODER
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
        task = self._job_task(body, ref.name, base.task)
        if body.suffix is not None:
            self._check_output_model(derived_name(ref.name, body.suffix), task)
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
        spec = self.catalog.get(task)
        config = TrainingConfig.resolve(hyper, spec, self.settings, _lora(body, base, hyper))
        if body.labels is not None:
            config = config.model_copy(update={"head_labels": spec.new_head(body.labels)})
        check_job_size(config, self.jobs.get_file(body.training_file).rows, self.settings.limits)
        job = self.jobs.create_job(
            model=ref.name,
            base_version=base.version,
            task=task,
            training_file=body.training_file,
            validation_file=body.validation_file,
            hyperparameters=config.model_dump(),
            promotion=promotion.model_dump(),
            suffix=body.suffix,
            owner=caller.tenant,
        )
        self.wake_runner()
        return JobPublic.model_validate(job)

    def _job_task(self, body: JobCreate, name: str, base_task: str) -> str:
        """The task the job trains: its base's, or, for a fresh head (``labels``), any task
        whose models are heads on an encoder, when the base is an encoder too."""
        if body.labels is None:
            if base_task == BASE_ENCODER:
                raise InvalidRequest(
                    f"model {name!r} is a plain encoder, which serves nothing: give labels, "
                    "a task and a suffix to start a model from it",
                    param="labels",
                )
            if body.task is not None and body.task != base_task:
                raise InvalidRequest(
                    f"model {name!r} is a {base_task} model, not {body.task}", param="task"
                )
            return base_task
        if body.suffix is None:
            raise InvalidRequest(
                "labels start a new model with a head of its own: give a suffix to name it "
                f"(the base {name!r} keeps its head and its production version)",
                param="suffix",
            )
        task = body.task or base_task
        if task == BASE_ENCODER:
            raise InvalidRequest(
                "give the task of the new model (classification or ner)", param="task"
            )
        base_is_encoder = base_task == BASE_ENCODER or self.catalog.get(base_task).encoder_head
        if not (self.catalog.get(task).encoder_head and base_is_encoder):
            raise InvalidRequest(
                f"a new {task} head goes on an encoder: {name!r} is a {base_task} model",
                param="task",
            )
        return task

    def _check_output_model(self, name: str, task: str) -> None:
        """A suffix names a new model (or one an earlier suffix job made, of the same task)."""
        if not MODEL_NAME.fullmatch(name):
            raise InvalidRequest(
                f"the new model's name {name!r} is not valid: {MODEL_NAME_RULE}", param="suffix"
            )
        try:
            existing = self.registry.get_model(name).task
        except NotFound:
            return
        if existing != task:
            raise InvalidRequest(
                f"model {name!r} exists and is a {existing} model, not {task}: choose another "
                "suffix",
                param="suffix",
            )

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


def _lora(body: JobCreate, base: VersionInfo, hyper: Hyperparameters) -> LoraParameters | None:
    """A LoRA job's adapter settings, or None for a full fine-tune.

    A LoRA version keeps its base's head, so it cannot learn new labels; on a base that is a
    LoRA version itself, the job trains that adapter further, with that adapter's settings.
    """
    lora = body.method.lora_parameters() if body.method else None
    if lora is None:
        return None
    if body.labels is not None or hyper.allow_new_labels:
        raise InvalidRequest(
            "a LoRA version runs on its base's head and cannot learn new labels: use "
            "method.type 'supervised' for those",
            param="method.type",
        )
    under = base.lineage.get("adapter")
    if under is None:
        return lora
    existing = LoraParameters.model_validate(under["lora"])
    if body.method.lora is not None and body.method.lora != existing:
        raise InvalidRequest(
            f"{base.model}@{base.version} is a LoRA version: the job trains its adapter "
            f"further, with its settings ({existing.model_dump()}); leave method.lora out",
            param="method.lora",
        )
    return existing
