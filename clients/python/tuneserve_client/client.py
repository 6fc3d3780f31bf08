"""``Client``: the blocking client. ``AsyncClient`` (async_client.py) mirrors it call for
call; examples/client_tour.py shows every call."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import httpx

from tuneserve_client import _calls as calls
from tuneserve_client import models as m
from tuneserve_client._config import connection_settings
from tuneserve_client._follow import PAGE_SIZE, TERMINAL_STATUSES, EventCursor
from tuneserve_client._retry import RetryPolicy, connection_error
from tuneserve_client._sse import DONE, chunk_of
from tuneserve_client.errors import error_for


class Client:
    """The tuneserve API over HTTP, blocking. Thread-safe; close it (or use ``with``).

    ``base_url`` defaults to ``TUNESERVE_URL`` (else http://127.0.0.1:8000) and ``api_key``
    to ``TUNESERVE_API_KEY``. ``timeout`` is seconds per request (an ``httpx.Timeout`` for
    finer control); a 503 and a failed connection are retried ``max_retries`` times.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url, headers = connection_settings(base_url, api_key)
        self.retry = retry or RetryPolicy(max_retries=max_retries)
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.chat = Chat(self)
        self.models = Models(self)
        self.files = Files(self)
        self.fine_tuning = FineTuning(self)
        self.keys = Keys(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- the tasks -----------------------------------------------------------------------
    def classify(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        top_k: int | None = None,
        variant: str | None = None,
    ) -> m.ClassifyResponse:
        """Labels of one text or a batch (one result per input, in order)."""
        return self.send(calls.classify(inputs, model, top_k, variant))

    def ner(
        self, inputs: str | Sequence[str], *, model: str | None = None, variant: str | None = None
    ) -> m.NerResponse:
        """Named entities with character offsets."""
        return self.send(calls.ner(inputs, model, variant))

    def qa(
        self,
        question: str | None = None,
        context: str | None = None,
        *,
        inputs: Sequence[m.QaItem | Mapping[str, str]] | None = None,
        model: str | None = None,
        variant: str | None = None,
    ) -> m.QaResponse:
        """The answer span in ``context``; ``inputs`` for several question/context pairs."""
        return self.send(calls.qa(question, context, inputs, model, variant))

    def translate(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        max_new_tokens: int | None = None,
    ) -> m.TranslateResponse:
        return self.send(calls.translate(inputs, model, max_new_tokens))

    def health(self) -> dict:
        return self.send(calls.health())

    def ready(self) -> dict:
        """The readiness body (``ready`` false while models load: not an error)."""
        return self.send(calls.ready())

    # --- sending -------------------------------------------------------------------------
    def send(self, call: calls.Call[calls.T]) -> calls.T:
        """Send ``call`` (retrying as the policy says) and parse its answer."""
        response = self._response(call, stream=False)
        return call.parse(response.json())

    def _response(self, call: calls.Call, *, stream: bool) -> httpx.Response:
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
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                delay = self.retry.after_error(call, error, attempt)
                if delay is None:
                    raise connection_error(error) from error
            else:
                if response.status_code in call.ok_statuses:
                    return response
                response.read()
                response.close()
                delay = self.retry.after_response(response, attempt)
                if delay is None:
                    raise error_for(response)
            time.sleep(delay)
            attempt += 1


class Stream:
    """A streamed chat completion: iterate for chunks; closes itself at the end."""

    def __init__(self, response: httpx.Response):
        self.response = response

    def __iter__(self) -> Iterator[m.ChatCompletionChunk]:
        try:
            for line in self.response.iter_lines():
                chunk = chunk_of(line, self.response)
                if chunk is DONE:
                    return
                if chunk is not None:
                    yield chunk
        finally:
            self.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.response.close()


class Completions:
    def __init__(self, client: Client):
        self._client = client

    @overload
    def create(
        self, messages: Sequence[m.ChatMessage | Mapping[str, str]], *,
        stream: Literal[True], **params: Any,
    ) -> Stream: ...  # fmt: skip
    @overload
    def create(
        self, messages: Sequence[m.ChatMessage | Mapping[str, str]], *,
        stream: Literal[False] = False, **params: Any,
    ) -> m.ChatCompletion: ...  # fmt: skip
    def create(self, messages, *, stream=False, **params):
        """A chat completion, OpenAI-shaped; ``stream=True`` gives a ``Stream`` of chunks.

        ``params`` are the request's other fields (``model``, ``max_completion_tokens``,
        ``temperature``, ``top_p``, ``seed``, ``stop``, ``stream_options``, ``ignore_eos``).
        """
        call = calls.chat_completion(calls.chat_body(messages, stream=stream or None, **params))
        if not stream:
            return self._client.send(call)
        return Stream(self._client._response(call, stream=True))


class Chat:
    def __init__(self, client: Client):
        self.completions = Completions(client)


class Models:
    """The model registry: list, inspect, promote, roll back, import, merge."""

    def __init__(self, client: Client):
        self._send = client.send

    def list(self) -> m.ModelList:
        return self._send(calls.models_list())

    def get(self, name: str) -> m.ModelPublic:
        return self._send(calls.models_get(name))

    def versions(self, name: str) -> m.VersionList:
        return self._send(calls.models_versions(name))

    def promote(
        self, name: str, version: int, *, expected_from: int | None = None
    ) -> m.AliasMovePublic:
        """Warm ``version`` on every replica, then make it production (admin)."""
        return self._send(calls.models_promote(name, version, expected_from))

    def rollback(self, name: str, version: int | None = None) -> m.AliasMovePublic:
        """Production back to the version its last promotion replaced, or to ``version``."""
        return self._send(calls.models_rollback(name, version))

    def import_(
        self,
        source: str,
        name: str,
        *,
        task: str | None = None,
        alias: str | None = None,
        description: str | None = None,
    ) -> m.ImportedModel:
        """Import a model folder or URL the service can read as a new version (admin).
        (``import`` is a Python keyword, hence the underscore.)"""
        return self._send(calls.models_import(source, name, task, alias, description))

    def merge(self, name: str, version: int) -> m.VersionPublic:
        """A LoRA version merged into its base, registered as a new full version (admin)."""
        return self._send(calls.models_merge(name, version))


class Files:
    """Training files: JSONL or CSV rows, validated row by row when uploaded."""

    def __init__(self, client: Client):
        self._send = client.send

    def create(
        self,
        file: calls.FileInput,
        *,
        purpose: str = "fine-tune",
        task: str | None = None,
        filename: str | None = None,
    ) -> m.FilePublic:
        """Upload a path, bytes or an open binary file."""
        return self._send(calls.files_create(file, purpose, task, filename))

    def list(self) -> m.FileList:
        return self._send(calls.files_list())

    def get(self, file_id: str) -> m.FilePublic:
        return self._send(calls.files_get(file_id))

    def delete(self, file_id: str) -> m.FileDeleted:
        return self._send(calls.files_delete(file_id))


class Jobs:
    """Fine-tuning jobs: train on Ray, evaluate against production, gate, promote."""

    def __init__(self, client: Client):
        self._send = client.send

    def create(self, model: str, training_file: str, **fields: Any) -> m.JobPublic:
        """Queue a job; ``fields`` are the request's others (``validation_file``,
        ``hyperparameters``, ``suffix``, ``seed``, ``method``, ``promotion``, ``labels``…)."""
        return self._send(calls.jobs_create(calls.jobs_body(model, training_file, **fields)))

    def list(self, *, after: str | None = None, limit: int | None = None) -> m.JobList:
        return self._send(calls.jobs_list(after, limit))

    def get(self, job_id: str) -> m.JobPublic:
        return self._send(calls.jobs_get(job_id))

    def cancel(self, job_id: str) -> m.JobPublic:
        return self._send(calls.jobs_cancel(job_id))

    def events(
        self, job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> m.EventList:
        """Events newest first; ``after`` an event id to page back from."""
        return self._send(calls.jobs_events(job_id, after, limit))

    def checkpoints(self, job_id: str) -> m.CheckpointList:
        return self._send(calls.jobs_checkpoints(job_id))

    def follow(self, job_id: str, *, poll_interval_s: float = 1.0) -> Iterator[m.EventPublic]:
        """Every event of the job, oldest first, as it happens, until the job has ended
        (then ``get`` gives its result)."""
        cursor = EventCursor()
        while True:
            status = self.get(job_id).status  # before the events: none after it is missed
            after: str | None = None
            while True:
                after = cursor.take(self.events(job_id, after=after, limit=PAGE_SIZE))
                if after is None:
                    break
            yield from cursor.drain()
            if status in TERMINAL_STATUSES:
                return
            time.sleep(poll_interval_s)


class FineTuning:
    def __init__(self, client: Client):
        self.jobs = Jobs(client)


class Keys:
    """API keys of tenants (admin)."""

    def __init__(self, client: Client):
        self._send = client.send

    def create(
        self, tenant: str, scopes: Sequence[str], *, name: str | None = None
    ) -> m.KeyCreated:
        """A new key: its secret is in this answer only."""
        return self._send(calls.keys_create(tenant, scopes, name))

    def list(self) -> m.KeyList:
        return self._send(calls.keys_list())

    def revoke(self, key_id: str) -> m.KeyPublic:
        return self._send(calls.keys_revoke(key_id))
