"""A cancel whose grace period is over kills its run: the run's placement group goes, and
nothing of the run training beside it.

App 'killer' at /killer on the session's cluster, with its own registry and job runner: two
jobs at once, no grace, and workers that never look at the cancel flag on their own, so
that every cancel is a kill.
"""

from __future__ import annotations

import time

import httpx
import pytest
import ray
from conftest import wait_until_ready
from test_fine_tuning import _processes, create_job, upload, wait_for
from tuneserve.registry import connect
from tuneserve.serving.app import delete_apps, serve_apps
from tuneserve.zoo.recipes import RECIPES
from tuneserve.zoo.register import register_starter_model


@pytest.fixture(scope="module")
def killer(service, service_settings, starter_models, tmp_path_factory):
    database = tmp_path_factory.mktemp("killer") / "registry.db"
    settings = service_settings.updated(
        auth={"mode": "open"},  # a side app on loopback: no keys
        app_name="killer",
        registry={"database_url": f"sqlite:///{database}"},
        serving={"served_tasks": ["classification"]},
        training={"max_concurrent_jobs": 2, "cancel_grace_s": 0, "check_every_steps": 100_000},
    )
    registry, store = connect(settings.registry)
    register_starter_model(starter_models["sentiment"], settings, registry, store)
    registry.engine.dispose()
    serve_apps(settings, bind_host="127.0.0.1", prefix="/killer")
    with httpx.Client(base_url=f"{service}/killer", timeout=60) as client:
        wait_until_ready(client)
        yield client
    delete_apps(settings)


def _messages(client: httpx.Client, job_id: str) -> list[str]:
    events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100})
    return [event["message"] for event in events.json()["data"]]


def _has_event(client: httpx.Client, job_id: str, prefix: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(m.startswith(prefix) for m in _messages(client, job_id)):
        assert time.monotonic() < deadline, f"{job_id}: no {prefix!r} event in {timeout_s} s"
        time.sleep(0.2)


def test_a_killed_run_frees_its_own_reservation_and_not_its_neighbours(killer):
    free_before = ray.available_resources().get("CPU", 0)
    generate = RECIPES["sentiment"].data.generate
    long_run = create_job(  # one long epoch: at an epoch's end a worker does look
        killer,
        model="sentiment",
        training_file=upload(killer, generate("train", 1500, seed=5)),
        hyperparameters={"n_epochs": 1, "batch_size": 2},
    )
    _has_event(killer, long_run["id"], "first step done")
    # the neighbour's reservation is made after the killed run began: what the runner once
    # released as "made since the run started"
    neighbour = create_job(
        killer,
        model="sentiment",
        training_file=upload(killer, generate("train", 100, seed=6)),
        hyperparameters={"n_epochs": 3, "batch_size": 4},
        promotion={"auto": False},
    )
    _has_event(killer, neighbour["id"], "workers ready")
    assert killer.post(f"/v1/fine_tuning/jobs/{long_run['id']}/cancel").status_code == 200
    killed = wait_for(killer, long_run["id"], timeout_s=60)
    assert killed["status"] == "cancelled", killed["error"]

    finished = wait_for(killer, neighbour["id"])
    assert finished["status"] == "succeeded", finished["error"]
    # untouched, not restarted: losing its reservation would have cost its workers, and
    # Ray Train would have started them again from the last checkpoint
    messages = _messages(killer, neighbour["id"])
    assert len([m for m in messages if m.startswith("workers ready")]) == 1, messages
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < free_before or _processes(
        "ray::TrainController"
    ):
        free = ray.available_resources().get("CPU", 0)
        assert time.monotonic() < deadline, f"{free} CPUs free of {free_before}, or a controller"
        time.sleep(0.2)
