"""``AsyncClient``: ``Client``'s calls, awaited. The routes and the retry rules are the same
objects (``_calls``, ``_retry``); only the sending differs. A stream is awaited, then
iterated: ``async for chunk in await client.chat.completions.create(…, stream=True)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, overload

import httpx

from tuneserve_client import _calls as calls
from tuneserve_client import models as m
from tuneserve_client._config import connection_settings
from tuneserve_client._follow import PAGE_SIZE, TERMINAL_STATUSES, EventCursor
from tuneserve_client._retry import RetryPolicy, connection_error
from tuneserve_client._sse import DONE, chunk_of
from tuneserve_client.errors import error_for


class AsyncClient:
    """The tuneserve API over HTTP for asyncio; the same arguments as ``Client``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url, headers = connection_settings(base_url, api_key)
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.chat = AsyncChat(self)
        self.models = AsyncModels(self)
        self.files = AsyncFiles(self)
        self.fine_tuning = AsyncFineTuning(self)
        self.keys = AsyncKeys(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # --- the tasks -----------------------------------------------------------------------
    async def classify(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        top_k: int | None = None,
        variant: str | None = None,
    ) -> m.ClassifyResponse:
        return await self.send(calls.classify(inputs, model, top_k, variant))

    async def ner(
        self, inputs: str | Sequence[str], *, model: str | None = None, variant: str | None = None
    ) -> m.NerResponse:
        return await self.send(calls.ner(inputs, model, variant))

    async def qa(
        self,
        question: str | None = None,
        context: str | None = None,
        *,
        inputs: Sequence[m.QaItem | Mapping[str, str]] | None = None,
        model: str | None = None,
        variant: str | None = None,
    ) -> m.QaResponse:
        return await self.send(calls.qa(question, context, inputs, model, variant))

    async def translate(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        max_new_tokens: int | None = None,
    ) -> m.TranslateResponse:
        return await self.send(calls.translate(inputs, model, max_new_tokens))

    async def health(self) -> dict:
        return await self.send(calls.health())

    async def ready(self) -> dict:
        return await self.send(calls.ready())

    # --- sending -------------------------------------------------------------------------
    async def send(self, call: calls.Call[calls.T]) -> calls.T:
        response = await self._response(call, stream=False)
        return call.parse(response.json())

    async def _response(self, call: calls.Call, *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request(
                call.method,
                call.path,
                json=call.json,
                params=call.params,
                files=call.files,
                data=call.data,
            )
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                delay = self.retry.after_error(call, error, attempt)
                if delay is None:
                    raise connection_error(error) from error
            else:
                if response.status_code in call.ok_statuses:
                    return response
                await response.aread()
                await response.aclose()
                delay = self.retry.after_response(response, attempt)
                if delay is None:
                    raise error_for(response)
            await asyncio.sleep(delay)
            attempt += 1


class AsyncStream:
    """A streamed chat completion: ``async for`` its chunks; closes itself at the end."""

    def __init__(self, response: httpx.Response):
        self.response = response

    async def __aiter__(self) -> AsyncIterator[m.ChatCompletionChunk]:
        try:
            async for line in self.response.aiter_lines():
                chunk = chunk_of(line, self.response)
                if chunk is DONE:
                    return
                if chunk is not None:
                    yield chunk
        finally:
            await self.close()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.response.aclose()


class AsyncCompletions:
    def __init__(self, client: AsyncClient):
        self._client = client

    @overload
    async def create(
        self, messages: Sequence[m.ChatMessage | Mapping[str, str]], *,
        stream: Literal[True], **params: Any,
    ) -> AsyncStream: ...  # fmt: skip
    @overload
    async def create(
        self, messages: Sequence[m.ChatMessage | Mapping[str, str]], *,
        stream: Literal[False] = False, **params: Any,
    ) -> m.ChatCompletion: ...  # fmt: skip
    async def create(self, messages, *, stream=False, **params):
        """As ``Client.chat.completions.create``; ``stream=True`` gives an ``AsyncStream``."""
        call = calls.chat_completion(calls.chat_body(messages, stream=stream or None, **params))
        if not stream:
            return await self._client.send(call)
        return AsyncStream(await self._client._response(call, stream=True))


class AsyncChat:
    def __init__(self, client: AsyncClient):
        self.completions = AsyncCompletions(client)


class AsyncModels:
    def __init__(self, client: AsyncClient):
        self._send = client.send

    async def list(self) -> m.ModelList:
        return await self._send(calls.models_list())

    async def get(self, name: str) -> m.ModelPublic:
        return await self._send(calls.models_get(name))

    async def versions(self, name: str) -> m.VersionList:
        return await self._send(calls.models_versions(name))

    async def promote(
        self, name: str, version: int, *, expected_from: int | None = None
    ) -> m.AliasMovePublic:
        return await self._send(calls.models_promote(name, version, expected_from))

    async def rollback(self, name: str, version: int | None = None) -> m.AliasMovePublic:
        return await self._send(calls.models_rollback(name, version))

    async def import_(
        self,
        source: str,
        name: str,
        *,
        task: str | None = None,
        alias: str | None = None,
        description: str | None = None,
    ) -> m.ImportedModel:
        return await self._send(calls.models_import(source, name, task, alias, description))

    async def merge(self, name: str, version: int) -> m.VersionPublic:
        return await self._send(calls.models_merge(name, version))


class AsyncFiles:
    def __init__(self, client: AsyncClient):
        self._send = client.send

    async def create(
        self,
        file: calls.FileInput,
        *,
        purpose: str = "fine-tune",
        task: str | None = None,
        filename: str | None = None,
    ) -> m.FilePublic:
        return await self._send(calls.files_create(file, purpose, task, filename))

    async def list(self) -> m.FileList:
        return await self._send(calls.files_list())

    async def get(self, file_id: str) -> m.FilePublic:
        return await self._send(calls.files_get(file_id))

    async def delete(self, file_id: str) -> m.FileDeleted:
        return await self._send(calls.files_delete(file_id))


class AsyncJobs:
    def __init__(self, client: AsyncClient):
        self._send = client.send

    async def create(self, model: str, training_file: str, **fields: Any) -> m.JobPublic:
        body = calls.jobs_body(model, training_file, **fields)
        return await self._send(calls.jobs_create(body))

    async def list(self, *, after: str | None = None, limit: int | None = None) -> m.JobList:
        return await self._send(calls.jobs_list(after, limit))

    async def get(self, job_id: str) -> m.JobPublic:
        return await self._send(calls.jobs_get(job_id))

    async def cancel(self, job_id: str) -> m.JobPublic:
        return await self._send(calls.jobs_cancel(job_id))

    async def events(
        self, job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> m.EventList:
        return await self._send(calls.jobs_events(job_id, after, limit))

    async def checkpoints(self, job_id: str) -> m.CheckpointList:
        return await self._send(calls.jobs_checkpoints(job_id))

    async def follow(
        self, job_id: str, *, poll_interval_s: float = 1.0
    ) -> AsyncIterator[m.EventPublic]:
        """As ``Client.fine_tuning.jobs.follow``: ``async for`` the job's events."""
        cursor = EventCursor()
        while True:
            status = (await self.get(job_id)).status
            after: str | None = None
            while True:
                after = cursor.take(await self.events(job_id, after=after, limit=PAGE_SIZE))
                if after is None:
                    break
            for event in cursor.drain():
                yield event
            if status in TERMINAL_STATUSES:
                return
            await asyncio.sleep(poll_interval_s)


class AsyncFineTuning:
    def __init__(self, client: AsyncClient):
        self.jobs = AsyncJobs(client)


class AsyncKeys:
    def __init__(self, client: AsyncClient):
        self._send = client.send

    async def create(
        self, tenant: str, scopes: Sequence[str], *, name: str | None = None
    ) -> m.KeyCreated:
        return await self._send(calls.keys_create(tenant, scopes, name))

    async def list(self) -> m.KeyList:
        return await self._send(calls.keys_list())

    async def revoke(self, key_id: str) -> m.KeyPublic:
        return await self._send(calls.keys_revoke(key_id))
