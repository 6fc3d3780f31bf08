"""One fine-tuning job, read top to bottom: validate → plan → train → evaluate → register →
gate → promote.

The job's ``TrainingConfig`` was resolved when it was created; every phase reads it from the
job. The trained checkpoint is written once, by Ray Train, inside the artifact store and
becomes the new version's artifact as it is. Promotion is a callback handed in by whoever
started the runner (the serving layer), so this module knows nothing of Ray Serve.

A cancel is honoured between any two phases, and while training or evaluating, until the
promotion: once production has moved, the job succeeds. The two phases that need the
cluster (train, evaluate) are fields of the context, so that tests drive the rest without
Ray.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import AutoConfig

from tuneserve.api.fine_tuning import Promotion
from tuneserve.errors import Conflict, InvalidRequest, NotFound, TuneserveError
from tuneserve.registry import VersionInfo, weights_sha256
from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.registry.refs import CANDIDATE, ModelRef
from tuneserve.training.config import TrainingConfig
from tuneserve.training.context import RUN_STATES, JobContext, Promoter
from tuneserve.training.dataset import split
from tuneserve.training.evaluate import GateDecision, decide, variants_summary
from tuneserve.training.loop import STATE_DIR
from tuneserve.training.lora_lineage import adapter_lineage, runs_on
from tuneserve.training.trainer import (
    JobFailure,
    Plan,
    TrainOutcome,
    check_resources,
    log_internal,
)

__all__ = ["JobContext", "Promoter", "registered_version", "run", "validate"]


# --- validate --------------------------------------------------------------------------
def validate(job: JobInfo, ctx: JobContext) -> None:
    """The files hold rows of the job's task whose labels its model's head knows."""
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
        if info.labels:  # against the head the job trains: the base's or a fresh one
            fresh = config.head_labels is not None
            known = config.head_labels if fresh else _base_labels(job, ctx)
            try:
                new = spec.unknown_labels(info.labels, known, config.allow_new_labels and not fresh)
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
    if _stop_if_cancelled(job, ctx, "before training"):
        return
    ctx.jobs.add_event(
        job.id,
        f"training on {config.num_workers} worker(s): {config.n_epochs} "
        f"epoch(s), batch {config.batch_size}, learning rate {config.learning_rate:g}",
    )
    outcome = ctx.train(job, plan, ctx)
    if outcome is None:
        _cancel(job, ctx, "during training")
        return
    if _stop_if_cancelled(job, ctx, "after training, before evaluation"):
        return
    _record_training(job, outcome, ctx.jobs)
    ctx.jobs.transition(job.id, ("running",), "evaluating")
    _evaluate_and_promote(job, plan, outcome, ctx)


def _evaluate_and_promote(job: JobInfo, plan: Plan, outcome: TrainOutcome, ctx: JobContext) -> None:
    promotion = Promotion.model_validate(job.promotion)
    production = _production(job.output_model, ctx)
    candidate_uri = ctx.store.adopt(outcome.checkpoint_uri, drop=(STATE_DIR,))
    models = {"candidate": (candidate_uri, runs_on(plan))}
    if production:
        models["production"] = (production.artifact_uri, runs_on(production))
    scores = ctx.evaluate(job, plan, models, ctx)
    if scores is None:
        _cancel(job, ctx, "during evaluation, before a version was registered")
        return
    spec = ctx.catalog.get(job.task)
    decision = decide(spec, promotion, scores["candidate"], scores.get("production"))
    evaluated = {label: scores[label] for label in models}  # the variants come with the version
    ctx.jobs.add_event(job.id, f"evaluated: {decision.reason}", data=evaluated)
    if _stop_if_cancelled(job, ctx, "after evaluation, before a version was registered"):
        return
    version = _register(job, plan.config, candidate_uri, scores, ctx)
    if _stop_if_cancelled(job, ctx, f"after registering version {version}, before the gate"):
        return
    production_version = production.version if production is not None else None
    promoted, how = _gate(job, decision, promotion, version, production_version, ctx)
    ctx.jobs.add_event(job.id, ("promoted: " if promoted else "not promoted: ") + how)
    if ctx.jobs.get_job(job.id).cancel_requested:  # asked for while the gate ran
        if not promoted:
            _cancel(job, ctx, f"after the gate; version {version} stays registered")
            return
        ctx.jobs.add_event(job.id, "the cancel came after the promotion: the job succeeds")
    result = {
        "promoted": promoted,
        "reason": how,
        "metric": decision.metric,
        "candidate_version": version,
        "production_version": production_version,
        "candidate_metrics": scores["candidate"],
        "production_metrics": scores.get("production"),
    }
    ctx.jobs.transition(
        job.id,
        ("evaluating",),
        "succeeded",
        result=result,
        fine_tuned_model=str(ModelRef(job.output_model, version=version)),
    )


def _production(name: str, ctx: JobContext) -> VersionInfo | None:
    """The version the candidate must beat; None for a new model's first version."""
    try:
        return ctx.registry.resolve(name, None)
    except NotFound:
        return None


def _stop_if_cancelled(job: JobInfo, ctx: JobContext, when: str) -> bool:
    """Honour a cancel asked for since the last look: True if the job stops here."""
    if not ctx.jobs.get_job(job.id).cancel_requested:
        return False
    _cancel(job, ctx, when)
    return True


def _cancel(job: JobInfo, ctx: JobContext, when: str) -> None:
    if ctx.jobs.transition(job.id, RUN_STATES, "cancelled"):
        ctx.jobs.add_event(job.id, f"cancelled {when}")


def registered_version(job: JobInfo, ctx: JobContext) -> int | None:
    """The version this job registered, if it got that far (its lineage names the job)."""
    try:
        versions = ctx.registry.list_versions(job.output_model)
    except NotFound:  # no model by that name any more: nothing of the job's either
        return None
    return next((v.version for v in versions if (v.lineage or {}).get("job") == job.id), None)


def _base_labels(job: JobInfo, ctx: JobContext) -> list[str]:
    base = ctx.registry.get_version(job.model, job.base_version)
    weights = base.weights_base[0] if base.weights_base else base.artifact_uri  # LoRA: same head
    config = AutoConfig.from_pretrained(ctx.store.local_path(weights))
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
            stored = f"jobs/{job.id}/attempt-{job.attempts}"  # a retry splits again
            train_uri = ctx.store.put_file(train, f"{stored}/train.arrow")
            validation_uri = ctx.store.put_file(validation, f"{stored}/validation.arrow")
    new_labels: list[str] = []
    labels = {label for info in files for label in info.labels}
    if config.allow_new_labels and labels:
        known = set(_base_labels(job, ctx))
        head = ctx.catalog.get(job.task).head_labels(labels)
        new_labels = [label for label in head if label not in known]
    base = ctx.registry.get_version(job.model, job.base_version)
    return Plan(
        config=config,
        base_uri=base.artifact_uri,
        base_sha256=base.sha256,
        adapter_base=base.weights_base,
        train_uri=train_uri,
        validation_uri=validation_uri,
        new_labels=new_labels,
    )


def _record_training(job: JobInfo, outcome: TrainOutcome, jobs: JobStore) -> None:
    final = outcome.metrics
    jobs.update_job(
        job.id, trained_tokens=final["trained_tokens"], trained_examples=final["trained_examples"]
    )
    known = {checkpoint.uri for checkpoint in jobs.list_checkpoints(job.id)}
    for uri, metrics in outcome.checkpoints:  # a retried job resumes: some are known
        if uri not in known:
            jobs.add_checkpoint(job.id, metrics["epoch"], metrics["step"], uri, metrics)


def _register(job: JobInfo, config: TrainingConfig, uri: str, scores: dict, ctx: JobContext) -> int:
    """The candidate as a new immutable version with its lineage, its metrics and the
    verdicts on its variants (logged as an event too), aliased ``candidate``."""
    if variants := scores.get("variants"):
        ctx.jobs.add_event(job.id, "variants: " + variants_summary(variants), data=variants)
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
        "base_model": job.model,
        "base_version": job.base_version,
        "training_file": files["training_file"],
        "validation_file": files.get("validation_file"),
        "hyperparameters": config.model_dump(),
    }
    base = ctx.registry.get_version(job.model, job.base_version)
    if config.lora:
        lineage["adapter"] = adapter_lineage(base, config.lora, ctx.store.local_path(uri))
    target = job.output_model
    if target != job.model:  # a suffix job's new model: created by its first version
        base = f"{job.model}@{job.base_version}"
        ctx.registry.create_model(target, job.task, f"fine-tuned from {base} (job {job.id})")
    version = ctx.registry.register_version(
        target,
        artifact_uri=uri,
        sha256=weights_sha256(ctx.store.local_path(uri)),
        metrics=scores["candidate"],
        base_version=job.base_version if target == job.model else None,
        lineage=lineage,
        variants=scores.get("variants"),
    ).version
    current = ctx.registry.aliases(target).get(CANDIDATE)
    ctx.registry.move_alias(target, CANDIDATE, version, current, reason=f"job {job.id}")
    return version


def _gate(
    job: JobInfo,
    decision: GateDecision,
    promotion: Promotion,
    version: int,
    production: int | None,
    ctx: JobContext,
) -> tuple[bool, str]:
    """Promote if the gate passed and the job asked for it; production must not have moved."""
    if not decision.passed:
        return False, decision.reason
    if not promotion.auto:
        return False, f"{decision.reason}; automatic promotion is off"
    try:
        return True, ctx.promote(job.output_model, version, production, f"job {job.id}")
    except Conflict:
        now = ctx.registry.resolve(job.output_model, None).version
        return False, (
            f"production moved from version {production} to {now} while the job "
            "ran; not promoted (promote it by hand if it is still wanted)"
        )
    except TuneserveError as error:  # e.g. a replica did not load it in time: it says so
        return False, f"the promotion failed: {error.message} (promote it by hand when ready)"
    except Exception:  # the version is registered: the job still succeeds, unpromoted
        reference = log_internal(f"promoting version {version} failed", job.id)
        return False, (
            f"the promotion failed with an internal error (reference {reference}); "
            "promote it by hand if it is still wanted"
        )
