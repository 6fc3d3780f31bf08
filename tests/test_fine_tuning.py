"""Fine-tuning end to end over HTTP: files, jobs on Ray Train, evaluation, gate, promotion.

Jobs cost ≈10–30 s each here, so a module fixture creates the five per-task jobs at once
(they queue and run one after another) and the tests share them. They fine-tune copies of
the starter models ("ft-…"), so the serving tests keep their own production versions.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
import ray
from conftest import production_copy
from tuneserve.serving.names import task_app_name, task_server_name
from tuneserve.tasks.handlers.variants import served_variant
from tuneserve.zoo.recipes import RECIPES

TERMINAL = {"succeeded", "failed", "cancelled"}
ROUTES = {
    "classification": ("/v1/classify", {"inputs": "Great."}),
    "ner": ("/v1/ner", {"inputs": "Anna flew to Paris."}),
    "qa": ("/v1/qa", {"question": "Who?", "context": "Anna did."}),
    "translation": ("/v1/translate", {"inputs": "The dog sees the ball."}),
    "chat": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3},
    ),
}


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


def upload(http: httpx.Client, rows: list[dict], name: str = "train.jsonl") -> str:
    response = http.post(
        "/v1/files", files={"file": (name, jsonl(rows))}, data={"purpose": "fine-tune"}
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def create_job(http: httpx.Client, **body) -> dict:
    response = http.post("/v1/fine_tuning/jobs", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(http: httpx.Client, job_id: str, statuses=TERMINAL, timeout_s: float = 600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")


@pytest.fixture(scope="module")
def copies(ready_service, service_settings, starter_models) -> dict[str, str]:
    """task → name of an 'ft-' copy of that task's starter model, version 1 = production."""
    return {
        report.task: production_copy(service_settings, name, f"ft-{name}", report.task)
        for name, report in starter_models.items()
    }


def labels_production_gets_wrong(http: httpx.Client, model: str, rows: list[dict]) -> list[dict]:
    """``rows`` relabelled with the label production does not predict: production scores
    exactly 0 on them, so any candidate passes a gate of ``min_delta`` 0."""
    texts = [row["text"] for row in rows]
    results = http.post("/v1/classify", json={"model": model, "inputs": texts}).json()["results"]
    other = {"positive": "negative", "negative": "positive"}
    return [{"text": t, "label": other[r["label"]]} for t, r in zip(texts, results, strict=True)]


@pytest.fixture(scope="module")
def task_jobs(http, copies) -> dict[str, dict]:
    """One small job per task, all created up front; values are the finished jobs.

    The classification job promotes itself through the gate (validated on rows production
    gets all wrong, so the gate passes whatever the candidate scores); the others are
    promoted by hand once finished: serving the new version is the point.
    """
    created = {}
    for recipe in RECIPES.values():
        rows = recipe.data.generate("train", 40, seed=21)
        gate: dict = {"promotion": {"auto": False}}
        if recipe.task == "classification":
            heldout = recipe.data.generate("heldout", 16, seed=21)
            wrong = labels_production_gets_wrong(http, copies[recipe.task], heldout)
            gate = {"promotion": {"min_delta": 0}, "validation_file": upload(http, wrong)}
        created[recipe.task] = create_job(
            http,
            model=copies[recipe.task],
            training_file=upload(http, rows),
            hyperparameters={"n_epochs": 1, "batch_size": 8, "seed": 3},
            **gate,
        )
    finished = {task: wait_for(http, job["id"]) for task, job in created.items()}
    for task, job in finished.items():
        if task != "classification" and job["status"] == "succeeded":
            version = job["result"]["candidate_version"]
            promoted = http.post(f"/v1/models/{copies[task]}/promote", json={"version": version})
            assert promoted.status_code == 200, promoted.text
    return finished


@pytest.mark.parametrize("task", list(ROUTES))
def test_each_task_fine_tunes_and_serves_the_new_version(
    http, task_jobs, copies, task, service_settings
):
    job = task_jobs[task]
    assert job["status"] == "succeeded", job["error"]
    name = copies[task]
    assert job["fine_tuned_model"] == f"{name}@2" and job["task"] == task
    assert job["result"]["candidate_version"] == 2
    assert job["result"]["promoted"] is (task == "classification")
    assert job["trained_tokens"] > 0 and job["trained_examples"] > 0
    route, body = ROUTES[task]
    served = http.post(route, json={**body, "model": name}).json()
    assert served["version"] == 2
    versions = http.get(f"/v1/models/{name}/versions").json()["data"]
    new = versions[-1]
    assert new["aliases"] == ["candidate", "production"] and new["base_version"] == 1
    assert new["lineage"]["job"] == job["id"] and new["metrics"]
    # the candidate's variants were verified on the validation rows; the fastest that passed
    # serves (else fp32)
    variants = service_settings.tasks.variants
    if task in variants.tasks:
        assert set(new["variants"]) == set(variants.kinds)
        for verdict in new["variants"].values():
            assert verdict["items"] > 0 and 0 <= verdict["agreement"] <= 1
            assert verdict["speedup"] > 0
        assert served["variant"] == served_variant(new["variants"])
        events = http.get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 100})
        assert any(e["message"].startswith("variants: int8") for e in events.json()["data"])
    else:
        assert new["variants"] == {}
        assert served.get("variant", "fp32") == "fp32"  # chat answers in OpenAI's shape
    events = http.get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 100}).json()
    messages = [event["message"] for event in events["data"]]
    assert any(m.startswith("epoch 1 done") for m in messages)
    gate = "promoted" if task == "classification" else "not promoted"
    assert any(m.startswith(f"{gate}: ") for m in messages), messages
    checkpoints = http.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    assert checkpoints and checkpoints[0]["metrics"]["epoch"] == 1


def test_wrong_labels_are_evaluated_and_not_promoted(http, copies, task_jobs):
    name = copies["classification"]
    production = http.get(f"/v1/models/{name}").json()["aliases"]["production"]
    rows = RECIPES["sentiment"].data.generate("train", 80, seed=8)
    flipped = [
        {"text": r["text"], "label": "negative" if r["label"] == "positive" else "positive"}
        for r in rows
    ]
    validation = upload(http, RECIPES["sentiment"].data.generate("heldout", 40, seed=8))
    job = wait_for(
        http,
        create_job(
            http,
            model=name,
            training_file=upload(http, flipped),
            validation_file=validation,
            hyperparameters={"n_epochs": 3, "batch_size": 8, "learning_rate": 3e-4},
        )["id"],
    )
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["promoted"] is False and "does not beat" in result["reason"]
    assert result["candidate_metrics"]["accuracy"] < result["production_metrics"]["accuracy"]
    aliases = http.get(f"/v1/models/{name}").json()["aliases"]
    assert aliases["production"] == production
    assert aliases["candidate"] == result["candidate_version"]


def test_resource_errors_fail_fast(http, copies):
    file_id = upload(http, RECIPES["sentiment"].data.generate("train", 20, seed=1))
    for hyper, param in (
        ({"use_gpu": True}, "hyperparameters.use_gpu"),
        ({"num_workers": 64}, "hyperparameters.num_workers"),
    ):
        started = time.monotonic()
        job = wait_for(
            http,
            create_job(
                http, model=copies["classification"], training_file=file_id, hyperparameters=hyper
            )["id"],
        )
        assert job["status"] == "failed"
        assert job["error"]["code"] == "resource_unavailable"
        assert job["error"]["param"] == param
        assert time.monotonic() - started < 60


def _processes(title: str) -> set[int]:
    """Ids of this machine's processes whose command line (Ray's process title) holds
    ``title``."""
    table = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in table.splitlines() if title in line}


def test_cancel_stops_training_and_frees_the_cluster(http, copies, task_jobs):
    free_before = ray.available_resources().get("CPU", 0)
    file_id = upload(http, RECIPES["sentiment"].data.generate("train", 200, seed=2))
    job = create_job(
        http,
        model=copies["classification"],
        training_file=file_id,
        hyperparameters={"n_epochs": 50, "batch_size": 4},
    )
    wait_for(http, job["id"], statuses={"running"})
    deadline = time.monotonic() + 120
    while not any(
        "step" in (e["data"] or {})
        for e in http.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    ):
        assert time.monotonic() < deadline, "training never reached a step"
        time.sleep(0.2)
    (host,) = _processes("ray::FitHost.fit")  # the process that called Ray Train's fit
    assert http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").status_code == 200
    cancelled_at = time.monotonic()
    assert wait_for(http, job["id"], timeout_s=30)["status"] == "cancelled"
    while (
        ray.available_resources().get("CPU", 0) < free_before
        or _processes("RayTrainWorker")
        or host in _processes("ray::FitHost")  # the run's host goes with it
    ):
        assert time.monotonic() - cancelled_at < 10, "resources not back within 10 s"
        time.sleep(0.1)
    assert not _processes("ray::FitHost.fit")
    again = http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    # and a warm host (its imports done: Ray names the process once the class is loaded)
    # waits for the next run
    while not _processes("ray::FitHost") - {host}:
        assert time.monotonic() - cancelled_at < 60, "no warm host for the next run"
        time.sleep(0.2)


def test_two_worker_ddp_job(http, copies, task_jobs):
    file_id = upload(http, RECIPES["entities"].data.generate("train", 40, seed=4))
    job = wait_for(
        http,
        create_job(
            http,
            model=copies["ner"],
            training_file=file_id,
            hyperparameters={"n_epochs": 1, "batch_size": 4, "num_workers": 2},
            promotion={"auto": False},
        )["id"],
    )
    assert job["status"] == "succeeded", job["error"]
    assert "automatic promotion is off" in job["result"]["reason"] or not job["result"]["promoted"]


@pytest.mark.parametrize(
    ("name", "content", "status", "needle"),
    [
        ("rows.txt", b'{"text": "a", "label": "positive"}', 400, "not an accepted training file"),
        ("rows.jsonl", b"", 400, "no rows"),
        ("rows.jsonl", b'{"text": "caf\xe9", "label": "positive"}', 400, "UTF-8"),
        ("rows.jsonl", b'{"text": "ok", "label": "positive"}\n{"text": oops}\n', 400, "line 2"),
        ("rows.jsonl", b'{"text": "ok"}\n', 400, "label"),
        ("rows.jsonl", b"x" * (300 * 1024), 413, "bytes"),
    ],
)
def test_bad_files_get_a_4xx_naming_line_and_field(
    http, ready_service, name, content, status, needle
):
    response = http.post(
        "/v1/files", files={"file": (name, content)}, data={"purpose": "fine-tune"}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["param"] == "file"


def test_bad_file_errors_list_every_row_and_purpose_is_checked(http, ready_service):
    rows = b'{"text": "ok", "label": "positive"}\n{"text": 5, "label": "x"}\n\n{"text": "a"}\n'
    error = http.post(
        "/v1/files", files={"file": ("r.jsonl", rows)}, data={"purpose": "fine-tune"}
    ).json()["error"]
    assert [(d["line"], d["field"]) for d in error["details"]] == [(2, "text"), (4, "label")]
    wrong = http.post("/v1/files", files={"file": ("r.jsonl", rows)}, data={"purpose": "x"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "purpose"


def test_files_are_listed_retrieved_and_deleted_but_not_while_in_use(http, copies):
    file_id = upload(http, RECIPES["sentiment"].data.generate("train", 30, seed=6), "s.jsonl")
    info = http.get(f"/v1/files/{file_id}").json()
    assert info["rows"] == 30 and info["task"] == "classification"
    assert info["labels"] == ["negative", "positive"] and len(info["sha256"]) == 64
    assert file_id in [f["id"] for f in http.get("/v1/files").json()["data"]]
    job = create_job(
        http, model=copies["classification"], training_file=file_id, hyperparameters={"n_epochs": 1}
    )
    busy = http.delete(f"/v1/files/{file_id}")
    assert busy.status_code == 409 and job["id"] in busy.json()["error"]["message"]
    # a job that ended, however it ended, no longer holds its file
    assert http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").status_code == 200
    assert wait_for(http, job["id"])["status"] == "cancelled"
    assert http.delete(f"/v1/files/{file_id}").json() == {
        "id": file_id,
        "object": "file",
        "deleted": True,
    }
    assert http.get(f"/v1/files/{file_id}").status_code == 404


def test_job_requests_are_validated(http, copies):
    file_id = upload(http, RECIPES["sentiment"].data.generate("train", 10, seed=7))
    cases = [
        ({"model": "nope", "training_file": file_id}, 404, "model"),
        ({"model": copies["classification"], "training_file": "file-missing"}, 404, "file_id"),
        (
            {
                "model": copies["classification"],
                "training_file": file_id,
                "hyperparameters": {"n_epochs": 0},
            },
            422,
            "hyperparameters.n_epochs",
        ),
        ({"model": copies["classification"], "training_file": file_id, "task": "ner"}, 400, "task"),
    ]
    for body, status, param in cases:
        response = http.post("/v1/fine_tuning/jobs", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["param"] == param
    ner_rows = upload(http, RECIPES["entities"].data.generate("train", 10, seed=7))
    job = wait_for(
        http, create_job(http, model=copies["classification"], training_file=ner_rows)["id"]
    )
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_file"


def test_openai_sdk_drives_files_and_jobs(ready_service, http, admin_key, copies, task_jobs):
    from openai import OpenAI

    client = OpenAI(base_url=f"{ready_service}/v1", api_key=admin_key)
    rows = jsonl(RECIPES["sentiment"].data.generate("train", 24, seed=9))
    uploaded = client.files.create(file=("sdk.jsonl", rows), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(rows)
    job = client.fine_tuning.jobs.create(
        model=copies["classification"],
        training_file=uploaded.id,
        suffix="sdk",
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 8}},
        },
    )
    assert job.id.startswith("ftjob-") and job.hyperparameters.n_epochs == 1
    assert client.fine_tuning.jobs.retrieve(job.id).user_provided_suffix == "sdk"
    listed = [j.id for j in client.fine_tuning.jobs.list(limit=2)]  # auto-paginates
    assert job.id in listed and len(listed) == len(set(listed)) > 2
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status in {"cancelled", "running", "queued", "validating_files"}
    wait_for(http, job.id)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=2))
    assert any("cancel" in event.message for event in events)


def _replica_ids(task: str) -> set[str]:
    from ray import serve

    handle = serve.get_deployment_handle(
        task_server_name(task), app_name=task_app_name("tuneserve", task)
    )
    return {info["replica_id"] for info in handle.broadcast("info").results(timeout_s=60)}


class Load:
    """Continuous concurrent requests to one model, recording every answer."""

    def __init__(self, url: str, model: str, headers: dict[str, str], threads: int = 6):
        import threading

        self.url, self.model, self.headers, self.answers = url, model, headers, []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60, headers=self.headers) as client:
            for _ in range(10_000):  # bounded; stopped long before
                if self.stop.is_set():
                    return
                response = client.post(
                    "/v1/classify", json={"inputs": "A fine film.", "model": self.model}
                )
                version = response.json().get("version") if response.status_code == 200 else None
                self.answers.append((time.monotonic(), response.status_code, version))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def wait_for_version(self, version: int, after: float, timeout_s: float = 30) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            served = [a for a in self.answers if a[0] > after]
            if len(served) >= 20 and all(v == version for _, _, v in served[-20:]):
                return min(t for t, _, v in served if v == version)
            time.sleep(0.05)
        raise AssertionError(f"responses never settled on version {version}")


def test_hot_swap_under_load_drops_nothing_and_keeps_replicas(
    ready_service, http, copies, task_jobs
):
    name = copies["classification"]
    aliases = http.get(f"/v1/models/{name}").json()["aliases"]
    old = aliases["production"]
    new = 1 if old != 1 else 2
    replicas = _replica_ids("classification")
    assert len(replicas) == 2
    with Load(ready_service, name, dict(http.headers)) as load:
        load.wait_for_version(old, after=0)
        started = time.monotonic()
        swap = http.post(f"/v1/models/{name}/promote", json={"version": new})
        assert swap.status_code == 200, swap.text
        assert swap.json()["from_version"] == old and swap.json()["to_version"] == new
        load.wait_for_version(new, after=started)
        stale = http.post(f"/v1/models/{name}/promote", json={"version": old, "expected_from": old})
        assert stale.status_code == 409
        rolled_at = time.monotonic()
        back = http.post(f"/v1/models/{name}/rollback")
        assert back.status_code == 200 and back.json()["to_version"] == old
        load.wait_for_version(old, after=rolled_at)
    statuses = {status for _, status, _ in load.answers}
    assert statuses == {200}, f"failed requests during swaps: {statuses}"
    versions = [v for _, _, v in load.answers]
    assert versions.count(new) > 0 and versions[-1] == old
    assert _replica_ids("classification") == replicas  # nothing restarted
    assert http.get(f"/v1/models/{name}").json()["aliases"]["production"] == old


def test_new_labels_are_refused_unless_declared_then_served(http, copies, task_jobs):
    name = copies["classification"]
    rows = RECIPES["sentiment"].data.generate("train", 40, seed=12) + [
        {"text": f"The {thing} was okay, neither good nor bad.", "label": "neutral"}
        for thing in ("film", "meal", "book", "hotel", "album", "show", "game", "phone") * 2
    ]
    file_id = upload(http, rows)
    refused = wait_for(
        http,
        create_job(http, model=name, training_file=file_id, hyperparameters={"n_epochs": 1})["id"],
    )
    assert refused["status"] == "failed" and refused["error"]["code"] == "invalid_labels"
    assert "neutral" in refused["error"]["message"]
    job = wait_for(
        http,
        create_job(
            http,
            model=name,
            training_file=file_id,
            promotion={"auto": False},
            hyperparameters={"n_epochs": 2, "batch_size": 8, "allow_new_labels": True},
        )["id"],
    )
    assert job["status"] == "succeeded", job["error"]
    version = job["result"]["candidate_version"]
    served = http.post(
        "/v1/classify",
        json={
            "inputs": "The meal was okay, neither good nor bad.",
            "model": f"{name}@{version}",
            "top_k": 3,
        },
    ).json()
    assert served["version"] == version
    assert {s["label"] for s in served["results"][0]["top"]} == {"negative", "positive", "neutral"}
