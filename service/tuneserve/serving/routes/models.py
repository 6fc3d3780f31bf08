"""Health, readiness and the model registry: ``/healthz``, ``/readyz``, ``/v1/models…``."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from tuneserve.api.fine_tuning import AliasMovePublic, PromoteRequest, RollbackRequest
from tuneserve.api.imports import ImportedModel, ImportModelRequest
from tuneserve.api.tasks import ErrorBody, ModelList, ModelPublic, VersionList, VersionPublic
from tuneserve.serving.deps import AdminDep, Caller, GatewayDep, ModelsDep
from tuneserve.serving.imports import run_import, run_merge

router = APIRouter(tags=["models"])
# 503: the registry database is unreachable or busy (retry)
ERRORS = {code: {"model": ErrorBody} for code in (401, 403, 404, 422, 503)}
# a move takes a JSON body (400 unreadable, 413 too large); 409: the compare-and-set lost
MOVE_ERRORS = ERRORS | {code: {"model": ErrorBody} for code in (400, 409, 413)}


@router.get("/healthz")
async def healthz() -> dict:
    """Liveness: the gateway answers."""
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: {"description": "Not ready yet: the same body, `ready` false."}}
)
async def readyz(gateway: GatewayDep) -> JSONResponse:
    """Readiness: every task server has its production versions loaded (503 until then).

    ``waiting_for`` names, per task, what is missing; ``job_runner`` is the training side's
    state: its settings, running jobs and ``heartbeat_age_s`` (seconds since its loop last
    went round). It does not decide readiness: serving does not wait for training.
    """
    waiting = await gateway.readiness()
    ready = not any(waiting.values())
    body = {
        "ready": ready,
        "tasks": {task: not missing for task, missing in waiting.items()},
        "waiting_for": {task: missing for task, missing in waiting.items() if missing},
        "job_runner": await gateway.runner_state(),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/v1/models", response_model=ModelList, responses=ERRORS)
async def list_models(models: ModelsDep, _: Caller) -> ModelList:
    """Every model with its task and aliases (OpenAI-shaped list)."""
    return await asyncio.to_thread(models.list_models)


@router.post(
    "/v1/models",
    response_model=ImportedModel,
    dependencies=[AdminDep],
    responses=MOVE_ERRORS | {404: {"model": ErrorBody}},
)
async def import_model(body: ImportModelRequest, gateway: GatewayDep) -> ImportedModel:
    """Import a model you have (a safetensors folder, an fsspec URL, a pinned hub id) as a
    new version: fetched, checked, loaded once and answered with, then registered. Anything
    refused (pickled weights, no label map, the wrong task, too large…) is a 4xx naming
    the reason, and nothing is left behind."""
    return await run_import(gateway.settings, body)


@router.get("/v1/models/{name}", response_model=ModelPublic, responses=ERRORS)
async def get_model(name: str, models: ModelsDep, _: Caller) -> ModelPublic:
    """One model with its task and aliases."""
    return await asyncio.to_thread(models.get_model, name)


@router.get("/v1/models/{name}/versions", response_model=VersionList, responses=ERRORS)
async def list_versions(name: str, models: ModelsDep, _: Caller) -> VersionList:
    """Every version of a model: metrics, lineage, and the aliases pointing at it."""
    return await asyncio.to_thread(models.list_versions, name)


@router.post(
    "/v1/models/{name}/versions/{version}/merge",
    response_model=VersionPublic,
    dependencies=[AdminDep],
    responses=ERRORS | {400: {"model": ErrorBody}},
)
async def merge_version(
    name: str, version: Annotated[int, Path(ge=1, le=2**31 - 1)], gateway: GatewayDep
) -> VersionPublic:
    """A LoRA version merged into its base's weights, registered as a new full version (no
    alias moves; promote it as any version). 400 for a version with weights of its own."""
    return await run_merge(gateway.settings, name, version)


@router.post(
    "/v1/models/{name}/promote",
    response_model=AliasMovePublic,
    dependencies=[AdminDep],
    responses=MOVE_ERRORS,
)
async def promote_version(name: str, body: PromoteRequest, models: ModelsDep) -> AliasMovePublic:
    """Load and warm ``version`` on every replica, then make it production (compare-and-set)."""
    return await asyncio.to_thread(models.promote, name, body)


@router.post(
    "/v1/models/{name}/rollback",
    response_model=AliasMovePublic,
    dependencies=[AdminDep],
    responses=MOVE_ERRORS,
)
async def rollback_version(
    name: str, models: ModelsDep, body: RollbackRequest | None = None
) -> AliasMovePublic:
    """Production back to the version its last promotion replaced (still resident: instant).

    A second rollback in a row is refused (409) unless the body names the version:
    ``{"version": N}``. No body is the same as ``{}``.
    """
    return await asyncio.to_thread(models.rollback, name, body)
