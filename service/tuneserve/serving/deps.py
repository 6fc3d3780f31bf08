"""FastAPI dependencies: what a route may use of the gateway replica it runs in."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from ray import serve

from tuneserve.control.fine_tuning import FineTuningService
from tuneserve.control.models import ModelService
from tuneserve.errors import Unauthorized


def _gateway() -> Any:
    """The ``Gateway`` instance of this replica (not imported: the gateway imports routes)."""
    return serve.get_replica_context().servable_object


async def current_gateway() -> Any:
    """As a dependency: ``async``, so FastAPI calls it on the event loop, not in a thread."""
    return _gateway()


async def model_service() -> ModelService:
    return (await _gateway().services()).models


async def fine_tuning_service() -> FineTuningService:
    return (await _gateway().services()).fine_tuning


def require_admin(request: Request) -> None:
    """Admin routes (promote, rollback) need ``Authorization: Bearer <admin_token>`` when
    the ``admin_token`` setting is set."""
    token = _gateway().settings.admin_token
    if token is None:
        return
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
        raise Unauthorized("this route needs the admin token: Authorization: Bearer <token>")


GatewayDep = Annotated[Any, Depends(current_gateway)]
ModelsDep = Annotated[ModelService, Depends(model_service)]
FineTuningDep = Annotated[FineTuningService, Depends(fine_tuning_service)]
AdminDep = Depends(require_admin)
