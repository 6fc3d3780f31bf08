"""``/v1/fine_tuning/jobs``: create, list, retrieve, cancel, events, checkpoints."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from tuneserve.api.fine_tuning import (
    CheckpointList,
    CheckpointPublic,
    EventList,
    EventPublic,
    JobCreate,
    JobList,
    JobPublic,
)
from tuneserve.api.tasks import ErrorBody
from tuneserve.errors import InvalidRequest
from tuneserve.registry.jobs import JobInfo
from tuneserve.serving.gateway import GatewayDep

ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 409, 422)}
router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"], responses=ERRORS)
Limit = Annotated[int, Query(ge=1, le=100)]


def _stamp(moment) -> int | None:
    return int(moment.timestamp()) if moment else None


def public_job(job: JobInfo) -> JobPublic:
    hyper = job.hyperparameters
    shown = {
        k: hyper.get(k, "auto") for k in ("n_epochs", "batch_size", "learning_rate_multiplier")
    }
    return JobPublic(
        id=job.id,
        created_at=_stamp(job.created_at),
        error=job.error,
        fine_tuned_model=job.fine_tuned_model,
        finished_at=_stamp(job.finished_at),
        hyperparameters=shown,
        model=job.model,
        seed=hyper.get("seed"),
        status=job.status,
        trained_tokens=job.trained_tokens,
        training_file=job.training_file,
        validation_file=job.validation_file,
        method={"type": "supervised", "supervised": {"hyperparameters": shown}},
        user_provided_suffix=job.suffix,
        task=job.task,
        base_version=job.base_version,
        promotion=job.promotion,
        result=job.result,
        trained_examples=job.trained_examples,
    )


@router.post("", response_model=JobPublic)
async def create_job(body: JobCreate, gateway: GatewayDep) -> JobPublic:
    """Queue a job that fine-tunes ``model`` on ``training_file``, then evaluates and gates."""
    hyper = body.resolved_hyperparameters()
    name, _, ref = body.model.partition("@")

    def create() -> JobInfo:
        base = gateway.registry.resolve(name, ref or None)
        if body.task is not None and body.task != base.task:
            raise InvalidRequest(
                f"model {name!r} is a {base.task} model, not {body.task}", param="task"
            )
        for param in ("training_file", "validation_file"):
            if getattr(body, param):
                gateway.jobs.get_file(getattr(body, param))  # 404 naming the file
        return gateway.jobs.create_job(
            model=name,
            base_version=base.version,
            task=base.task,
            training_file=body.training_file,
            validation_file=body.validation_file,
            hyperparameters=hyper.model_dump(),
            promotion=body.promotion.model_dump(),
            suffix=body.suffix,
        )

    job = await asyncio.to_thread(create)
    gateway.runner.wake.remote()
    return public_job(job)


@router.get("", response_model=JobList)
async def list_jobs(gateway: GatewayDep, after: str | None = None, limit: Limit = 20) -> JobList:
    jobs, has_more = await asyncio.to_thread(gateway.jobs.list_jobs, after, limit)
    return JobList(data=[public_job(job) for job in jobs], has_more=has_more)


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: str, gateway: GatewayDep) -> JobPublic:
    return public_job(await asyncio.to_thread(gateway.jobs.get_job, job_id))


@router.post("/{job_id}/cancel", response_model=JobPublic)
async def cancel_job(job_id: str, gateway: GatewayDep) -> JobPublic:
    """Cancel now if not started; a running job stops at its next step (or is killed)."""
    job = await asyncio.to_thread(gateway.jobs.request_cancel, job_id)
    gateway.runner.wake.remote()
    return public_job(job)


@router.get("/{job_id}/events", response_model=EventList)
async def list_events(
    job_id: str, gateway: GatewayDep, after: str | None = None, limit: Limit = 20
) -> EventList:
    events, has_more = await asyncio.to_thread(gateway.jobs.list_events, job_id, after, limit)
    data = [
        EventPublic(
            id=e.id,
            created_at=_stamp(e.created_at),
            level=e.level,
            message=e.message,
            data=e.data,
            type=e.type,
        )
        for e in events
    ]
    return EventList(data=data, has_more=has_more)


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
async def list_checkpoints(job_id: str, gateway: GatewayDep) -> CheckpointList:
    checkpoints = await asyncio.to_thread(gateway.jobs.list_checkpoints, job_id)
    data = [
        CheckpointPublic(
            id=c.id,
            created_at=_stamp(c.created_at),
            fine_tuned_model_checkpoint=c.uri,
            fine_tuning_job_id=c.job_id,
            metrics=c.metrics,
            step_number=c.step,
        )
        for c in checkpoints
    ]
    return CheckpointList(data=data)
