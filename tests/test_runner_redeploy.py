"""The detached JobRunner follows the deployment's settings: a redeploy that changes them
replaces it, at once when idle and only after its running job when busy."""

from __future__ import annotations

import time

import ray
from conftest import production_copy
from test_fine_tuning import create_job, upload, wait_for
from tuneserve.serving.fleet import ServePromoter
from tuneserve.training.runner import get_or_start_runner
from tuneserve.zoo.recipes import RECIPES

MODEL = "redeploy-sentiment"


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
