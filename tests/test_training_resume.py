"""A training worker killed mid-epoch: Ray Train restarts it and the job resumes from its
last checkpoint (model, optimizer and schedule), not from step 0."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from conftest import production_copy
from tuneserve.zoo.recipes import RECIPES

MODEL = "resume-sentiment"
SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of registered checkpoints


@pytest.fixture(scope="module")
def model(ready_service, service_settings) -> str:
    return production_copy(service_settings, "sentiment", MODEL, "classification")


def events(http: httpx.Client, job_id: str) -> list[dict]:
    """Every event of the job, oldest first."""
    found, after = [], None
    while True:
        params = {"limit": 100} | ({"after": after} if after else {})
        page = http.get(f"/v1/fine_tuning/jobs/{job_id}/events", params=params).json()
        found += page["data"]
        if not page["has_more"]:
            return found[::-1]
        after = page["data"][-1]["id"]


def training_workers() -> list[int]:
    """Pids of Ray Train worker processes (Ray names each process after its actor)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"RayTrainWorker" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    return pids


def test_a_killed_worker_resumes_from_the_last_checkpoint(http, model, service_settings):
    rows = RECIPES["sentiment"].data.generate("train", 240, seed=31)
    data = "\n".join(json.dumps(r) for r in rows).encode()
    file_id = http.post(
        "/v1/files", files={"file": ("r.jsonl", data)}, data={"purpose": "fine-tune"}
    ).json()["id"]
    job = http.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": model,
            "training_file": file_id,
            "hyperparameters": {"n_epochs": 3, "batch_size": 4, "seed": 5},
            "promotion": {"auto": False},
        },
    ).json()
    steps_per_epoch = -(-(len(rows) - round(0.1 * len(rows))) // 4)  # 10% held out

    # kill once the second epoch is under way and Ray Train has registered epoch 1's
    # checkpoint (its controller records it in this snapshot, polling workers every 2 s)
    snapshot = Path(service_settings.training.checkpoint_url) / job["id"] / SNAPSHOT
    deadline = time.monotonic() + 300
    while not (
        snapshot.is_file()
        and "checkpoint_" in snapshot.read_text()
        and any((e["data"] or {}).get("epoch") == 2 for e in events(http, job["id"]))
    ):
        assert time.monotonic() < deadline, "the job never reached its second epoch"
        time.sleep(0.2)
    workers = training_workers()
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)

    while (done := http.get(f"/v1/fine_tuning/jobs/{job['id']}").json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline + 300, "the job did not finish after the restart"
        time.sleep(0.5)
    assert done["status"] == "succeeded", done["error"]
    history = events(http, job["id"])
    resumed = [e for e in history if (e["data"] or {}).get("resumed_at_step") is not None]
    assert len(resumed) == 1, "\n".join(e["message"] for e in history)
    at = resumed[0]["data"]["resumed_at_step"]
    assert at in (steps_per_epoch, 2 * steps_per_epoch), at  # an epoch's checkpoint
    # after the restart, steps go on from the checkpoint: no step is counted from 0 again
    after = [
        e["data"]["step"] for e in history[history.index(resumed[0]) :] if e["type"] == "metrics"
    ]
    assert after and min(after) > at
    assert sum(m["message"].startswith("first step done") for m in history) == 1
    epochs = [e["data"]["epoch"] for e in history if e["message"].startswith("epoch ")]
    assert epochs[-1] == 3 and done["trained_examples"] == 3 * (len(rows) - 24)
