"""API keys as the admin routes show them: the secret appears once, in the create answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneserve.api.types import UnixTime

Scope = Literal["inference", "fine_tune", "admin"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Whose files and jobs the key sees and makes.",
    )
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    name: str = Field(default="", max_length=200, description="A note: who or what uses it.")


class KeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    object: Literal["api_key"] = "api_key"
    tenant: str
    name: str
    scopes: list[Scope]
    created_at: UnixTime
    revoked_at: UnixTime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself, shown this once: it is stored hashed.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyPublic]
