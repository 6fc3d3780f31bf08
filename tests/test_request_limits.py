"""Limits enforced before work is done, and abusive input refused with a 4xx, without Ray:
the body limit middleware on a real uvicorn server (real HTTP on loopback), the JSON error
handlers, the job-size checks, and training files built to break the parser."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Annotated

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Form, Request, UploadFile
from lazy_bodies import MULTIPART, GiB, KiB, MiB, Source, upload_source
from pydantic import BaseModel
from tuneserve.api.fine_tuning import Hyperparameters
from tuneserve.control.job_limits import check_job_size
from tuneserve.errors import InvalidRequest
from tuneserve.serving.body_limit import (
    MULTIPART_ALLOWANCE,
    BodyLimit,
    BodyRule,
    BodyRules,
    install_body_limit,
)
from tuneserve.serving.errors import install_error_handlers
from tuneserve.serving.proxy import proxy_middlewares
from tuneserve.settings import LimitSettings, Settings
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.training.config import TrainingConfig
from tuneserve.training.data import parse_training_file

LIMIT = 64 * KiB  # every route's body, but these:
UPLOAD_LIMIT = 256 * KiB
HELD = 2  # requests that may read a body at once on /upload and /stream
RULES = BodyRules(
    BodyRule(LIMIT),
    {
        ("POST", "/upload"): BodyRule(UPLOAD_LIMIT, HELD, "file"),
        ("POST", "/stream"): BodyRule(LIMIT, HELD),
    },
)
JSON = {"content-type": "application/json"}


class Body(BaseModel):
    text: str = ""
    number: int = 0


class Entered:
    """Counts the /stream handler's entries: it runs before its body is read."""

    def __init__(self) -> None:
        self.semaphore = threading.Semaphore(0)


def tiny_app(entered: Entered) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_body_limit(app, lambda: RULES)

    @app.post("/json")
    async def json_route(body: Body) -> dict:
        return {"text": len(body.text)}

    @app.post("/upload")
    async def upload(file: UploadFile, purpose: Annotated[str, Form()]) -> dict:
        return {"bytes": file.size, "purpose": purpose}

    @app.post("/stream")
    async def stream(request: Request) -> dict:
        entered.semaphore.release()
        return {"bytes": sum([len(chunk) async for chunk in request.stream()])}

    @app.post("/ignore")
    async def ignore() -> dict:  # answers without reading the body
        return {"ignored": True}

    @app.get("/ping")
    async def ping() -> dict:
        return {"ok": True}

    return app


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` on a real uvicorn server (httptools, as in Serve's proxy) on a free port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # the server's own flag, set once it accepts connections
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def entered() -> Entered:
    return Entered()


@pytest.fixture(scope="module")
def url(entered: Entered) -> Iterator[str]:
    with served(tiny_app(entered)) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http


def json_of_size(size: int) -> bytes:
    """A valid ``Body`` of exactly ``size`` bytes."""
    frame = b'{"text": ""}'
    return frame[:-2] + b"a" * (size - len(frame)) + frame[-2:]


def chunked(data: bytes) -> Iterator[bytes]:
    """``data`` sent without a Content-Length (Transfer-Encoding: chunked)."""
    for start in range(0, len(data), 10 * KiB):
        yield data[start : start + 10 * KiB]


def assert_too_large(response: httpx.Response, param: str | None = None) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["type"] == "payload_too_large" and error["param"] == param
    assert "bytes" in error["message"]
    assert response.headers["connection"] == "close"


# --- the body limit, over real HTTP ------------------------------------------------------


@pytest.mark.parametrize("send", ["declared", "chunked"])
def test_json_body_at_the_limit_passes_and_one_byte_over_is_a_413(client, send):
    def post(size: int) -> httpx.Response:
        data = json_of_size(size)
        return client.post(
            "/json", content=data if send == "declared" else chunked(data), headers=JSON
        )

    assert post(LIMIT).json() == {"text": LIMIT - len(b'{"text": ""}')}
    assert_too_large(post(LIMIT + 1))


@pytest.mark.parametrize("send", ["declared", "chunked"])
def test_upload_at_its_limit_passes_and_one_byte_over_is_a_413_naming_the_file(client, send):
    def post(total: int) -> httpx.Response:
        source = upload_source(total)
        content = bytes(b"".join(source)) if send == "declared" else source
        return client.post("/upload", content=content, headers=MULTIPART)

    framing = len(upload_source(0).head + upload_source(0).tail)
    assert post(UPLOAD_LIMIT).json() == {"bytes": UPLOAD_LIMIT - framing, "purpose": "fine-tune"}
    assert_too_large(post(UPLOAD_LIMIT + 1), param="file")


def test_a_chunked_upload_far_past_the_limit_is_refused_unread(client):
    """1 GiB offered without a Content-Length: the 413 comes once the count passes the
    limit, and the server closes the connection, so the client stops sending."""
    source = upload_source(GiB)
    response = client.post("/upload", content=source, headers=MULTIPART)
    assert_too_large(response, param="file")
    assert source.sent < 32 * MiB, f"the client sent {source.sent} bytes before the 413"
    assert client.get("/ping").json() == {"ok": True}


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read(client):
    source = Source(GiB)
    headers = JSON | {"content-length": str(GiB)}
    response = client.post("/json", content=source, headers=headers)
    assert_too_large(response)
    assert str(GiB) in response.json()["error"]["message"]
    assert source.sent < 32 * MiB, f"the client sent {source.sent} bytes before the 413"


def test_an_answer_before_the_body_is_read_closes_the_connection(client):
    """A route that does not read the body must not let the server sink an endless one."""
    source = Source(GiB)
    response = client.post("/ignore", content=source)
    assert response.json() == {"ignored": True}
    assert response.headers["connection"] == "close"
    assert source.sent < 32 * MiB, f"the client sent {source.sent} bytes"
    assert "connection" not in client.post("/ignore").headers  # no body: keep-alive


def test_past_the_concurrent_limit_a_503_comes_before_the_body_is_read(url, entered):
    """``HELD`` requests reading their bodies pass; one more is a 503, before the app."""
    gate = threading.Event()

    def held_body() -> Iterator[bytes]:
        yield b"x" * 10
        gate.wait(30)
        yield b"y" * 10

    def post(content) -> httpx.Response:
        return httpx.post(f"{url}/stream", content=content, timeout=30)

    with ThreadPoolExecutor(HELD) as pool:
        held = [pool.submit(post, held_body()) for _ in range(HELD)]
        try:
            for _ in range(HELD):
                assert entered.semaphore.acquire(timeout=30), "a held request never arrived"
            refused = post(b"z" * 10)
        finally:
            gate.set()
        assert [future.result().json() for future in held] == [{"bytes": 20}] * HELD
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "service_unavailable"
    assert not entered.semaphore.acquire(blocking=False), "the refused request reached the app"


# --- the same guard inside Serve's HTTP proxy ------------------------------------------------


async def eager_reader(scope, receive, send) -> None:
    """Reads a body as Serve's proxy does: all of it, as fast as it comes, then answers."""
    read = 0
    while (message := await receive())["type"] == "http.request":
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = json.dumps({"read": read}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_the_proxy_guard_caps_every_body_at_the_largest_route_limit(monkeypatch):
    """Applied to an eager reader as Serve applies its proxy callback's middlewares."""
    from ray.serve._private.http_util import (
        _apply_middlewares,
        validate_http_proxy_callback_return,
    )

    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "0")  # Serve's own proxy
    monkeypatch.setenv("TUNESERVE_LIMITS__MAX_UPLOAD_BYTES", str(MiB))
    monkeypatch.setenv("TUNESERVE_LIMITS__MAX_JSON_BODY_BYTES", str(512 * KiB))
    cap = MiB + MULTIPART_ALLOWANCE  # an upload's: the largest
    middlewares = validate_http_proxy_callback_return(proxy_middlewares())
    guarded = _apply_middlewares(eager_reader, middlewares)
    with served(guarded) as base, httpx.Client(base_url=base, timeout=30) as http:
        assert http.post("/any", content=chunked(b"x" * cap)).json() == {"read": cap}
        assert_too_large(http.post("/any", content=chunked(b"x" * (cap + 1))))
        source = Source(GiB)
        assert_too_large(http.post("/any", content=source))
    assert source.sent < 32 * MiB, f"the client sent {source.sent} bytes before the 413"


async def early_closer(scope, receive, send) -> None:
    """Answers at once, unread, saying ``Connection: close``: as the app's own guard does."""
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"error": {"type": "payload"}}'})


@pytest.mark.parametrize("send", ["declared", "chunked"])
def test_behind_haproxy_the_proxy_guard_keeps_the_connection_and_the_rest_is_discarded(
    monkeypatch, send
):
    """Serve puts the callback's middlewares around a replica's own server behind HAProxy;
    there an early answer must not close (``body_limit``): the server reads the rest and
    throws it away, then serves the next request on the same connection."""
    from ray.serve._private.http_util import (
        _apply_middlewares,
        validate_http_proxy_callback_return,
    )

    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "1")
    monkeypatch.setenv("TUNESERVE_LIMITS__MAX_UPLOAD_BYTES", str(MiB))
    middlewares = validate_http_proxy_callback_return(proxy_middlewares())
    guarded = _apply_middlewares(early_closer, middlewares)
    source = Source(64 * MiB)
    headers = {"content-length": str(source.total)} if send == "declared" else {}
    with served(guarded) as base, httpx.Client(base_url=base, timeout=30) as http:
        response = http.post("/any", content=source, headers=headers)
        assert response.status_code == 413 and "connection" not in response.headers
        assert source.sent == source.total  # read to its end, not cut off
        peer = response.extensions["network_stream"].get_extra_info("client_addr")
        again = http.post("/any", content=b"x")
        assert again.extensions["network_stream"].get_extra_info("client_addr") == peer


# --- the middleware's slots, at the ASGI level ----------------------------------------------


def test_a_slot_is_given_back_whether_the_app_answers_fails_or_the_client_leaves():
    """Deterministic, in-process, one slot: after each way a request ends, the next one is
    admitted (a leaked slot would make it a 503)."""
    rules = BodyRules(BodyRule(LIMIT), {("POST", "/upload"): BodyRule(LIMIT, 1)})

    async def app(scope, receive, send) -> None:
        if scope["outcome"] == "fail":
            raise RuntimeError("the app failed")
        await receive()  # a body, or the client's disconnect
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(middleware: BodyLimit, outcome: str) -> int | str:
        replies: list[dict] = []

        async def receive() -> dict:
            if outcome == "disconnect":
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": b"x"}

        async def send(reply: dict) -> None:
            replies.append(reply)

        headers = [(b"content-length", b"1")]
        scope = {"type": "http", "method": "POST", "path": "/upload", "headers": headers}
        try:
            await middleware(scope | {"outcome": outcome}, receive, send)
        except RuntimeError as error:
            return str(error)
        return replies[0]["status"]

    async def run() -> list[int | str]:
        middleware = BodyLimit(app, lambda: rules)
        return [await call(middleware, o) for o in ("answer", "fail", "disconnect", "answer")]

    assert asyncio.run(run()) == [200, "the app failed", 200, 200]


def test_rules_from_settings_put_uploads_and_json_under_their_own_limits():
    limits = LimitSettings(max_upload_bytes=1000, max_concurrent_uploads=3, max_json_body_bytes=7)
    rules = BodyRules.from_limits(limits)
    assert rules.rule_for(("POST", "/v1/files")) == BodyRule(1000 + MULTIPART_ALLOWANCE, 3, "file")
    assert rules.rule_for(("POST", "/v1/classify")) == BodyRule(7)
    assert rules.rule_for(("GET", "/v1/files")) == BodyRule(7)


def test_default_json_limit_admits_a_full_batch_even_when_every_character_is_escaped():
    limits = LimitSettings()
    batch = {"inputs": ["é" * limits.max_input_chars] * limits.max_batch_items}
    escaped = json.dumps(batch)  # ensure_ascii, as by default: é is \u00e9, 6 bytes
    assert len(escaped) > 6 * limits.max_input_chars * limits.max_batch_items
    assert len(escaped) <= limits.max_json_body_bytes


# --- JSON that parses badly: a 400 naming why, never a 500 -----------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 10_000, "nested too deeply"),  # deeper than Python's recursion limit
        (b'{"text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested too deeply"),
        (b'{"number": ' + b"9" * 10_000 + b"}", "more than 4300 digits"),
    ],
)
def test_deep_or_huge_number_json_is_a_400_saying_why(client, body, reason):
    response = client.post("/json", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and reason in error["message"]


# --- job size ----------------------------------------------------------------------------


JOB_LIMITS = LimitSettings(max_epochs=5, max_training_batch_size=32, max_epoch_rows=1000)


def job(n_epochs: int = 1, batch_size: int = 8) -> TrainingConfig:
    return TrainingConfig(n_epochs=n_epochs, batch_size=batch_size)


@pytest.mark.parametrize(
    ("config", "rows", "param", "needle"),
    [
        (job(n_epochs=6), 10, "hyperparameters.n_epochs", "n_epochs is 6; at most 5"),
        (job(batch_size=33), 10, "hyperparameters.batch_size", "batch_size is 33; at most 32"),
        (job(n_epochs=4), 251, "hyperparameters.n_epochs", "1004 rows to train; at most 1000"),
    ],
)
def test_a_job_one_over_a_limit_is_refused_naming_the_hyperparameter(config, rows, param, needle):
    with pytest.raises(InvalidRequest) as caught:
        check_job_size(config, rows, JOB_LIMITS)
    assert caught.value.param == param and needle in caught.value.message


def test_a_job_exactly_at_every_limit_is_accepted():
    check_job_size(job(n_epochs=5, batch_size=32), 200, JOB_LIMITS)  # 5 × 200 = 1000 rows
    check_job_size(job(n_epochs=4, batch_size=32), 250, JOB_LIMITS)


def test_auto_epochs_are_held_to_the_limit_too():
    settings = Settings(training={"default_epochs": 6}, limits=JOB_LIMITS.model_dump())
    spec = builtin_catalog().get("classification")
    config = TrainingConfig.resolve(Hyperparameters(), spec, settings)
    with pytest.raises(InvalidRequest) as caught:
        check_job_size(config, 10, settings.limits)
    assert caught.value.param == "hyperparameters.n_epochs"


# --- abusive training files: an error naming the line, never a 500 ---------------------------


def file_errors(data: bytes, filename: str = "rows.jsonl") -> list[tuple[int, str | None, str]]:
    with pytest.raises(InvalidRequest) as caught:
        parse_training_file(
            data, filename, builtin_catalog(), lambda rows: None, max_bytes=10**7, max_rows=100
        )
    return [(e["line"], e["field"], e["message"]) for e in caught.value.details]


def test_deep_and_huge_number_jsonl_lines_are_errors_naming_their_lines():
    good = b'{"text": "fine", "label": "positive"}\n'
    deep = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    huge = b'{"text": "x", "label": ' + b"9" * 100_000 + b"}\n"
    assert file_errors(good + deep + huge + good) == [
        (2, None, "not accepted JSON: it is nested too deeply"),
        (3, None, "not accepted JSON: it has an integer of more than 4300 digits"),
    ]


def test_a_deep_csv_cell_is_an_error_naming_its_field():
    deep = "[" * 10_000 + "]" * 10_000  # deeper than the recursion limit
    data = f'tokens,tags\n"{deep}","[""O""]"\n'.encode()
    assert file_errors(data, "rows.csv") == [
        (2, "tokens", "the cell is not accepted JSON: it is nested too deeply")
    ]


def test_an_integer_the_row_store_cannot_hold_is_an_error_naming_its_field():
    row = {"question": "Who?", "context": "Anna flew.", "answers": {"text": [""]}}
    row["answers"]["answer_start"] = [10**4000]  # an empty answer is "at" any offset
    assert file_errors(json.dumps(row).encode()) == [
        (1, "answers.answer_start.0", "the number is out of range (a 64-bit integer)")
    ]
