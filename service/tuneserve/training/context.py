"""What every phase of a job works with (``JobContext``), and the two phases that need the
cluster: training on Ray Train and evaluating in a Ray task.

Those two are fields of the context with these defaults, so that tests drive the rest of
the pipeline (and the runner's loop) against a real registry without starting Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ray

from tuneserve.registry import ArtifactStore, Registry
from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.training.evaluate import Weights, evaluate_both
from tuneserve.training.fit_host import FitHosts
from tuneserve.training.identity import RunnerAddress
from tuneserve.training.trainer import POLL_S, Plan, TrainOutcome, cancel_asked, train

# (model, version, expected production, reason) → how it went; raises Conflict when
# production moved since the job decided (None: a new model's first production)
Promoter = Callable[[str, int, int | None, str], str]
RUN_STATES = ("running", "evaluating")  # a job the runner has started and not finished


def train_on_ray(job: JobInfo, plan: Plan, ctx: JobContext) -> TrainOutcome | None:
    """Fit on Ray Train; None if the job was cancelled meanwhile."""
    hosts = ctx.fit_hosts or FitHosts(warm=0)
    return train(job, plan, ctx.settings, ctx.jobs, ctx.reporter, ctx.heartbeat, hosts)


def evaluate_on_ray(
    job: JobInfo, plan: Plan, models: dict[str, Weights], ctx: JobContext
) -> dict[str, dict] | None:
    """Each of ``models`` on the validation rows, in one Ray task; None if the job was
    cancelled meanwhile (the task is killed: its result would be of no use)."""
    sections = (ctx.settings.registry, ctx.settings.tasks, ctx.settings.training.torch_threads)
    ref = evaluate_both.remote(
        job.task, sections, models, plan.validation_uri, plan.config.max_sequence_length
    )
    while not ray.wait([ref], timeout=POLL_S)[0]:
        ctx.heartbeat()
        if cancel_asked(ctx.jobs, job.id):
            ray.cancel(ref, force=True)
            return None
    return ray.get(ref)


def _no_heartbeat() -> None:
    """Outside a runner nobody watches the loop."""


@dataclass(frozen=True)
class JobContext:
    """What every phase of every job works with."""

    settings: Settings
    registry: Registry
    store: ArtifactStore
    jobs: JobStore
    catalog: TaskCatalog
    promote: Promoter
    reporter: RunnerAddress | None = None  # the runner, by name: the workers report to it
    fit_hosts: FitHosts | None = None  # the runner's warm processes for Ray Train's fit
    heartbeat: Callable[[], None] = _no_heartbeat  # "this worker of the runner is alive"
    train: Callable[[JobInfo, Plan, JobContext], TrainOutcome | None] = train_on_ray
    evaluate: Callable[[JobInfo, Plan, dict[str, str], JobContext], dict | None] = evaluate_on_ray
