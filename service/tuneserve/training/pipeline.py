"""One fine-tuning job, read top to bottom: validate → plan → train → evaluate → register →
gate → promote.

The job's ``TrainingConfig`` was resolved when it was created; every phase reads it from the
job. The trained checkpoint is written once, by Ray Train, inside the artifact store and
becomes the new version's artifact as it is. Promotion is a callback handed in by whoever
started the runner (the serving layer), so this module knows nothing of Ray Serve.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from transformers import AutoConfig

from tuneserve.api.fine_tuning import Promotion
from tuneserve.errors import Conflict, InvalidRequest
from tuneserve.registry import ArtifactStore, Registry, weights_sha256
from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.registry.refs import CANDIDATE, ModelRef
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.training.config import TrainingConfig
from tuneserve.training.dataset import split
from tuneserve.training.evaluate import GateDecision, decide, evaluate_both
from tuneserve.training.loop import STATE_DIR
from tuneserve.training.trainer import JobFailure, Plan, TrainOutcome, check_resources, train

# (model, version, expected production, reason) → how it went; raises Conflict when
# production moved since the job decided
Promoter = Callable[[str, int, int, str], str]


@dataclass(frozen=True)
class JobContext:
    """What every phase of every job works with."""

    settings: Settings
    registry: Registry
    store: ArtifactStore
    jobs: JobStore
    catalog: TaskCatalog
    promote: Promoter


# --- validate --------------------------------------------------------------------------
def validate(job: JobInfo, ctx: JobContext) -> None:
    """The files hold rows of the job's task whose labels the base model knows."""
    spec = ctx.catalog.get(job.task)
    config = TrainingConfig.model_validate(job.hyperparameters)
    for param, file_id in (
        ("training_file", job.training_file),
        ("validation_file", job.validation_file),
    ):
        if file_id is None:
            continue
        info = ctx.jobs.get_file(file_id)
        if info.task != job.task:
            raise JobFailure(
                "invalid_file",
                f"{file_id} holds {info.task} rows but the job fine-tunes a {job.task} model",
                param,
            )
        if info.labels:
            try:
                new = spec.unknown_labels(
                    info.labels, _base_labels(job, ctx), config.allow_new_labels
                )
            except InvalidRequest as error:
                raise JobFailure("invalid_labels", error.message, param) from error
            if new:
                ctx.jobs.add_event(job.id, f"new labels will be added: {', '.join(new)}")
    ctx.jobs.add_event(job.id, "files validated")


# --- run: plan → train → evaluate → register → gate → promote ----------------------------
def run(job: JobInfo, ctx: JobContext) -> None:
    config = TrainingConfig.model_validate(job.hyperparameters)
    plan = _plan(job, config, ctx)
    if not ctx.settings.training.wait_for_resources:
        check_resources(config, ctx.settings.training.worker_resources)
    ctx.jobs.add_event(
        job.id,
        f"training on {config.num_workers} worker(s): {config.n_epochs} "
        f"epoch(s), batch {config.batch_size}, learning rate {config.learning_rate:g}",
    )
    outcome = train(job, plan, ctx.settings, ctx.jobs)
    if outcome is None:
        ctx.jobs.transition(job.id, ("running",), "cancelled")
        return
    _record_training(job, outcome, ctx.jobs)
    ctx.jobs.transition(job.id, ("running",), "evaluating")

    promotion = Promotion.model_validate(job.promotion)
    spec = ctx.catalog.get(job.task)
    production = ctx.registry.resolve(job.model, None)
    candidate_uri = ctx.store.adopt(outcome.checkpoint_uri, drop=(STATE_DIR,))
    scores = ray.get(
        evaluate_both.remote(
            job.task,
            (ctx.settings.registry, ctx.settings.tasks, ctx.settings.training.torch_threads),
            {"candidate": candidate_uri, "production": production.artifact_uri},
            plan.validation_uri,
            config.max_sequence_length,
        )
    )
    decision = decide(spec, promotion, scores["candidate"], scores["production"])
    ctx.jobs.add_event(job.id, f"evaluated: {decision.reason}", data=scores)
    version = _register(job, config, candidate_uri, scores["candidate"], ctx)
    promoted, how = _gate(job, decision, promotion, version, production.version, ctx)
    ctx.jobs.add_event(job.id, ("promoted: " if promoted else "not promoted: ") + how)
    result = {
        "promoted": promoted,
        "reason": how,
        "metric": decision.metric,
        "candidate_version": version,
        "production_version": production.version,
        "candidate_metrics": scores["candidate"],
        "production_metrics": scores["production"],
    }
    ctx.jobs.transition(
        job.id,
        ("evaluating",),
        "succeeded",
        result=result,
        fine_tuned_model=str(ModelRef(job.model, version=version)),
    )


def _base_labels(job: JobInfo, ctx: JobContext) -> list[str]:
    base = ctx.registry.get_version(job.model, job.base_version)
    config = AutoConfig.from_pretrained(ctx.store.local_path(base.artifact_uri))
    return [config.id2label[i] for i in range(len(config.id2label))]


def _plan(job: JobInfo, config: TrainingConfig, ctx: JobContext) -> Plan:
    """The Arrow files to train and validate on, and the labels the model's head gains.

    An uploaded file is used as it is; without a validation file, the training file is
    split once (a seeded choice of rows) into two files every worker can read.
    """
    training = ctx.jobs.get_file(job.training_file)
    files = [training] + ([ctx.jobs.get_file(job.validation_file)] if job.validation_file else [])
    if job.validation_file:
        train_uri, validation_uri = training.uri, files[1].uri
    else:
        with tempfile.TemporaryDirectory() as folder:
            train, validation = Path(folder, "train.arrow"), Path(folder, "validation.arrow")
            source = ctx.store.local_file(training.uri)
            split(source, config.validation_fraction, config.seed, train, validation)
            train_uri = ctx.store.put_file(train, f"jobs/{job.id}/train.arrow")
            validation_uri = ctx.store.put_file(validation, f"jobs/{job.id}/validation.arrow")
    new_labels: list[str] = []
    labels = {label for info in files for label in info.labels}
    if config.allow_new_labels and labels:
        known = set(_base_labels(job, ctx))
        head = ctx.catalog.get(job.task).head_labels(labels)
        new_labels = [label for label in head if label not in known]
    return Plan(
        config=config,
        base_uri=ctx.registry.get_version(job.model, job.base_version).artifact_uri,
        train_uri=train_uri,
        validation_uri=validation_uri,
        new_labels=new_labels,
    )


def _record_training(job: JobInfo, outcome: TrainOutcome, jobs: JobStore) -> None:
    final = outcome.metrics
    jobs.update_job(
        job.id, trained_tokens=final["trained_tokens"], trained_examples=final["trained_examples"]
    )
    for uri, metrics in outcome.checkpoints:
        jobs.add_checkpoint(job.id, metrics["epoch"], metrics["step"], uri, metrics)


def _register(
    job: JobInfo, config: TrainingConfig, uri: str, metrics: dict, ctx: JobContext
) -> int:
    """The candidate as a new immutable version with its lineage, aliased ``candidate``."""
    files = {
        param: {"id": file_id, "sha256": ctx.jobs.get_file(file_id).sha256}
        for param, file_id in (
            ("training_file", job.training_file),
            ("validation_file", job.validation_file),
        )
        if file_id
    }
    lineage = {
        "job": job.id,
        "base_version": job.base_version,
        "training_file": files["training_file"],
        "validation_file": files.get("validation_file"),
        "hyperparameters": config.model_dump(),
    }
    version = ctx.registry.register_version(
        job.model,
        artifact_uri=uri,
        sha256=weights_sha256(ctx.store.local_path(uri)),
        metrics=metrics,
        base_version=job.base_version,
        lineage=lineage,
    ).version
    current = ctx.registry.aliases(job.model).get(CANDIDATE)
    ctx.registry.move_alias(job.model, CANDIDATE, version, current, reason=f"job {job.id}")
    return version


def _gate(
    job: JobInfo,
    decision: GateDecision,
    promotion: Promotion,
    version: int,
    production: int,
    ctx: JobContext,
) -> tuple[bool, str]:
    """Promote if the gate passed and the job asked for it; production must not have moved."""
    if not decision.passed:
        return False, decision.reason
    if not promotion.auto:
        return False, f"{decision.reason}; automatic promotion is off"
    try:
        return True, ctx.promote(job.model, version, production, f"job {job.id}")
    except Conflict:
        now = ctx.registry.resolve(job.model, None).version
        return False, (
            f"production moved from version {production} to {now} while the job "
            "ran; not promoted (promote it by hand if it is still wanted)"
        )
