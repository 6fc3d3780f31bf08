"""FastAPI dependencies: what a route may use of the replica it runs in.

That replica is the gateway (control-plane routes) or a task server (its task's route):
each is the ingress of its own Serve application, and both answer ``authenticate``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve

from tuneserve.control.access import ADMIN, FINE_TUNE, INFERENCE, Authenticator, Principal
from tuneserve.control.fine_tuning import FineTuningService
from tuneserve.control.models import ModelService


def _replica() -> Any:
    """The ``Gateway`` or ``TaskServer`` of this replica (not imported: they import routes)."""
    return serve.get_replica_context().servable_object


async def current_replica() -> Any:
    """As a dependency: ``async``, so FastAPI calls it on the event loop, not in a thread."""
    return _replica()


async def model_service() -> ModelService:
    return (await _replica().services()).models


async def fine_tuning_service() -> FineTuningService:
    return (await _replica().services()).fine_tuning


# declares the scheme in the OpenAPI document; the header itself is read as raw bytes below
_bearer = HTTPBearer(auto_error=False, description="An API key (`tuneserve keys create`).")


async def caller(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Who sends the request, from ``Authorization: Bearer <key>`` (401 without a valid key).

    The header is read as raw bytes: any bytes at all are a 401, never a decoding error.
    """
    header = next((v for k, v in request.scope["headers"] if k == b"authorization"), None)
    return await _replica().authenticate(header)


# One function per scope, at module level: Serve pickles the app to its replicas, and only
# module-level functions keep the module's names their annotations refer to.
async def _inference(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    return principal.require(INFERENCE)


async def _fine_tune(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    return principal.require(FINE_TUNE)


async def _admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    return principal.require(ADMIN)


async def authenticator() -> Authenticator:
    return (await _replica().services()).authenticator


GatewayDep = Annotated[Any, Depends(current_replica)]  # in a control-plane route
TaskServerDep = Annotated[Any, Depends(current_replica)]  # in a task's route
ModelsDep = Annotated[ModelService, Depends(model_service)]
FineTuningDep = Annotated[FineTuningService, Depends(fine_tuning_service)]
AuthenticatorDep = Annotated[Authenticator, Depends(authenticator)]
# the caller, checked to hold a scope (admin holds every scope)
Caller = Annotated[Principal, Depends(caller)]
InferenceCaller = Annotated[Principal, Depends(_inference)]
FineTuneCaller = Annotated[Principal, Depends(_fine_tune)]
AdminCaller = Annotated[Principal, Depends(_admin)]
AdminDep = Depends(_admin)  # for routes that need no principal, only the check
