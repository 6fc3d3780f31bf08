"""What an inference route does around the model, in the task server's own replica.

Each task server is the ingress of its own Serve application (``app.py``), so a request goes
proxy → the replica that runs the model: one Ray hop. This is that replica's front door: the
caller (from the in-memory keys), the request's limits, the version the request resolves to
(from a cached view of the model's aliases), then the model itself, locally. The body is
parsed and validated once, by FastAPI, on the way in.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, SecretStr

from tuneserve.control.access import OPEN, Authenticator, Principal
from tuneserve.control.resolver import ModelResolver, Target
from tuneserve.errors import PayloadTooLarge
from tuneserve.registry import Registry
from tuneserve.registry.keys import KeyStore
from tuneserve.serving.access_log import note_served, note_texts
from tuneserve.settings import AuthSettings, TaskServerSettings
from tuneserve.tasks.spec import Limits, TaskRequest, TaskSpec

Predict = Callable[[str, int, list, str | None], Awaitable[dict[str, Any]]]
Chat = Callable[[str, int, BaseModel], AsyncGenerator[dict, None]]


def make_authenticator(
    registry: Registry, auth: AuthSettings, admin_token: SecretStr | None, outage_grace_s: float
) -> Authenticator:
    """The keys of ``registry`` (and the bootstrap admin token) as one replica checks them."""
    token = admin_token.get_secret_value().encode() if admin_token else None
    return Authenticator(
        KeyStore(registry.engine), token, auth.key_cache_ttl_s, outage_grace_s=outage_grace_s
    )


async def authenticate(authenticator: Authenticator, header: bytes | None) -> Principal:
    """The caller of a request, from its raw ``Authorization`` header (401 if unknown).

    Answered on the event loop from the in-memory keys; a database read (keys older than
    their time to live, or an id not seen yet) runs in a thread.
    """
    principal = authenticator.authenticate(header, may_read=False)
    return principal or await asyncio.to_thread(authenticator.authenticate, header)


class TaskFront:
    """One task server's HTTP side: authenticate, check limits, resolve, run, shape."""

    def __init__(
        self,
        spec: TaskSpec,
        settings: TaskServerSettings,
        connected: Awaitable[tuple[Registry, Any]],
        predict: Predict,
        chat: Chat,
    ):
        self.spec = spec
        self.settings = settings
        self.limits = Limits(max_new_tokens=settings.limits.max_new_tokens)
        self._connected = connected
        self._predict, self._chat = predict, chat
        self._registry: Registry | None = None  # once connected (``_ready``)

    async def _ready(self) -> Registry:
        if self._registry is None:
            self._registry, _ = await self._connected
        return self._registry

    # made on the event loop, after ``_ready``: the replica's requests share each one
    @functools.cached_property
    def _authenticator(self) -> Authenticator:
        grace = self.settings.serving.registry_outage_grace_s
        return make_authenticator(
            self._registry, self.settings.auth, self.settings.admin_token, grace
        )

    @functools.cached_property
    def resolver(self) -> ModelResolver:
        defaults = {self.spec.name: self.spec.default_model} | self.settings.tasks.default_models
        return ModelResolver(
            self._registry,
            defaults,
            self.settings.serving.alias_cache_ttl_s,
            outage_grace_s=self.settings.serving.registry_outage_grace_s,
        )

    async def authenticate(self, header: bytes | None) -> Principal:
        if self.settings.auth.mode == "open":
            return OPEN
        await self._ready()
        return await authenticate(self._authenticator, header)

    async def run_task(self, request: TaskRequest) -> dict[str, Any]:
        """A generated task route's whole work: items, limits, version, batch, response."""
        items = self.spec.items(request, self.limits)
        self.check_texts([self.spec.text_of(item) for item in items])
        target = await self.resolve(request.model)
        served = await self._predict(target.name, target.version, items, request.variant)
        return {"model": target.name, "version": target.version} | served

    def chat_stream(self, target: Target, item: BaseModel) -> AsyncGenerator[dict, None]:
        """The events of one chat completion, generated in this replica."""
        return self._chat(target.name, target.version, item)

    async def resolve(self, model: str | None) -> Target:
        """The version ``model`` names for this task; cached, a registry read in a thread."""
        await self._ready()
        target = self.resolver.resolve_cached(model, self.spec.name)
        if target is None:  # not in the cached view: read the registry in a thread
            target = await asyncio.to_thread(self.resolver.resolve, model, self.spec.name)
        note_served(target.task, target.name, target.version)
        return target

    def check_texts(self, texts: list[str], param: str = "inputs") -> None:
        """Enforce the request limits: items per request and characters per item."""
        limits = self.settings.limits
        if len(texts) > limits.max_batch_items:
            raise PayloadTooLarge(
                f"{len(texts)} inputs in one request; at most {limits.max_batch_items}",
                param=param,
            )
        for index, text in enumerate(texts):
            if len(text) > limits.max_input_chars:
                raise PayloadTooLarge(
                    f"input is {len(text)} characters; at most {limits.max_input_chars}",
                    param=f"{param}[{index}]",
                )
        if self.settings.telemetry.log_request_text:  # only texts within limits are logged
            note_texts(texts)

    def forget(self, name: str) -> None:
        """Drop the cached view of ``name``: production moved (the next request reads it)."""
        if self._registry is not None:
            self.resolver.forget(name)
