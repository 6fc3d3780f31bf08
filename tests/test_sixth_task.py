"""A task defined only in the test package is served, fine-tuned, evaluated and promoted.

It is registered by one setting (``task_modules``) on a second Serve app with its own
registry; no file of tuneserve names it.
"""

from __future__ import annotations

import json

import httpx
import pytest
import sixth_task
from conftest import wait_until_ready
from tuneserve.registry import connect, weights_sha256
from tuneserve.settings import Settings

APP = "extended"


@pytest.fixture(scope="module")
def extended(service, service_settings: Settings, tmp_path_factory) -> str:
    """App 'extended' at /extended serving only the plug-in task, model 'similarity' v1."""
    from tuneserve.serving.app import delete_apps, serve_apps

    folder = tmp_path_factory.mktemp(APP)
    settings = service_settings.updated(
        auth={"mode": "open"},  # a side app on loopback: no keys
        app_name=APP,
        registry={"database_url": f"sqlite:///{folder / 'registry.db'}"},
        tasks={"modules": ["sixth_task"]},  # the one line that registers the task
        serving={"served_tasks": ["similarity"], "task_overrides": {}},
    )
    sixth_task.base_model(settings.zoo.resolved_encoder_base(), folder / "base")
    registry, store = connect(settings.registry)
    registry.create_model("similarity", "similarity", "sentence-pair similarity (test task)")
    version = registry.register_version(
        "similarity",
        artifact_uri=store.put_dir(folder / "base", "similarity/base"),
        sha256=weights_sha256(folder / "base"),
        metrics={},
    )
    registry.move_alias("similarity", "production", version.version, None)
    registry.engine.dispose()
    serve_apps(settings, bind_host="127.0.0.1", prefix=f"/{APP}")
    url = f"{service}/{APP}"
    with httpx.Client(base_url=url, timeout=60) as client:
        wait_until_ready(client)
    yield url
    delete_apps(settings)


@pytest.fixture(scope="module")
def client(extended: str):
    with httpx.Client(base_url=extended, timeout=120) as http:
        yield http


PAIR = {"text_a": "A man is playing the guitar.", "text_b": "A man plays a guitar."}


def test_the_sixth_task_has_a_generated_route(client):
    served = client.post("/v1/similarity", json={"inputs": [PAIR, PAIR]})
    assert served.status_code == 200, served.text
    body = served.json()
    assert (body["model"], body["version"]) == ("similarity", 1)
    assert len(body["results"]) == 2 and 0 <= body["results"][0]["score"] <= 1
    schema = client.get("/openapi.json").json()
    assert "/v1/similarity" in schema["paths"] and "/v1/classify" in schema["paths"]
    assert client.get("/readyz").json()["tasks"] == {"similarity": True}


def test_the_sixth_task_validates_its_request(client):
    missing = client.post("/v1/similarity", json={"inputs": [{"text_a": "only one"}]})
    assert missing.status_code == 422
    assert missing.json()["error"]["param"] == "inputs.0.text_b"
    wrong_task = client.post("/v1/similarity", json={"model": "nope", "inputs": [PAIR]})
    assert wrong_task.status_code == 404


def test_the_sixth_task_fine_tunes_evaluates_and_promotes(client):
    def upload(rows: list[dict], name: str) -> dict:
        data = "\n".join(json.dumps(r) for r in rows).encode()
        response = client.post(
            "/v1/files", files={"file": (name, data)}, data={"purpose": "fine-tune"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    train = upload(sixth_task.pairs(150, seed=1), "pairs.jsonl")
    assert train["task"] == "similarity"  # inferred from the rows' fields
    bad = client.post(
        "/v1/files",
        files={"file": ("bad.jsonl", b'{"text_a": "x", "text_b": "y", "score": 3}\n')},
        data={"purpose": "fine-tune"},
    )
    assert bad.status_code == 400 and "line 1" in bad.json()["error"]["message"]
    validation = upload(sixth_task.pairs(45, seed=2), "heldout.jsonl")
    created = client.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": "similarity",
            "training_file": train["id"],
            "validation_file": validation["id"],
            "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate": 1e-4},
        },
    )
    assert created.status_code == 200, created.text
    job = wait_for_job(client, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["metric"] == "pearson" and result["promoted"] is True, result["reason"]
    assert result["candidate_metrics"]["pearson"] > result["production_metrics"]["pearson"]
    assert result["candidate_metrics"]["pearson"] > 0.5
    served = client.post("/v1/similarity", json={"inputs": [PAIR]}).json()
    assert served["version"] == 2
    versions = client.get("/v1/models/similarity/versions").json()["data"]
    assert versions[-1]["aliases"] == ["candidate", "production"]
    assert versions[-1]["lineage"]["hyperparameters"]["n_epochs"] == 3


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 600) -> dict:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")
