"""One fine-tuning job from validated files to a registered, gated, maybe promoted version."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray
from transformers import AutoConfig

from tuneserve.api.fine_tuning import Hyperparameters, Promotion
from tuneserve.errors import Conflict, InvalidRequest
from tuneserve.registry import ArtifactStore, Registry, weights_sha256
from tuneserve.registry.jobs import JobInfo, JobStore
from tuneserve.settings import Settings
from tuneserve.tasks import handler_for
from tuneserve.training.data import check_labels, read_jsonl, rows_to_jsonl, seeded_split
from tuneserve.training.evaluate import check_metric, decide, evaluate_model
from tuneserve.training.trainer import JobFailure, check_resources, train


@dataclass(frozen=True)
class Plan:
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    max_length: int
    hyper: Hyperparameters
    base_uri: str
    train_uri: str
    validation_uri: str
    validation_rows: list[dict]


# --- validating_files ------------------------------------------------------------------
def validate_job(
    job: JobInfo, settings: Settings, registry: Registry, store: ArtifactStore, jobs: JobStore
) -> None:
    """The files hold rows of the job's task whose labels the base model knows."""
    base = registry.get_version(job.model, job.base_version)
    for param, file_id in (
        ("training_file", job.training_file),
        ("validation_file", job.validation_file),
    ):
        if file_id is None:
            continue
        info = jobs.get_file(file_id)
        if info.task != job.task:
            raise JobFailure(
                "invalid_file",
                f"{file_id} holds {info.task} rows but the job fine-tunes a {job.task} model",
                param,
            )
        if info.labels:
            config = AutoConfig.from_pretrained(store.local_path(base.artifact_uri))
            allow_new = Hyperparameters.model_validate(job.hyperparameters).allow_new_labels
            try:
                new = check_labels(
                    info.labels, list(config.id2label.values()), allow_new=allow_new, task=job.task
                )
            except InvalidRequest as error:
                raise JobFailure("invalid_labels", error.message, param) from error
            if new:
                jobs.add_event(job.id, f"new labels will be added: {', '.join(new)}")
    jobs.add_event(job.id, "files validated")


# --- running ---------------------------------------------------------------------------
def _plan(
    job: JobInfo, settings: Settings, registry: Registry, store: ArtifactStore, jobs: JobStore
) -> Plan:
    hyper = Hyperparameters.model_validate(job.hyperparameters)
    handler_class = handler_for(job.task)
    multiplier = 1.0 if hyper.learning_rate_multiplier == "auto" else hyper.learning_rate_multiplier
    seed = hyper.seed if hyper.seed is not None else 0
    rows = read_jsonl(store.read_bytes(jobs.get_file(job.training_file).uri))
    if job.validation_file:
        validation = read_jsonl(store.read_bytes(jobs.get_file(job.validation_file).uri))
    else:
        rows, validation = seeded_split(rows, settings.validation_fraction, seed)
    return Plan(
        epochs=settings.default_epochs if hyper.n_epochs == "auto" else hyper.n_epochs,
        batch_size=settings.default_batch_size if hyper.batch_size == "auto" else hyper.batch_size,
        learning_rate=hyper.learning_rate or handler_class.learning_rate * multiplier,
        seed=seed,
        max_length=hyper.max_sequence_length or settings.max_sequence_length,
        hyper=hyper,
        base_uri=registry.get_version(job.model, job.base_version).artifact_uri,
        train_uri=store.put_bytes(rows_to_jsonl(rows), f"jobs/{job.id}/train.jsonl"),
        validation_uri=store.put_bytes(
            rows_to_jsonl(validation), f"jobs/{job.id}/validation.jsonl"
        ),
        validation_rows=validation,
    )


# --- evaluating ------------------------------------------------------------------------
@ray.remote(num_cpus=1)
def _evaluate(
    task: str,
    settings: Settings,
    candidate_uri: str,
    production_uri: str,
    rows: list[dict],
    max_length: int,
) -> dict[str, dict]:
    """Both models on the same rows, in a task that reserves the CPU it uses."""
    import torch

    from tuneserve.registry import connect

    torch.set_num_threads(settings.train_torch_threads)
    _, store = connect(settings)
    return {
        label: evaluate_model(task, store.local_path(uri), rows, max_length)
        for label, uri in (("candidate", candidate_uri), ("production", production_uri))
    }


def _register(
    job: JobInfo,
    plan: Plan,
    checkpoint,
    metrics: dict,
    registry: Registry,
    store: ArtifactStore,
    jobs: JobStore,
) -> int:
    """The candidate as a new immutable version with its lineage, aliased ``candidate``."""
    with tempfile.TemporaryDirectory() as folder:
        local = Path(checkpoint.to_directory(folder))
        sha256 = weights_sha256(local)
        uri = store.put_dir(local, f"{job.model}/{job.id}")
    lineage = {
        "job": job.id,
        "base_version": job.base_version,
        "training_file": {
            "id": job.training_file,
            "sha256": jobs.get_file(job.training_file).sha256,
        },
        "validation_file": job.validation_file
        and {"id": job.validation_file, "sha256": jobs.get_file(job.validation_file).sha256},
        "hyperparameters": job.hyperparameters
        | {
            "n_epochs": plan.epochs,
            "batch_size": plan.batch_size,
            "learning_rate": plan.learning_rate,
            "seed": plan.seed,
        },
    }
    version = registry.register_version(
        job.model,
        artifact_uri=uri,
        sha256=sha256,
        metrics=metrics,
        base_version=job.base_version,
        lineage=lineage,
    ).version
    current = registry.aliases(job.model).get("candidate")
    registry.move_alias(job.model, "candidate", version, current, reason=f"job {job.id}")
    return version


def _promote(
    job: JobInfo, version: int, production: int, settings: Settings, registry: Registry
) -> tuple[bool, str]:
    """Promote through every serving replica; production must still be what we beat."""
    from ray import serve

    from tuneserve.serving.promotion import promote
    from tuneserve.telemetry import Recorder

    handle = serve.get_deployment_handle(f"TaskServer-{job.task}", app_name=settings.app_name)
    try:
        swap = promote(
            registry,
            handle,
            job.model,
            version,
            expected_from=production,
            reason=f"job {job.id}",
            recorder=Recorder(settings.metrics_enabled),
        )
    except Conflict:
        now = registry.aliases(job.model).get("production")
        return False, (
            f"production moved from version {production} to {now} while the job "
            "ran; not promoted (promote it by hand if it is still wanted)"
        )
    return True, f"promoted in {swap.seconds:.2f} s on {len(swap.replicas)} replica(s)"


def run_job(
    job: JobInfo, settings: Settings, registry: Registry, store: ArtifactStore, jobs: JobStore
) -> None:
    plan = _plan(job, settings, registry, store, jobs)
    check_resources(plan.hyper, settings)
    jobs.add_event(
        job.id,
        f"training on {plan.hyper.num_workers} worker(s): {plan.epochs} "
        f"epoch(s), batch {plan.batch_size}, learning rate {plan.learning_rate:g}",
    )
    outcome = train(job, plan, settings, jobs)
    if outcome is None:
        jobs.transition(job.id, ("running",), "cancelled")
        return
    final = outcome["metrics"]
    jobs.update_job(
        job.id, trained_tokens=final["trained_tokens"], trained_examples=final["trained_examples"]
    )
    for path, metrics in outcome["checkpoints"]:
        jobs.add_checkpoint(job.id, metrics["epoch"], metrics["step"], path, metrics)
    jobs.transition(job.id, ("running",), "evaluating")

    promotion = Promotion.model_validate(job.promotion)
    metric = check_metric(job.task, promotion.metric)
    production = registry.resolve(job.model, None)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(outcome["checkpoint"].to_directory(folder))
        staged = store.put_dir(local, f"{job.model}/{job.id}-evaluated")
    scores = ray.get(
        _evaluate.remote(
            job.task,
            settings,
            staged,
            production.artifact_uri,
            plan.validation_rows,
            plan.max_length,
        )
    )
    store.delete(staged)
    decision = decide(metric, scores["candidate"], scores["production"], promotion.min_delta)
    jobs.add_event(
        job.id,
        f"evaluated: {decision.reason}",
        data={"candidate": scores["candidate"], "production": scores["production"]},
    )
    version = _register(
        job, plan, outcome["checkpoint"], scores["candidate"], registry, store, jobs
    )
    promoted, how = False, decision.reason
    if decision.passed and promotion.auto:
        promoted, how = _promote(job, version, production.version, settings, registry)
    elif decision.passed:
        how = f"{decision.reason}; automatic promotion is off"
    result = {
        "promoted": promoted,
        "reason": how,
        "metric": metric,
        "candidate_version": version,
        "production_version": production.version,
        "candidate_metrics": scores["candidate"],
        "production_metrics": scores["production"],
    }
    jobs.add_event(job.id, ("promoted: " if promoted else "not promoted: ") + how)
    jobs.transition(
        job.id,
        ("evaluating",),
        "succeeded",
        result=result,
        fine_tuned_model=f"{job.model}@{version}",
    )
