"""Driving Ray Train for one job: resources, the TorchTrainer, cancel, clean-up.

The workers get no database: they read and write artifacts, and report their events (and
learn of a cancel) through the runner actor, so no database URL or credential travels in
``train_loop_config``, which Ray Train shows on its dashboard.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.settings import Settings
from tuneserve.training.config import TrainingConfig
from tuneserve.training.fit_host import FitHosts
from tuneserve.training.identity import RunnerAddress
from tuneserve.training.killed_run import free_killed_run
from tuneserve.training.loop import train_loop_per_worker

logger = logging.getLogger("tuneserve.runner")
POLL_S = 0.5  # how often the runner looks at a Ray task it waits for (cancel, heartbeat)


@dataclass(frozen=True)
class Plan:
    """What one run trains: its config, its base model and its rows (stored, by URI)."""

    config: TrainingConfig
    base_uri: str
    base_sha256: str  # the workers check the base's weights against it
    train_uri: str  # Arrow files of rows
    validation_uri: str
    new_labels: list[str]  # labels the head gains before training (allow_new_labels)
    adapter_base: tuple[str, str] | None = None  # a LoRA base's full weights (URI, sha256)


@dataclass(frozen=True)
class TrainOutcome:
    metrics: dict[str, Any]  # the last report's
    checkpoint_uri: str  # the last epoch's model, where Ray Train stored it
    checkpoints: list[tuple[str, dict[str, Any]]]  # every epoch's (URI, metrics)


class JobFailure(Exception):
    """Why a job failed, as the job's ``error`` (code, message, param): the job's own doing
    (its data, its hyperparameters, what it asks of the cluster), so never retried. The
    message is shown to users: no exception text, no paths, no SQL."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def new_reference() -> str:
    """An id for one internal error: shown to the user, logged with the detail."""
    return f"err-{uuid.uuid4().hex[:12]}"


def log_internal(what: str, job_id: str) -> str:
    """Log the exception being handled with the job and a fresh reference, and return the
    reference: users are shown it (never the exception), operators find the detail by it."""
    reference = new_reference()
    logger.exception("%s (reference %s)", what, reference, extra={"job_id": job_id})
    return reference


def check_resources(config: TrainingConfig, worker_resources: dict[str, float]) -> None:
    """Fail fast on what the cluster cannot give: Ray Train would otherwise wait forever."""
    cpus = config.num_workers * config.cpus_per_worker
    gpus = config.num_workers if config.use_gpu else 0
    total, free = ray.cluster_resources(), ray.available_resources()
    for name, amount in worker_resources.items():
        if config.num_workers * amount > total.get(name, 0):
            raise JobFailure(
                "resource_unavailable",
                f"training workers need {config.num_workers * amount:g} of resource '{name}' "
                f"(training.worker_resources); the cluster has {total.get(name, 0):g}",
                "hyperparameters.num_workers",
            )
    if gpus > total.get("GPU", 0):
        raise JobFailure(
            "resource_unavailable",
            f"use_gpu needs {gpus} GPU(s); the cluster has {total.get('GPU', 0):g}",
            "hyperparameters.use_gpu",
        )
    if cpus > total.get("CPU", 0):
        raise JobFailure(
            "resource_unavailable",
            f"{config.num_workers} worker(s) need {cpus:g} "
            f"CPUs; the cluster has {total.get('CPU', 0):g}",
            "hyperparameters.num_workers",
        )
    if cpus > free.get("CPU", 0) or gpus > free.get("GPU", 0):
        raise JobFailure(
            "resource_unavailable",
            f"{config.num_workers} worker(s) need {cpus:g} "
            f"CPUs and {gpus} GPUs; {free.get('CPU', 0):g} CPUs and "
            f"{free.get('GPU', 0):g} GPUs are free now",
            "hyperparameters.num_workers",
        )


def _trainer(job: JobInfo, plan: Plan, settings: Settings, reporter: RunnerAddress) -> TorchTrainer:
    config = plan.config
    resources = (
        {"CPU": config.cpus_per_worker}
        | ({"GPU": 1} if config.use_gpu else {})
        | settings.training.worker_resources
    )
    worker_context = {
        "job_id": job.id,
        "task": job.task,
        "training": config.model_dump(),
        "base_uri": plan.base_uri,
        "base_sha256": plan.base_sha256,
        "adapter_base": plan.adapter_base,
        "train_uri": plan.train_uri,
        "validation_uri": plan.validation_uri,
        "new_labels": plan.new_labels,
        # only what a worker reads: where the artifacts are, which tasks exist, and the
        # runner it reports to; never the registry's database (see the module docstring)
        "artifacts": {
            "url": settings.registry.artifact_url,
            "cache_dir": str(settings.registry.artifact_cache_dir),
        },
        "tasks": settings.tasks.model_dump(mode="json"),
        "reporter": reporter,
    }
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=worker_context,
        scaling_config=ScalingConfig(
            num_workers=config.num_workers, use_gpu=config.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=job.id,
            storage_path=settings.training.checkpoint_url,
            failure_config=FailureConfig(
                max_failures=settings.training.max_failures, controller_failure_limit=0
            ),
            checkpoint_config=CheckpointConfig(num_to_keep=None),
        ),
    )


def controller_environment(settings: Settings) -> dict[str, str]:
    """What Ray Train's controller reads from the environment of the process that calls
    ``fit``: the worker-group start timeout (without it, and ``controller_failure_limit=0``,
    a placement that can never be met is retried forever) and how often it polls workers."""
    return {
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": str(settings.training.start_timeout_s),
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": str(settings.training.controller_poll_s),
    }


def _uri(path: str, storage_url: str) -> str:
    """A Ray Train storage path as an artifact URI: remote paths get their scheme back."""
    scheme, found, _ = storage_url.partition("://")
    return f"{scheme}://{path}" if found and "://" not in path else path


def cancel_asked(jobs: JobStore, job_id: str) -> bool:
    """Whether the job's cancel was asked for. A failed look (the database busy) counts as
    no, and the next poll looks again: a hiccup must not stop a run that is going well."""
    try:
        return jobs.get_job(job_id).cancel_requested
    except Exception as error:
        logger.warning(
            "could not read the cancel flag (%s)", type(error).__name__, extra={"job_id": job_id}
        )
        return False


def _wait(ref, job_id: str, jobs: JobStore, grace_s: float, heartbeat: Callable[[], None]) -> bool:
    """Until the run ends (True), or a cancel's grace period is over (False)."""
    cancel_seen: float | None = None
    while not ray.wait([ref], timeout=POLL_S)[0]:
        heartbeat()
        if cancel_seen is None and cancel_asked(jobs, job_id):
            cancel_seen = time.monotonic()
        if cancel_seen is not None and time.monotonic() - cancel_seen > grace_s:
            return False
    return True


def _result(ref, job: JobInfo, settings: Settings) -> dict[str, Any]:
    """The ended run's result, or the JobFailure its error means."""
    try:
        return ray.get(ref)
    except Exception as error:
        if "WorkerGroupStartupTimeoutError" in repr(error):
            raise JobFailure(
                "resource_unavailable",
                "the training workers did not start within "
                f"{settings.training.start_timeout_s:g} s: the cluster is busy",
                "hyperparameters.num_workers",
            ) from error
        reference = log_internal("training failed", job.id)
        raise JobFailure(
            "training_failed",
            f"training stopped with an error that {settings.training.max_failures} restart(s) "
            f"from the last checkpoint did not get past (reference {reference}); the "
            "service log has the details under that reference",
        ) from error


def train(
    job: JobInfo,
    plan: Plan,
    settings: Settings,
    jobs: JobStore,
    reporter: RunnerAddress,
    heartbeat: Callable[[], None],
    hosts: FitHosts,
) -> TrainOutcome | None:
    """Fit on Ray Train in a host from ``hosts``; None if the job was cancelled (stopped at
    a step, or killed).

    ``reporter``: where the workers find the runner they report to; ``heartbeat``: called
    while the runner waits, so that its loop shows life during a long run.
    """
    trainer, host = _trainer(job, plan, settings, reporter), hosts.take()
    ref = host.fit.remote(trainer, controller_environment(settings))
    finished = False
    try:
        finished = _wait(ref, job.id, jobs, settings.training.cancel_grace_s, heartbeat)
        outcome = _result(ref, job, settings) if finished else None
    finally:
        # ended, cancelled, or the runner stopped waiting (an error of its own): the host
        # goes, and the run with it, or a retry of the job would train beside it
        hosts.release(host)
        if not finished:
            free_killed_run(host)
    if outcome is None or outcome["metrics"].get("cancelled"):
        return None
    storage = settings.training.checkpoint_url
    return TrainOutcome(
        metrics=outcome["metrics"],
        checkpoint_uri=_uri(outcome["checkpoint"], storage),
        checkpoints=[(_uri(path, storage), m) for path, m in outcome["checkpoints"]],
    )
