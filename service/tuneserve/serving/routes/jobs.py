"""``/v1/fine_tuning/jobs``: create, list, retrieve, cancel, events, checkpoints."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from tuneserve.api.fine_tuning import CheckpointList, EventList, JobCreate, JobList, JobPublic
from tuneserve.api.tasks import ErrorBody
from tuneserve.serving.deps import FineTuneCaller, FineTuningDep

# 413: a body over limits.max_json_body_bytes; 503: the registry database is unreachable or busy
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)}
router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"], responses=ERRORS)
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", response_model=JobPublic)
async def create_job(
    body: JobCreate, fine_tuning: FineTuningDep, caller: FineTuneCaller
) -> JobPublic:
    """Queue a job that fine-tunes ``model`` on ``training_file``, then evaluates and gates.

    ``promotion.auto: true`` needs an admin key (it moves production).
    """
    return await asyncio.to_thread(fine_tuning.create_job, caller, body)


@router.get("", response_model=JobList)
async def list_jobs(
    fine_tuning: FineTuningDep, caller: FineTuneCaller, after: str | None = None, limit: Limit = 20
) -> JobList:
    """The caller's tenant's jobs (every tenant's for an admin key), newest first."""
    return await asyncio.to_thread(fine_tuning.list_jobs, caller, after, limit)


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: str, fine_tuning: FineTuningDep, caller: FineTuneCaller) -> JobPublic:
    return await asyncio.to_thread(fine_tuning.get_job, caller, job_id)


@router.post("/{job_id}/cancel", response_model=JobPublic)
async def cancel_job(job_id: str, fine_tuning: FineTuningDep, caller: FineTuneCaller) -> JobPublic:
    """Cancel now if not started; a running job stops at its next step (or is killed)."""
    return await asyncio.to_thread(fine_tuning.cancel_job, caller, job_id)


@router.get("/{job_id}/events", response_model=EventList)
async def list_events(
    job_id: str,
    fine_tuning: FineTuningDep,
    caller: FineTuneCaller,
    after: str | None = None,
    limit: Limit = 20,
) -> EventList:
    return await asyncio.to_thread(fine_tuning.list_events, caller, job_id, after, limit)


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
async def list_checkpoints(
    job_id: str, fine_tuning: FineTuningDep, caller: FineTuneCaller
) -> CheckpointList:
    return await asyncio.to_thread(fine_tuning.list_checkpoints, caller, job_id)
