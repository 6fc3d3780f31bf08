"""tuneserve-client (clients/python): its models are the service's schema, its retries and
errors behave as documented, and every call works against the live service."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools

import pytest
from client_stub import DROP, scripted
from conftest import ROOT
from tuneserve_client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    ServiceUnavailableError,
)
from tuneserve_client.models import ClassifyResponse, ErrorBody

CODEGEN = ROOT / "clients" / "python" / "codegen.py"
CLASSIFIED = {
    "model": "sentiment",
    "version": 1,
    "results": [{"label": "positive", "score": 0.9, "top": [], "truncated": False}],
}
BUSY = {"error": {"type": "service_unavailable", "message": "at capacity", "param": None}}
FAST = RetryPolicy(max_retries=3, backoff_s=0.01)


def _codegen():
    spec = importlib.util.spec_from_file_location("codegen", CODEGEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_clients_models_are_generated_from_the_services_schema_as_it_is():
    """Change a schema in the service and this fails until `make client-models` is run."""
    codegen = _codegen()
    assert codegen.generate(codegen.service_openapi()) == codegen.MODELS.read_text(), (
        "clients/python/tuneserve_client/models.py is out of date: run `make client-models`"
    )


def test_a_schema_change_is_caught():
    codegen = _codegen()
    document = codegen.service_openapi()
    document["components"]["schemas"]["ClassificationOutput"]["properties"]["extra"] = {
        "type": "string"
    }
    assert codegen.generate(document) != codegen.MODELS.read_text()


def test_a_503_is_retried_after_its_retry_after():
    answers = [(503, {"Retry-After": "1"}, BUSY), (503, {"Retry-After": "1"}, BUSY)]
    with scripted([*answers, (200, {}, CLASSIFIED)]) as server, Client(server.url) as client:
        answer = client.classify("Fine.")
    assert isinstance(answer, ClassifyResponse) and answer.results[0].label == "positive"
    times = [seen[0] for seen in server.seen]
    assert len(times) == 3
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(times))


def test_a_503_past_the_retries_is_a_typed_error_with_the_services_fields():
    busy = [(503, {"Retry-After": "0"}, BUSY)] * 4
    with (
        scripted(busy) as server,
        Client(server.url, retry=FAST) as client,
        pytest.raises(ServiceUnavailableError) as e,
    ):
        client.models.list()
    assert len(server.seen) == 4  # the first try and three retries
    assert (e.value.status_code, e.value.type, e.value.message) == (
        503,
        "service_unavailable",
        "at capacity",
    )


def test_a_dropped_connection_is_retried_only_for_calls_safe_to_repeat():
    with scripted([DROP, (200, {}, CLASSIFIED)]) as server, Client(server.url, retry=FAST) as c:
        assert c.classify("Fine.").version == 1  # inference: repeating it changes nothing
    assert len(server.seen) == 2
    with (
        scripted([DROP, (200, {}, {})]) as server,
        Client(server.url, retry=FAST) as c,
        pytest.raises(APIConnectionError),
    ):
        c.fine_tuning.jobs.create("sentiment", "file-1")  # it might have queued a job
    assert len(server.seen) == 1


def test_a_service_that_is_not_there_is_a_connection_error_after_retries():
    with scripted([]) as server:
        url = server.url  # a port that was just free: nothing listens once it is closed
    with Client(url, retry=FAST) as client, pytest.raises(APIConnectionError):
        client.health()


def test_the_async_client_retries_too():
    async def run():
        answers = [(503, {"Retry-After": "0"}, BUSY), (200, {}, CLASSIFIED)]
        with scripted(answers) as server:
            async with AsyncClient(server.url, retry=FAST) as client:
                return await client.classify("Fine."), len(server.seen)

    answer, requests = asyncio.run(run())
    assert answer.results[0].label == "positive" and requests == 2


# --- against the live service ------------------------------------------------------------
@pytest.fixture(scope="module")
def client(ready_service, admin_key):
    with Client(ready_service, admin_key, timeout=120) as client:
        yield client


def test_every_task_answers_typed(client):
    assert client.classify(["A wonderful film.", "Dull."], top_k=2).results[1].top[1].label
    entities = client.ner("Anna flew to Paris.").results[0].entities
    assert all(e.end > e.start for e in entities)
    single = client.qa("Who did it?", "Anna did it.").results[0]
    batched = client.qa(inputs=[{"question": "Who did it?", "context": "Anna did it."}])
    assert batched.results[0] == single and single.answer
    assert client.translate(["The dog sees the ball."], max_new_tokens=8).model == (
        "translate-en-de"
    )
    assert client.health() == {"status": "ok"} and client.ready()["ready"] is True


def test_chat_whole_and_streamed_agree(client):
    messages = [{"role": "user", "content": "Hello"}]
    params = {"max_completion_tokens": 8, "temperature": 0, "seed": 1}
    whole = client.chat.completions.create(messages, **params)
    with client.chat.completions.create(
        messages, stream=True, stream_options={"include_usage": True}, **params
    ) as stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_registry_files_and_keys(client, service_settings):
    assert {"sentiment", "chat"} <= {m.id for m in client.models.list().data}
    assert client.models.get("sentiment").aliases["production"] == 1
    assert [v.version for v in client.models.versions("sentiment").data][:2] == [1, 2]
    uploaded = client.files.create(
        b'{"text": "Great.", "label": "positive"}\n', filename="one.jsonl"
    )
    assert uploaded.rows == 1 and client.files.get(uploaded.id).filename == "one.jsonl"
    assert uploaded.id in {f.id for f in client.files.list().data}
    assert client.files.delete(uploaded.id).deleted is True
    created = client.keys.create("client-test", ["inference"], name="client test")
    assert created.key and created.id in {k.id for k in client.keys.list().data}
    with Client(client.base_url, created.key) as inference_only:
        assert inference_only.classify("Fine.").version == 1
        with pytest.raises(PermissionDeniedError) as denied:
            inference_only.models.promote("sentiment", 1)
    assert denied.value.type == "permission_error"
    assert client.keys.revoke(created.id).revoked_at is not None


def test_errors_are_typed_and_carry_the_services_fields(client):
    with pytest.raises(NotFoundError) as missing:
        client.models.get("no-such-model")
    assert (missing.value.type, missing.value.param) == ("not_found_error", "model")
    with pytest.raises(BadRequestError) as bad:
        client.classify("Fine.", top_k=0)
    assert bad.value.param == "top_k" and bad.value.status_code == 422
    ErrorBody.model_validate(bad.value.body)  # the documented error shape
    with pytest.raises(BadRequestError) as rows:
        client.files.create(b'{"text": "no label"}\n', filename="bad.jsonl")
    assert rows.value.param == "file" and "label" in rows.value.message
    with Client(client.base_url, "ts-not-a-key") as stranger, pytest.raises(AuthenticationError):
        stranger.models.list()


def test_the_async_client_streams_and_answers_concurrently(ready_service, admin_key):
    async def run():
        async with AsyncClient(ready_service, admin_key) as client:
            answers = await asyncio.gather(*(client.classify(f"Film {i}.") for i in range(6)))
            stream = await client.chat.completions.create(
                [{"role": "user", "content": "Hi"}], stream=True, max_completion_tokens=4
            )
            chunks = [chunk async for chunk in stream]
            versions = await client.models.versions("sentiment")
            return answers, chunks, versions

    answers, chunks, versions = asyncio.run(run())
    assert [a.version for a in answers] == [1] * 6
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
    assert versions.model == "sentiment"
