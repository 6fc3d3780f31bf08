"""Faults injected into a running service, and what each may cost.

- A task-server replica killed (SIGKILL) under load: the requests it held fail with 503
  (never 500), the other replica answers meanwhile, and Serve replaces the dead one.
- Another process holding the SQLite registry's write lock (a backup, a CLI command): writes
  wait for it; inference, and every read it needs (aliases, API keys), goes on.
- The Postgres registry unreachable (its connections reset, new ones refused): what needs
  the database is a typed 503; the gateway keeps resolving the models and keys it has seen.
  SQLite cannot be made unreadable to a process that has it open, so this one runs Ray-free,
  on the control-plane services a gateway runs, behind a TCP relay the test cuts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import postgres_schema_url, production_copy
from ray import serve
from ray.exceptions import ActorDiedError, RayError
from sqlalchemy import make_url
from sqlite_lock import write_lock
from tcp_relay import Relay
from test_fine_tuning import create_job, upload, wait_for
from test_resolver import Clock
from tuneserve.control.access import Authenticator, Principal
from tuneserve.control.fine_tuning import FineTuningService
from tuneserve.control.resolver import ModelResolver, Target
from tuneserve.errors import Unavailable
from tuneserve.registry import ArtifactStore, Registry
from tuneserve.registry.keys import KeyStore
from tuneserve.serving.errors import as_tuneserve_error, error_response
from tuneserve.serving.names import task_app_name, task_server_name
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.zoo.recipes import RECIPES

TASK = "classification"
THREADS = 4  # concurrent clients of the traffic


def _error_type(answer: httpx.Response) -> str:
    """The error's type, or what came instead of our JSON shape (recorded, never raised in
    a traffic thread, where it would go unseen)."""
    try:
        return answer.json()["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return f"not our shape: {answer.headers.get('content-type')} {answer.text[:80]!r}"


class Traffic:
    """Concurrent classification requests until the block ends; every answer is recorded as
    (finished at, status, error type), status 0 for a connection that failed."""

    def __init__(self, url: str, headers: dict[str, str], model: str = "sentiment"):
        self.url, self.headers, self.model = url, headers, model
        self.answers: list[tuple[float, int, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(THREADS)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            while not self.stop.is_set():
                try:
                    answer = client.post(
                        "/v1/classify", json={"inputs": "A fine film.", "model": self.model}
                    )
                except httpx.TransportError as error:
                    self.answers.append((time.monotonic(), 0, type(error).__name__))
                    continue
                error = None if answer.status_code == 200 else _error_type(answer)
                self.answers.append((time.monotonic(), answer.status_code, error))

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 60  # flowing before any fault
        while sum(status == 200 for _, status, _ in self.answers) < 20:
            assert time.monotonic() < deadline, f"no steady traffic: {self.answers[-5:]}"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def failed(self) -> list[tuple[float, int, str | None]]:
        return [answer for answer in self.answers if answer[1] != 200]


# --- a replica killed under load ---------------------------------------------------------


def _replica_pids(app: str) -> list[int]:
    """The processes of the classification replicas (Ray titles them ``ray::<actor class>``,
    plus ``.<method>`` while one runs)."""
    title = f"ray::ServeReplica:{app}:{task_server_name(TASK)}"
    table = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    rows = (line.strip().split(None, 1) for line in table.splitlines())
    return [int(row[0]) for row in rows if len(row) == 2 and row[1].split(".")[0] == title]


def _replicas(app: str) -> tuple[set[str], bool] | None:
    """The ids of the replicas the deployment routes to, and whether all are ready; None
    while one of them cannot answer (it died, and the handle has not heard yet)."""
    handle = serve.get_deployment_handle(task_server_name(TASK), app_name=app)
    try:
        infos = handle.broadcast("info").results(timeout_s=10)
        readies = handle.broadcast("ready").results(timeout_s=10)
    except (RayError, TimeoutError):
        return None
    ids = {info["replica_id"] for info in infos}
    return ids, len(readies) == len(ids) and all(reply["ready"] for reply in readies)


def test_a_replica_killed_under_load_costs_only_its_requests_and_is_replaced(
    ready_service, http, service_settings
):
    app = task_app_name(service_settings.app_name, TASK)
    replicas = service_settings.serving.task_server_options(TASK).num_replicas
    before, ready = _replicas(app) or (set(), False)
    assert len(before) == replicas == 2 and ready
    pids = _replica_pids(app)
    assert len(pids) == replicas, f"classification replica processes: {pids}"

    with Traffic(ready_service, dict(http.headers)) as traffic:
        killed_at = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)
        while True:  # back to two ready replicas, one of them new
            state = _replicas(app)
            if state and len(state[0]) == replicas and state[0] != before and state[1]:
                break
            assert time.monotonic() - killed_at < 120, f"not replaced in 120 s: {state}"
            time.sleep(0.25)
        recovered = time.monotonic() - killed_at
        assert len(state[0] & before) == 1  # the survivor kept its place
        served_meanwhile = sum(
            killed_at < at < killed_at + recovered and status == 200
            for at, status, _ in traffic.answers
        )

    failed = traffic.failed()
    print(
        f"\nreplica killed under load ({THREADS} clients): {len(failed)} of "
        f"{len(traffic.answers)} requests failed {sorted({(s, e) for _, s, e in failed})}; "
        f"{served_meanwhile} answered while it was replaced; two ready replicas again "
        f"{recovered:.1f} s after the kill"
    )
    assert served_meanwhile > 0  # the surviving replica answered all along
    # only requests the dead replica held fail, and each says "retry", never 500
    assert {(status, error) for _, status, error in failed} <= {(503, "service_unavailable")}
    assert len(failed) <= THREADS


def test_a_call_that_a_dying_replica_held_is_a_503_to_retry():
    """Whether the kill above catches a request on the dead replica is a race; its answer
    is not: Serve does not retry a request a replica had accepted, so the gateway says
    "retry" (503 with Retry-After), where it used to say "internal error" (500)."""
    response = error_response(as_tuneserve_error(ActorDiedError()))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert json.loads(response.body)["error"]["type"] == "service_unavailable"


# --- the SQLite registry's write lock held by another process ----------------------------

LOCK_S = 10.0
LOCKED_MODEL = "faults-locked-sentiment"


def test_inference_goes_on_while_another_process_holds_the_write_lock(
    ready_service, http, service_settings
):
    """Held for ``LOCK_S`` (the session's busy timeout is 30 s): reads never queue behind a
    writer, so inference answers throughout, also once the gateway's key and alias caches
    expired; an upload waits for the lock and succeeds after it; a training job goes on."""
    production_copy(service_settings, "sentiment", LOCKED_MODEL, TASK)
    rows = RECIPES["sentiment"].data.generate("train", 16, seed=21)
    job = create_job(
        http,
        model=LOCKED_MODEL,
        training_file=upload(http, rows),
        hyperparameters={"n_epochs": 1, "batch_size": 8},
        promotion={"auto": False},
    )
    wait_for(http, job["id"], statuses={"running"})
    uploaded: dict = {}

    def upload_during_the_lock() -> None:
        with httpx.Client(base_url=ready_service, headers=http.headers, timeout=120) as client:
            files = {"file": ("locked.jsonl", b'{"text": "Fine.", "label": "positive"}')}
            answer = client.post("/v1/files", files=files, data={"purpose": "fine-tune"})
        uploaded.update(status=answer.status_code, body=answer.text, at=time.monotonic())

    with Traffic(ready_service, dict(http.headers)) as traffic:
        with write_lock(service_settings.registry.database_url):
            locked_at = time.monotonic()
            writer = threading.Thread(target=upload_during_the_lock)
            writer.start()
            assert http.get("/v1/models").status_code == 200  # a read, while locked
            time.sleep(LOCK_S)  # the fault itself: the lock stays held this long
            released_at = time.monotonic()
        writer.join(timeout=120)

    key_ttl_s = service_settings.auth.key_cache_ttl_s
    # answered in the lock's last seconds: after the gateway had to read its keys again
    late = [s for at, s, _ in traffic.answers if locked_at + key_ttl_s + 1 < at < released_at]
    ended = wait_for(http, job["id"])
    print(
        f"\nwrite lock held {LOCK_S:g} s under load: {len(traffic.failed())} of "
        f"{len(traffic.answers)} requests failed, {len(late)} answered in the lock's last "
        f"{released_at - locked_at - key_ttl_s - 1:.1f} s; the upload answered "
        f"{uploaded.get('status')} {uploaded.get('at', 0) - released_at:+.1f} s after the "
        f"release; the job running meanwhile {ended['status']} {ended.get('error') or ''}"
    )
    assert traffic.failed() == []
    assert late and set(late) == {200}, "inference stalled behind the write lock"
    assert uploaded["status"] == 200, uploaded["body"]
    assert uploaded["at"] > released_at  # it waited for the lock, then wrote
    assert ended["status"] in {"succeeded", "failed"}, ended
    if ended["status"] == "failed":  # a clean code and our message, no exception text
        assert ended["error"]["code"] and "Error" not in ended["error"]["message"], ended


# --- the Postgres registry unreachable ----------------------------------------------------


@pytest.fixture
def relayed_postgres(postgres_admin) -> Iterator[tuple[Relay, str]]:
    """A Postgres schema of its own, reached through a ``Relay``: (relay, database URL)."""
    schema = postgres_schema_url(postgres_admin)
    url = make_url(next(schema))
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    try:
        yield relay, url.set(host="127.0.0.1", port=relay.port).render_as_string(False)
    finally:
        relay.cut()
        next(schema, None)  # drops the schema


@pytest.mark.postgres
def test_an_unreachable_database_is_503_and_seen_models_and_keys_still_resolve(
    relayed_postgres, tmp_path: Path
):
    relay, url = relayed_postgres
    registry = Registry.from_url(url)
    registry.create_model("clf", TASK)
    for _ in range(2):
        registry.register_version("clf", artifact_uri="/a", sha256="ab" * 32, metrics={})
    registry.move_alias("clf", "production", 1, expected_from=None)
    keys = KeyStore(registry.engine)
    header = f"Bearer {keys.create('acme', ['inference'])[1]}".encode()
    # ttl 0: every call reads the database, so every call meets the outage
    clock = Clock()
    resolver = ModelResolver(registry, {}, ttl_s=0, clock=clock, outage_grace_s=60)
    authenticator = Authenticator(keys, None, ttl_s=0, min_refresh_s=0, outage_grace_s=60)
    no_grace = ModelResolver(registry, {}, ttl_s=0), Authenticator(keys, None, ttl_s=0)
    for each in (resolver, no_grace[0]):
        assert each.resolve("clf", TASK) == Target("clf", 1, TASK)
    for each in (authenticator, no_grace[1]):
        assert each.authenticate(header).tenant == "acme"
    settings = Settings(data_dir=tmp_path, registry={"database_url": url})
    store = ArtifactStore(str(tmp_path / "artifacts"), tmp_path / "cache")
    files = FineTuningService(settings, registry, store, TaskCatalog.load([]), lambda: None)
    caller = Principal("acme", frozenset({"fine_tune"}))
    rows = b'{"text": "Fine.", "label": "positive"}\n{"text": "Bad.", "label": "negative"}'

    relay.cut()
    try:  # what the gateway has seen is answered from its last view
        assert resolver.resolve("clf", TASK) == Target("clf", 1, TASK)
        assert resolver.resolve("clf@2", TASK) == Target("clf", 2, TASK)
        assert authenticator.authenticate(header).tenant == "acme"
        unseen_key = b"Bearer tsk_" + b"0" * 24 + b"_" + b"x" * 43
        for needs_the_database in (  # a typed 503 each, with no driver text in it
            lambda: resolver.resolve("other", TASK),
            lambda: authenticator.authenticate(unseen_key),  # it may be new: not a 401
            lambda: no_grace[0].resolve("clf", TASK),
            lambda: no_grace[1].authenticate(header),
            lambda: files.upload_file(caller, rows, "train.jsonl", "fine-tune", None),
            lambda: registry.move_alias("clf", "production", 2, expected_from=1),
        ):
            with pytest.raises(Unavailable, match="cannot be") as down:
                needs_the_database()
            assert down.value.status_code == 503
            assert "psycopg" not in down.value.message and "SELECT" not in down.value.message
        clock.now += 60  # the grace is counted from the last good read: now it is over
        with pytest.raises(Unavailable):
            resolver.resolve("clf", TASK)
    finally:
        relay.restore()

    # back: the same engines reconnect by themselves, and the views are read afresh
    assert registry.move_alias("clf", "production", 2, expected_from=1).to_version == 2
    assert resolver.resolve("clf", TASK).version == 2
    assert no_grace[1].authenticate(header).tenant == "acme"
    assert files.upload_file(caller, rows, "train.jsonl", "fine-tune", None).rows == 2
    registry.engine.dispose()


def test_api_key_reads_do_not_queue_behind_a_sqlite_writer(tmp_path: Path):
    """The gateway re-reads its keys on the requests' path: with a 1 s busy timeout, a read
    that queued for the write lock would fail (and stall every request meanwhile)."""
    url = f"sqlite:///{tmp_path / 'registry.db'}?timeout=1"
    registry = Registry.from_url(url)
    keys = KeyStore(registry.engine)
    info, _ = keys.create("acme", ["inference"])
    with write_lock(url):
        assert list(keys.active()) == [info.id]
        assert [key.id for key in keys.list()] == [info.id]
        with pytest.raises(Unavailable, match="busy"):  # a write still waits, then 503
            keys.create("acme", ["inference"])
    registry.engine.dispose()
