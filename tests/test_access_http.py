"""Every route × every kind of caller, over real HTTP against the session's service.

Callers: no key, an inference key, fine_tune keys of tenants A and B, and an admin key.
The expected status of each pair is written out below; a route the table does not list
fails the test, so a new route cannot ship without deciding who may call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from tuneserve.zoo.recipes import RECIPES

CALLERS = ("none", "inference", "tenant_a", "tenant_b", "admin")
PUBLIC = dict.fromkeys(CALLERS, 200)
ANY_KEY = {"none": 401, "inference": 200, "tenant_a": 200, "tenant_b": 200, "admin": 200}
INFERENCE = {"none": 401, "inference": 200, "tenant_a": 403, "tenant_b": 403, "admin": 200}
# a fine_tune route on something tenant A owns
OWN_A = {"none": 401, "inference": 403, "tenant_a": 200, "tenant_b": 404, "admin": 200}
FINE_TUNE = {"none": 401, "inference": 403, "tenant_a": 200, "tenant_b": 200, "admin": 200}
ADMIN = {"none": 401, "inference": 403, "tenant_a": 403, "tenant_b": 403, "admin": 200}


@dataclass
class World:
    """What the cases refer to: tenant A's file and job, a model and its production."""

    file_a: str
    job_a: str
    model: str
    production: int
    doomed: dict[str, str]  # per caller, a file of tenant A's that caller tries to delete


@dataclass
class Case:
    method: str
    route: str  # as the OpenAPI document spells it
    expected: dict[str, int]
    path: Callable[[World, str], str] | None = None
    body: Callable[[World, str], dict] | None = None
    upload: bool = False


def _jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


SENTIMENT_ROWS = RECIPES["sentiment"].data.generate("train", 4, seed=1)
NER_ROWS = RECIPES["entities"].data.generate("train", 4, seed=1)

CASES = [
    Case("GET", "/healthz", PUBLIC),
    Case("GET", "/readyz", PUBLIC),
    Case("GET", "/metrics", PUBLIC),
    Case("GET", "/v1/models", ANY_KEY),
    # an import from a folder that does not exist: an admin gets 404, others no say
    Case(
        "POST",
        "/v1/models",
        ADMIN | {"admin": 404},
        body=lambda w, c: {"source": "/absent/model", "name": "never-imported"},
    ),
    Case("GET", "/v1/models/{name}", ANY_KEY, path=lambda w, c: f"/v1/models/{w.model}"),
    Case(
        "GET",
        "/v1/models/{name}/versions",
        ANY_KEY,
        path=lambda w, c: f"/v1/models/{w.model}/versions",
    ),
    # merging a version with weights of its own: an admin gets 400 (nothing to merge)
    Case(
        "POST",
        "/v1/models/{name}/versions/{version}/merge",
        ADMIN | {"admin": 400},
        path=lambda w, c: f"/v1/models/{w.model}/versions/1/merge",
    ),
    Case("POST", "/v1/classify", INFERENCE, body=lambda w, c: {"inputs": "Great."}),
    Case("POST", "/v1/ner", INFERENCE, body=lambda w, c: {"inputs": "Anna flew to Paris."}),
    Case(
        "POST",
        "/v1/qa",
        INFERENCE,
        body=lambda w, c: {"question": "Who?", "context": "Anna did."},
    ),
    Case("POST", "/v1/translate", INFERENCE, body=lambda w, c: {"inputs": "The dog."}),
    Case(
        "POST",
        "/v1/chat/completions",
        INFERENCE,
        body=lambda w, c: {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
    ),
    Case("POST", "/v1/files", FINE_TUNE, upload=True),
    Case("GET", "/v1/files", FINE_TUNE),
    Case("GET", "/v1/files/{file_id}", OWN_A, path=lambda w, c: f"/v1/files/{w.file_a}"),
    # a job on tenant A's file (it fails validation at once: NER rows for a classifier)
    Case(
        "POST",
        "/v1/fine_tuning/jobs",
        OWN_A,
        body=lambda w, c: {
            "model": w.model,
            "training_file": w.file_a,
            "promotion": {"auto": False},
        },
    ),
    Case("GET", "/v1/fine_tuning/jobs", FINE_TUNE),
    Case(
        "GET",
        "/v1/fine_tuning/jobs/{job_id}",
        OWN_A,
        path=lambda w, c: f"/v1/fine_tuning/jobs/{w.job_a}",
    ),
    Case(
        "GET",
        "/v1/fine_tuning/jobs/{job_id}/events",
        OWN_A,
        path=lambda w, c: f"/v1/fine_tuning/jobs/{w.job_a}/events",
    ),
    Case(
        "GET",
        "/v1/fine_tuning/jobs/{job_id}/checkpoints",
        OWN_A,
        path=lambda w, c: f"/v1/fine_tuning/jobs/{w.job_a}/checkpoints",
    ),
    # the job has failed: cancelling it is a 409 for those who may see it
    Case(
        "POST",
        "/v1/fine_tuning/jobs/{job_id}/cancel",
        OWN_A | {"tenant_a": 409, "admin": 409},
        path=lambda w, c: f"/v1/fine_tuning/jobs/{w.job_a}/cancel",
    ),
    # promoting the version already in production changes nothing: safe to repeat
    Case(
        "POST",
        "/v1/models/{name}/promote",
        ADMIN,
        path=lambda w, c: f"/v1/models/{w.model}/promote",
        body=lambda w, c: {"version": w.production},
    ),
    # the model has never moved: an admin gets 404 (nothing to roll back to), others no say
    Case(
        "POST",
        "/v1/models/{name}/rollback",
        ADMIN | {"admin": 404},
        path=lambda w, c: f"/v1/models/{w.model}/rollback",
    ),
    Case("GET", "/v1/admin/keys", ADMIN),
    Case(
        "POST",
        "/v1/admin/keys",
        ADMIN | {"admin": 201},
        body=lambda w, c: {"tenant": "made-by-test", "scopes": ["inference"]},
    ),
    Case(
        "DELETE",
        "/v1/admin/keys/{key_id}",
        ADMIN | {"admin": 404},
        path=lambda w, c: "/v1/admin/keys/key-000000000000000000000000",
    ),
    # each caller tries to delete a file of tenant A's of its own (deleting one twice is 404)
    Case(
        "DELETE",
        "/v1/files/{file_id}",
        OWN_A,
        path=lambda w, c: f"/v1/files/{w.doomed[c]}",
    ),
]
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@pytest.fixture(scope="module")
def clients(ready_service: str, http: httpx.Client):
    """One client per kind of caller, each with a key made through the admin route."""
    scopes = {"inference": ("acme", ["inference"]), "tenant_a": ("tenant-a", ["fine_tune"])}
    scopes |= {"tenant_b": ("tenant-b", ["fine_tune"])}
    made = {}
    for caller, (tenant, scope) in scopes.items():
        response = http.post("/v1/admin/keys", json={"tenant": tenant, "scopes": scope})
        assert response.status_code == 201, response.text
        made[caller] = {"Authorization": f"Bearer {response.json()['key']}"}
    made |= {"none": {}, "admin": dict(http.headers)}
    opened = {
        c: httpx.Client(base_url=ready_service, timeout=120, headers=h) for c, h in made.items()
    }
    yield opened
    for client in opened.values():
        client.close()


def _upload(client: httpx.Client, rows: list[dict]) -> httpx.Response:
    files = {"file": ("rows.jsonl", _jsonl(rows))}
    return client.post("/v1/files", files=files, data={"purpose": "fine-tune"})


@pytest.fixture(scope="module")
def world(clients: dict[str, httpx.Client], service_settings) -> World:
    """Tenant A's file (NER rows) and a job on it that fails validation without training."""
    a = clients["tenant_a"]
    file_a = _upload(a, NER_ROWS).json()["id"]
    job = a.post(
        "/v1/fine_tuning/jobs",
        json={"model": "sentiment", "training_file": file_a, "promotion": {"auto": False}},
    )
    assert job.status_code == 200, job.text
    production = clients["admin"].get("/v1/models/sentiment").json()["aliases"]["production"]
    doomed = {caller: _upload(a, SENTIMENT_ROWS).json()["id"] for caller in CALLERS}
    return World(file_a, job.json()["id"], "sentiment", production, doomed)


def _wait_until_finished(client: httpx.Client, job_id: str) -> None:
    for _ in range(600):
        if client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] in (
            "failed",
            "succeeded",
            "cancelled",
        ):
            return
        client.get("/readyz")  # a real round trip between polls, no sleep
    raise AssertionError(f"job {job_id} did not finish")


def _call(client: httpx.Client, case: Case, world: World, caller: str) -> httpx.Response:
    path = case.path(world, caller) if case.path else case.route
    if case.upload:
        return _upload(client, SENTIMENT_ROWS)
    body = case.body(world, caller) if case.body else None
    return client.request(case.method, path, json=body)


def test_the_matrix_covers_every_route_of_the_api(clients):
    response = clients["admin"].get("/openapi.json")
    assert response.status_code == 200, response.text
    spec = response.json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    listed = {(case.method, case.route) for case in CASES}
    assert routes - listed == set(), "routes without a row in the access matrix"
    assert listed - routes == set()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_every_route_for_every_caller(clients, world):
    _wait_until_finished(clients["admin"], world.job_a)
    wrong = []
    for case in CASES:
        for caller in CALLERS:
            response = _call(clients[caller], case, world, caller)
            expected = case.expected[caller]
            if response.status_code != expected:
                wrong.append(
                    f"{case.method} {case.route} as {caller}: {response.status_code} "
                    f"(expected {expected}) {response.text[:200]}"
                )
            elif response.status_code in (401, 403):
                error = response.json()["error"]
                assert error["type"] in ("authentication_error", "permission_error"), error
                if response.status_code == 401:
                    assert response.headers["www-authenticate"] == "Bearer"
    assert wrong == [], "\n".join(wrong)


def test_a_tenant_lists_only_its_own_files_and_jobs(clients, world):
    a_files = {f["id"] for f in clients["tenant_a"].get("/v1/files").json()["data"]}
    b_files = {f["id"] for f in clients["tenant_b"].get("/v1/files").json()["data"]}
    all_files = {f["id"] for f in clients["admin"].get("/v1/files").json()["data"]}
    assert a_files and b_files and not a_files & b_files and a_files | b_files <= all_files
    a_jobs = clients["tenant_a"].get("/v1/fine_tuning/jobs", params={"limit": 100}).json()
    assert {j["organization_id"] for j in a_jobs["data"]} == {"tenant-a"}
    assert clients["tenant_b"].get("/v1/fine_tuning/jobs").json()["data"] == []


def test_moving_production_needs_admin_and_the_gate_cannot_be_negative(clients, world):
    a = clients["tenant_a"]
    file_a = _upload(a, SENTIMENT_ROWS).json()["id"]
    body = {"model": "sentiment", "training_file": file_a}
    auto = a.post("/v1/fine_tuning/jobs", json=body | {"promotion": {"auto": True}})
    assert auto.status_code == 403 and "admin" in auto.json()["error"]["message"]
    for caller in ("tenant_a", "admin"):
        negative = clients[caller].post(
            "/v1/fine_tuning/jobs", json=body | {"promotion": {"min_delta": -1}}
        )
        assert negative.status_code == 422, negative.text
        assert negative.json()["error"]["param"] == "promotion.min_delta"
    # B cannot train on A's file: it does not exist for B
    stolen = clients["tenant_b"].post("/v1/fine_tuning/jobs", json=body)
    assert stolen.status_code == 404 and stolen.json()["error"]["param"] == "file_id"


def test_a_revoked_key_is_refused(clients, http, ready_service):
    made = http.post("/v1/admin/keys", json={"tenant": "short-lived", "scopes": ["inference"]})
    key = made.json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    with httpx.Client(base_url=ready_service, timeout=60, headers=headers) as client:
        assert client.get("/v1/models").status_code == 200
        assert http.delete(f"/v1/admin/keys/{key['id']}").json()["revoked_at"] is not None
        # the gateways' copy of the keys lives auth.key_cache_ttl_s (5 s): poll, no sleep
        for _ in range(10_000):
            if client.get("/v1/models").status_code == 401:
                break
        else:
            raise AssertionError("a revoked key still works")
