"""The service over real HTTP: a real Ray cluster, the real Serve app, tiny real models."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import json_log_lines
from ray import serve
from tuneserve.serving.names import task_app_name, task_server_name


def test_healthz(ready_service, http):
    assert http.get("/healthz").json() == {"status": "ok"}


TASK_CALLS = [
    ("/v1/classify", {"inputs": "A wonderful film."}, {"inputs": ["Great.", "Awful.", ""]}),
    ("/v1/ner", {"inputs": "Anna Schmidt flew to Paris."}, {"inputs": ["Tom met Olga.", "", "Ok"]}),
    (
        "/v1/qa",
        {"question": "Where was Anna born?", "context": "Anna was born in Oslo."},
        {"inputs": [{"question": "Who?", "context": "Tom did."}] * 3},
    ),
    ("/v1/translate", {"inputs": "The man sees the dog."}, {"inputs": ["Hi.", "", "The cat."]}),
]


@pytest.mark.parametrize(("route", "single", "many"), TASK_CALLS)
def test_task_routes_answer_single_and_list_inputs(ready_service, http, route, single, many):
    one = http.post(route, json=single)
    assert one.status_code == 200, one.text
    assert len(one.json()["results"]) == 1
    three = http.post(route, json=many).json()
    assert len(three["results"]) == 3
    assert isinstance(three["model"], str) and three["version"] == 1


def test_classify_output_shape(ready_service, http):
    body = http.post("/v1/classify", json={"inputs": ["Wonderful!"], "top_k": 2}).json()
    assert body["model"] == "sentiment" and body["version"] == 1
    result = body["results"][0]
    assert result["label"] == "positive" and len(result["top"]) == 2


def test_versions_on_the_wire(ready_service, http):
    def served(model: str) -> int:
        body = http.post("/v1/classify", json={"inputs": "Fine.", "model": model}).json()
        return body["version"]

    assert served("sentiment") == 1
    assert served("sentiment@production") == 1
    assert served("sentiment@1") == 1
    assert served("sentiment@2") == 2
    assert served("sentiment@candidate") == 2


@pytest.mark.parametrize(
    ("route", "body", "status", "param"),
    [
        ("/v1/classify", {"inputs": 5}, 422, "inputs"),
        ("/v1/classify", {"inputs": "x", "top_k": 0}, 422, "top_k"),
        ("/v1/classify", {"inputs": "x", "colour": "red"}, 422, "colour"),
        ("/v1/classify", {"inputs": "x", "model": "nope"}, 404, "model"),
        ("/v1/classify", {"inputs": "x", "model": "sentiment@9"}, 404, "model"),
        ("/v1/classify", {"inputs": "x", "model": "sentiment@staging"}, 404, "model"),
        ("/v1/classify", {"inputs": "x", "model": "entities"}, 400, "model"),
        ("/v1/classify", {"inputs": ["x"] * 65}, 413, "inputs"),
        ("/v1/classify", {"inputs": ["ok", "x" * 20_001]}, 413, "inputs[1]"),
        ("/v1/qa", {"question": "q", "context": "c", "inputs": []}, 400, "inputs"),
        ("/v1/qa", {"question": "q"}, 400, "question"),
        ("/v1/qa", {"question": "why " * 300, "context": "Because."}, 400, "inputs[0].question"),
        ("/v1/translate", {"inputs": "x", "max_new_tokens": 0}, 422, "max_new_tokens"),
        ("/v1/chat/completions", {"messages": []}, 422, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "robot", "content": "x"}]},
            422,
            "messages.0.role",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi " * 800}]},
            400,
            "messages",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi " * 800}], "stream": True},
            400,
            "messages",
        ),
    ],
)
def test_bad_requests_get_a_json_4xx_naming_the_field(
    ready_service, http, route, body, status, param
):
    response = http.post(route, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] and error["message"]


def test_extreme_chat_parameters_get_an_answer_or_a_4xx_never_a_500_or_a_hang(ready_service, http):
    """The reported bugs: temperature 1e-40 overflowed the logits and stopped the replica's
    engine; a 23-digit seed overflowed torch's generator (500); both now answer."""
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    base = {"messages": messages, "max_tokens": 8, "ignore_eos": True}
    greedy = http.post("/v1/chat/completions", json=base | {"temperature": 0})
    tiny = http.post("/v1/chat/completions", json=base | {"temperature": 1e-40})
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["choices"][0]["message"] == greedy.json()["choices"][0]["message"]
    with http.stream(
        "POST", "/v1/chat/completions", json=base | {"temperature": 1e-40, "stream": True}
    ) as streamed:
        events = [line for line in streamed.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and not any('"error"' in line for line in events)
    for extra, status, param in [
        ({"seed": 99999999999999999999999}, 422, "seed"),
        ({"seed": 99999999999999999999999, "stream": True}, 422, "seed"),
        ({"max_tokens": 513}, 400, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 422, "stop"),
    ]:
        refused = http.post("/v1/chat/completions", json=base | extra)
        assert refused.status_code == status, refused.text
        assert refused.json()["error"]["param"] == param
    after = http.post("/v1/chat/completions", json=base | {"temperature": 0})
    assert after.json()["choices"] == greedy.json()["choices"]  # the replica serves on


def test_malformed_json_and_unknown_routes(ready_service, http):
    bad = http.post("/v1/classify", content=b"{bad", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    missing = http.get("/v1/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong_method = http.get("/v1/classify")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_models_routes(ready_service, http):
    models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert {"sentiment", "entities", "qa", "translate-en-de", "chat"} <= set(models)
    assert models["sentiment"]["aliases"] == {"production": 1, "candidate": 2}
    assert http.get("/v1/models/qa").json()["task"] == "qa"
    versions = http.get("/v1/models/sentiment/versions").json()["data"]
    assert [(v["version"], v["aliases"]) for v in versions] == [
        (1, ["production"]),
        (2, ["candidate"]),
    ]
    assert http.get("/v1/models/nope").status_code == 404


def test_openapi_describes_every_route_with_schemas(ready_service, http):
    spec = http.get("/openapi.json").json()
    for path in (
        "/healthz",
        "/readyz",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/versions",
        "/v1/classify",
        "/v1/ner",
        "/v1/qa",
        "/v1/translate",
        "/v1/chat/completions",
    ):
        assert path in spec["paths"], path
    assert {"ClassifyRequest", "ChatCompletionRequest", "ErrorBody"} <= set(
        spec["components"]["schemas"]
    )
    assert http.get("/docs").status_code == 200


def _server_info(task: str) -> dict:
    """Every replica's info, merged: batch records and chat stats keyed by replica."""
    handle = serve.get_deployment_handle(
        task_server_name(task), app_name=task_app_name("tuneserve", task)
    )
    infos = handle.broadcast("info").results(timeout_s=60)
    merged = {"batches": {}, "chat": {}}
    for info in infos:
        for label, records in info["batches"].items():
            merged["batches"][(info["replica_id"], label)] = records
        merged["chat"].update(info["chat"])
    return merged


def _new_batches(before: dict, after: dict, label: str) -> list[list[int]]:
    """``label``'s batches run after ``before`` was taken (records are numbered per replica;
    a version evicted and reloaded meanwhile starts a new record list)."""
    last = {}
    for (replica, _), records in before["batches"].items():
        last[replica] = max([last.get(replica, 0)] + [record[2] for record in records])
    return [
        record
        for (replica, name), records in after["batches"].items()
        if name == label
        for record in records
        if record[2] > last.get(replica, 0)
    ]


def test_concurrent_requests_are_batched_and_versions_never_mix(ready_service, http):
    before = _server_info("classification")
    sent: dict[str, int] = {}

    def call(index: int) -> tuple[str, dict]:
        model = "sentiment@1" if index % 2 else "sentiment@2"
        body = {"inputs": [f"Review number {index} was great."] * 2, "model": model}
        return model, http.post("/v1/classify", json=body).json()

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(call, range(48)))
    for model, answer in results:
        assert model.endswith(f"@{answer['version']}")
        # a replica labels its batches name@version, and :variant unless it runs fp32
        label = model + ("" if answer["variant"] == "fp32" else f":{answer['variant']}")
        sent[label] = sent.get(label, 0) + 2
    assert len(sent) == 2
    after = _server_info("classification")
    for label, items in sent.items():
        new = _new_batches(before, after, label)
        # each version's batcher saw exactly that version's items, and batched them
        assert sum(record[0] for record in new) == items, (label, before, after)
        assert max(record[1] for record in new) > 1, f"no batch of several requests: {new}"


def test_openai_sdk_chat_whole_and_streamed(ready_service, admin_key):
    from openai import OpenAI

    client = OpenAI(base_url=f"{ready_service}/v1", api_key=admin_key)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    whole = client.chat.completions.create(
        model="chat", messages=messages, max_tokens=12, temperature=0
    )
    assert whole.choices[0].finish_reason in {"stop", "length"}
    assert whole.usage.completion_tokens <= 12 and whole.usage.prompt_tokens > 0
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    assert whole.model == "chat" and whole.model_extra["version"] == 1

    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=messages,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and set(finishes[:-1]) == {None}
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_raw_stream_is_server_sent_events_ending_in_done(ready_service, http):
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 5,
        "stream": True,
        "stop": ["\n"],
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][6:])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["role"]


def _leave_a_stream_early(service: str, admin_headers: dict[str, str]) -> tuple[dict, dict]:
    """Read two messages of a 500-token stream, close the connection; chat@1's stats
    before, and after the engine counted the stream as cancelled or complete."""
    before = _server_info("chat")["chat"]["chat@1"]
    body = {
        "messages": [{"role": "user", "content": "Hello!"}],
        "max_tokens": 500,  # within limits.max_new_tokens (512): more is a 400, not a cut
        "stream": True,
        "ignore_eos": True,
    }
    with (
        httpx.Client(base_url=service, timeout=60, headers=admin_headers) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()
        next(lines)
        next(lines)
    # leaving the block closed the connection mid-stream
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = _server_info("chat")["chat"]["chat@1"]
        if stats["streams_cancelled"] > before["streams_cancelled"]:
            break
        if stats["tokens_generated"] - before["tokens_generated"] >= 500:
            break  # complete: the tiny model decoded it all before the client left
        time.sleep(0.05)
    return before, stats


def test_disconnected_stream_stops_generating(ready_service, service, admin_headers):
    # the tiny model decodes 500 tokens in about a second: a client slowed down by a busy
    # machine may leave after the end; such a try proves nothing, and another is made
    for _ in range(3):
        before, stats = _leave_a_stream_early(service, admin_headers)
        if stats["streams_cancelled"] > before["streams_cancelled"]:
            break
    assert stats["streams_cancelled"] == before["streams_cancelled"] + 1
    assert stats["most_tokens_after_cancel"] <= 2
    generated = stats["tokens_generated"] - before["tokens_generated"]
    assert generated < 400, "generation stopped long before the context was full"


def test_request_id_is_echoed_once_and_in_a_json_log_line(ready_service, http, service_settings):
    request_id = f"test-{uuid.uuid4().hex}"
    text = "A secret review that must never reach the logs."
    response = http.post(
        "/v1/classify", json={"inputs": text}, headers={"X-Request-ID": request_id}
    )
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == [request_id]
    (line,) = json_log_lines(service_settings, request_id)
    record = json.loads(line)
    assert record["request_id"] == request_id and record["route"] == "/v1/classify"
    assert record["status"] == 200 and record["model"] == "sentiment" and record["version"] == 1
    assert record["latency_ms"] > 0 and record["level"] == "info" and "ts" in record
    assert text not in line
