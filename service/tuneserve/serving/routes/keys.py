"""``/v1/admin/keys``: create, list and revoke API keys (admin scope)."""

from __future__ import annotations

import asyncio
import dataclasses

from fastapi import APIRouter

from tuneserve.api.keys import KeyCreate, KeyCreated, KeyList, KeyPublic
from tuneserve.api.tasks import ErrorBody
from tuneserve.serving.deps import AdminCaller, AuthenticatorDep

# 413: a body over limits.max_json_body_bytes; 503: the registry database is unreachable or busy
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 503)}
router = APIRouter(prefix="/v1/admin/keys", tags=["admin"], responses=ERRORS)


@router.post("", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, auth: AuthenticatorDep, _: AdminCaller) -> KeyCreated:
    """A new key for ``tenant``; the answer holds the key itself, which is not kept."""
    scopes = list(body.scopes)
    info, key = await asyncio.to_thread(auth.keys.create, body.tenant, scopes, body.name)
    auth.forget()
    return KeyCreated(**dataclasses.asdict(info), key=key)


@router.get("", response_model=KeyList)
async def list_keys(auth: AuthenticatorDep, _: AdminCaller, tenant: str | None = None) -> KeyList:
    """Every key (of one tenant), revoked ones included; never a secret."""
    found = await asyncio.to_thread(auth.keys.list, tenant)
    return KeyList(data=[KeyPublic.model_validate(info) for info in found])


@router.delete("/{key_id}", response_model=KeyPublic)
async def revoke_key(key_id: str, auth: AuthenticatorDep, _: AdminCaller) -> KeyPublic:
    """Revoke a key: this gateway refuses it at once, the others within
    ``auth.key_cache_ttl_s``."""
    revoked = await asyncio.to_thread(auth.keys.revoke, key_id)
    auth.forget()
    return KeyPublic.model_validate(revoked)
