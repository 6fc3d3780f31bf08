"""Readiness and overload, on a second Serve app with tight limits and its own registry."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ray import serve
from tuneserve.registry import connect
from tuneserve.serving.app import build_apps, delete_apps, serve_apps
from tuneserve.zoo.register import register_starter_model


@pytest.fixture(scope="module")
def limited(service, service_settings, starter_models, tmp_path_factory):
    """App 'limited' at /limited: classification only, max_ongoing 1, max_queued 1.

    Its registry database is write-locked while the app starts, so its task server cannot
    load a model yet: readiness must be observably false, deterministically.
    """
    database = tmp_path_factory.mktemp("limited") / "registry.db"
    settings = service_settings.updated(
        auth={"mode": "open"},  # a side app on loopback: no keys
        app_name="limited",
        registry={"database_url": f"sqlite:///{database}"},
        serving={
            "served_tasks": ["classification"],
            "task_overrides": {
                "classification": {"max_ongoing_requests": 1, "max_queued_requests": 1}
            },
        },
    )
    registry, store = connect(settings.registry)
    register_starter_model(starter_models["sentiment"], settings, registry, store)
    registry.engine.dispose()
    apps = build_apps(settings, bind_host="127.0.0.1", prefix="/limited")  # before the lock
    lock = sqlite3.connect(database, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    serve.run_many([serve.RunTarget(a.app, name=a.name, route_prefix=a.route_prefix) for a in apps])
    yield {"url": f"{service}/limited", "lock": lock}
    delete_apps(settings)


def test_readyz_is_false_until_production_models_are_loaded(limited):
    with httpx.Client(base_url=limited["url"], timeout=30) as client:
        loading = client.get("/readyz")
        assert loading.status_code == 503
        assert loading.json()["ready"] is False
        assert loading.json()["tasks"] == {"classification": False}
        assert loading.json()["waiting_for"] == {
            "classification": ["the production versions of the classification models (loading)"]
        }
        limited["lock"].rollback()  # the database frees up; the model can load now
        limited["lock"].close()
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.1)
        assert client.get("/readyz").json()["ready"] is True


def test_overload_is_a_503_with_retry_after_never_a_500(limited):
    def call(_: int) -> httpx.Response:
        with httpx.Client(base_url=limited["url"], timeout=60) as client:
            return client.post("/v1/classify", json={"inputs": ["A long enough review."] * 16})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(call, range(20)))
    statuses = [r.status_code for r in responses]
    assert 500 not in statuses
    assert set(statuses) <= {200, 503}
    rejected = [r for r in responses if r.status_code == 503]
    assert rejected, f"no request was turned away: {statuses}"
    for response in rejected:
        assert response.headers.get("Retry-After") == "1", (response.headers, response.text)
        assert response.json()["error"]["type"] == "service_unavailable"
    assert statuses.count(200) >= 1


@pytest.fixture(scope="module")
def empty(service, service_settings, tmp_path_factory):
    """App 'empty' at /empty: classification, on a registry that holds no model yet."""
    settings = service_settings.updated(
        auth={"mode": "open"},  # a side app on loopback: no keys
        app_name="empty",
        registry={"database_url": f"sqlite:///{tmp_path_factory.mktemp('empty') / 'r.db'}"},
        serving={"served_tasks": ["classification"]},
    )
    serve_apps(settings, bind_host="127.0.0.1", prefix="/empty")
    yield {"url": f"{service}/empty", "settings": settings}
    delete_apps(settings)


def test_a_task_with_no_production_model_is_not_ready_until_one_is_registered(
    empty, starter_models
):
    """A task server that has nothing to serve says so (it used to report ready); it looks
    again at each probe, so models registered later are loaded without a restart."""
    with httpx.Client(base_url=empty["url"], timeout=30) as client:
        deadline = time.monotonic() + 60
        while "(loading)" in str(client.get("/readyz").json().get("waiting_for")):
            assert time.monotonic() < deadline, "start-up never finished"
            time.sleep(0.1)
        waiting = client.get("/readyz")
        assert waiting.status_code == 503
        assert waiting.json()["waiting_for"] == {
            "classification": [
                "a production version of a classification model (none is registered)"
            ]
        }
        registry, store = connect(empty["settings"].registry)
        register_starter_model(starter_models["sentiment"], empty["settings"], registry, store)
        registry.engine.dispose()
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline + 60, client.get("/readyz").text
            time.sleep(0.2)
        answer = client.post("/v1/classify", json={"inputs": "Great."})
        assert answer.status_code == 200 and answer.json()["model"] == "sentiment"
