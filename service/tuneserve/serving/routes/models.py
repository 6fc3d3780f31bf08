"""Health, readiness and the model registry: ``/healthz``, ``/readyz``, ``/v1/models…``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tuneserve.api.fine_tuning import AliasMovePublic, PromoteRequest
from tuneserve.api.tasks import ErrorBody, ModelList, ModelPublic, VersionList, VersionPublic
from tuneserve.registry import ModelInfo, Registry
from tuneserve.serving.gateway import AdminDep, GatewayDep
from tuneserve.serving.promotion import Swap, promote, rollback

router = APIRouter(tags=["models"], responses={404: {"model": ErrorBody}})


@router.get("/healthz")
async def healthz() -> dict:
    """Liveness: the gateway answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(gateway: GatewayDep) -> JSONResponse:
    """Readiness: every task server has its production versions loaded (503 until then)."""
    tasks = await gateway.readiness()
    ready = all(tasks.values())
    return JSONResponse({"ready": ready, "tasks": tasks}, status_code=200 if ready else 503)


def _public_model(registry: Registry, model: ModelInfo) -> ModelPublic:
    return ModelPublic(
        id=model.name,
        task=model.task,
        description=model.description,
        aliases=registry.aliases(model.name),
        created=int(model.created_at.timestamp()),
    )


@router.get("/v1/models", response_model=ModelList)
async def list_models(gateway: GatewayDep) -> ModelList:
    """Every model with its task and aliases (OpenAI-shaped list)."""
    registry = gateway.registry

    def read() -> ModelList:
        return ModelList(data=[_public_model(registry, m) for m in registry.list_models()])

    return await asyncio.to_thread(read)


@router.get("/v1/models/{name}", response_model=ModelPublic)
async def get_model(name: str, gateway: GatewayDep) -> ModelPublic:
    """One model with its task and aliases."""
    registry = gateway.registry
    return await asyncio.to_thread(lambda: _public_model(registry, registry.get_model(name)))


@router.get("/v1/models/{name}/versions", response_model=VersionList)
async def list_versions(name: str, gateway: GatewayDep) -> VersionList:
    """Every version of a model: metrics, lineage, and the aliases pointing at it."""
    registry = gateway.registry

    def read() -> VersionList:
        aliases = registry.aliases(name)
        data = [
            VersionPublic(
                version=v.version,
                task=v.task,
                created_at=v.created_at.isoformat(),
                sha256=v.sha256,
                base_version=v.base_version,
                metrics=v.metrics,
                lineage=v.lineage,
                aliases=sorted(a for a, n in aliases.items() if n == v.version),
            )
            for v in registry.list_versions(name)
        ]
        return VersionList(model=name, data=data)

    return await asyncio.to_thread(read)


def _swap_public(swap: Swap) -> AliasMovePublic:
    return AliasMovePublic(
        model=swap.model,
        alias="production",
        from_version=swap.from_version,
        to_version=swap.to_version,
        seconds=swap.seconds,
    )


@router.post(
    "/v1/models/{name}/promote",
    response_model=AliasMovePublic,
    dependencies=[AdminDep],
    responses={409: {"model": ErrorBody}},
)
async def promote_version(name: str, body: PromoteRequest, gateway: GatewayDep):
    """Load and warm ``version`` on every replica, then make it production (compare-and-set)."""
    model = await asyncio.to_thread(gateway.registry.get_model, name)
    swap = await asyncio.to_thread(
        promote,
        gateway.registry,
        gateway.servers[model.task],
        name,
        body.version,
        body.expected_from,
        recorder=gateway.recorder,
    )
    gateway.resolver.forget(name)
    return _swap_public(swap)


@router.post(
    "/v1/models/{name}/rollback",
    response_model=AliasMovePublic,
    dependencies=[AdminDep],
    responses={409: {"model": ErrorBody}},
)
async def rollback_version(name: str, gateway: GatewayDep):
    """Production back to the version before its last move (still resident: instant)."""
    model = await asyncio.to_thread(gateway.registry.get_model, name)
    swap = await asyncio.to_thread(
        rollback, gateway.registry, gateway.servers[model.task], name, gateway.recorder
    )
    gateway.resolver.forget(name)
    return _swap_public(swap)
