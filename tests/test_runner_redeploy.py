"""The detached JobRunner follows the deployment's settings: a redeploy that changes them
replaces it, at once when idle and only after its running job when busy. Killed mid-job,
it is restarted by Ray: the interrupted job ends cleanly and the queue goes on."""

from __future__ import annotations

import re
import time

import httpx
import ray
from conftest import production_copy
from test_fine_tuning import create_job, upload, wait_for
from tuneserve.serving.fleet import ServePromoter
from tuneserve.training.identity import RUNNER_NAME
from tuneserve.training.runner import get_or_start_runner
from tuneserve.zoo.recipes import RECIPES

MODEL = "redeploy-sentiment"
KILLED = "killed-runner-sentiment"


def _runner_print(http) -> str:
    return http.get("/readyz").json()["job_runner"]["settings_fingerprint"]


def test_changed_settings_replace_the_runner_but_never_mid_job(
    ready_service, http, service_settings
):
    production_copy(service_settings, "sentiment", MODEL, "classification")
    deployed = service_settings.fingerprint()
    assert _runner_print(http) == deployed  # /readyz states the runner's settings

    # a redeploy with other settings while the runner trains (Ray Train takes seconds to
    # start its worker, so the job is still running when the redeploy comes): it finishes first
    redeployed = service_settings.updated(training={"check_every_steps": 3})
    rows = RECIPES["sentiment"].data.generate("train", 16, seed=5)
    job = create_job(
        http,
        model=MODEL,
        training_file=upload(http, rows),
        hyperparameters={"n_epochs": 1, "batch_size": 8},
        promotion={"auto": False},
    )
    wait_for(http, job["id"], statuses={"running"})
    busy = get_or_start_runner(redeployed, ServePromoter(redeployed))
    state = ray.get(busy.state.remote())
    assert state["settings_fingerprint"] == deployed
    assert state["retiring"] is True and state["running"] == [job["id"]]
    assert wait_for(http, job["id"])["status"] == "succeeded"

    # idle now: the next call replaces it with a runner of the new settings
    replaced = get_or_start_runner(redeployed, ServePromoter(redeployed))
    assert ray.get(replaced.state.remote())["settings_fingerprint"] == redeployed.fingerprint()
    # and the deployed gateway, on its next readiness probes, puts its own settings back
    # (a probe may find the new runner still starting: it says so, and the next one sees it)
    deadline = time.monotonic() + 60
    while (runner := http.get("/readyz").json()["job_runner"]).get("settings_fingerprint") != (
        deployed
    ):
        assert time.monotonic() < deadline, runner
        time.sleep(0.5)


def test_a_runner_killed_mid_job_is_restarted_and_the_queue_goes_on(
    ready_service, http, service_settings
):
    """``ray.kill`` the runner while a job trains, letting Ray restart it (as a crash of its
    process would): the interrupted job ends in a clean state, the queued one succeeds."""
    production_copy(service_settings, "sentiment", KILLED, "classification")
    file_id = upload(http, RECIPES["sentiment"].data.generate("train", 16, seed=11))
    body = {
        "model": KILLED,
        "training_file": file_id,
        "hyperparameters": {"n_epochs": 1, "batch_size": 8},
        "promotion": {"auto": False},
    }
    free_before = ray.available_resources().get("CPU", 0)
    interrupted, queued = create_job(http, **body), create_job(http, **body)
    wait_for(http, interrupted["id"], statuses={"running"})
    runner = ray.get_actor(RUNNER_NAME, namespace=service_settings.app_name)
    killed_at = time.monotonic()
    ray.kill(runner, no_restart=False)

    while True:  # the same actor, restarted by Ray; calls fail while it restarts
        try:
            ray.get(runner.state.remote(), timeout=10)
            break
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
            assert time.monotonic() - killed_at < 120, "the runner was not restarted"
            time.sleep(0.2)
    answering = time.monotonic() - killed_at
    ended = wait_for(http, interrupted["id"])
    assert ended["status"] in {"failed", "succeeded"}, ended
    if ended["status"] == "failed":  # a clean code and our message, no exception text
        assert ended["error"]["code"] == "interrupted", ended["error"]
        assert "Error" not in ended["error"]["message"]
    finished = wait_for(http, queued["id"])
    assert finished["status"] == "succeeded", finished["error"]
    events = http.get(f"/v1/fine_tuning/jobs/{queued['id']}/events", params={"limit": 100})
    # the training workers' own events, which reach the registry through the runner
    assert any(e["message"].startswith("epoch 1 done") for e in events.json()["data"])
    recovered = time.monotonic() - killed_at
    # the killed runner's training went with it: its workers hold no CPU any more
    while ray.available_resources().get("CPU", 0) < free_before:
        assert time.monotonic() - killed_at < recovered + 30, ray.available_resources()
        time.sleep(0.2)
    print(
        f"\nrunner killed mid-job: answering again after {answering:.1f} s; interrupted job "
        f"{ended['status']} ({(ended['error'] or {}).get('code')}); queued job finished "
        f"{recovered:.1f} s after the kill"
    )

    state = http.get("/readyz").json()["job_runner"]
    assert state["running"] == [] and state["heartbeat_age_s"] >= 0
    # the restarted runner exports its heartbeat's age from its node's metrics agent
    agent = f"http://127.0.0.1:{service_settings.ray.metrics_export_port}/metrics"
    series = re.compile(r"^ray_tuneserve_job_runner_heartbeat_age_seconds(\{.*\})? [0-9.e+-]+$")
    deadline = time.monotonic() + 60
    while not any(series.match(line) for line in httpx.get(agent).text.splitlines()):
        assert time.monotonic() < deadline, "no heartbeat series on the metrics agent"
        time.sleep(0.5)
