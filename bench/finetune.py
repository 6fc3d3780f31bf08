"""Fine-tuning benchmark: ``python -m bench.finetune`` (part of ``make bench``).

The full-profile ``sentiment`` model (MiniLM) fine-tuned on the same rows with the same
hyperparameters and torch thread count two ways, in one run: through the service (HTTP →
JobRunner → Ray Train, one worker) and with a plain single-process torch loop, run once
before the service starts and once after it stops (one run of it read 38 to 53 samples/s on
one machine in one afternoon: their mean is the reference). Reports samples/s of each (and
the ratio), the overhead from job creation to the first training step broken down by
phase, and the validation accuracy of both (SST-2 rows when TUNESERVE_SHARED_DATA or
../shared/data has them, else generated reviews).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import httpx
import torch
from sqlalchemy import select
from tuneserve.registry import connect
from tuneserve.registry.db import JobEventRow, JobRow
from tuneserve.tasks.classification import ClassificationRow
from tuneserve.tasks.handlers.classification import ClassificationHandler
from tuneserve.training.config import TrainingConfig
from tuneserve.training.fit import fit
from tuneserve.zoo.build import build_all
from tuneserve.zoo.data import sentiment
from tuneserve.zoo.register import register_starter_model

from bench.common import console, print_table, wait_ready, write_results
from bench.serving import bench_settings

PHASES = (
    "accepted_s",
    "queue_to_running_s",
    "trainer_start_to_workers_ready_s",
    "workers_ready_to_first_step_s",
    "creation_to_first_step_s",
)


def labelled_rows(train: int, validation: int, seed: int = 11) -> tuple[list, list, str]:
    shared = Path(os.environ.get("TUNESERVE_SHARED_DATA", "../shared/data"))
    path = shared / "classification" / "sst2_glue_train.tsv"
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
        random.Random(seed).shuffle(lines)
        labels = {"0": "negative", "1": "positive"}
        rows = [{"text": t, "label": labels[y]} for t, y in (ln.split("\t") for ln in lines)]
        return rows[:train], rows[train : train + validation], "SST-2 train split"
    rows = sentiment.generate("train", train, seed)
    return rows, sentiment.generate("heldout", validation, seed), "generated reviews"


def plain_loop(model_dir: Path, train, validation, config: TrainingConfig, threads: int) -> dict:
    torch.set_num_threads(threads)
    handler = ClassificationHandler.load(model_dir)
    report = fit(handler, [ClassificationRow(**r) for r in train], config)
    accuracy = handler.evaluate([ClassificationRow(**r) for r in validation])["accuracy"]
    return {
        "samples_per_s": report.examples_per_s,
        "train_seconds": report.seconds,
        "validation_accuracy": accuracy,
        "threads": torch.get_num_threads(),
    }


def _jsonl(rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def through_service(
    url: str, settings, train, validation, config: TrainingConfig, use_gpu: bool = False
) -> dict:
    with httpx.Client(base_url=url, timeout=120) as http:
        files = [
            http.post(
                "/v1/files",
                files={"file": (f"{n}.jsonl", _jsonl(rows))},
                data={"purpose": "fine-tune"},
            ).json()["id"]
            for n, rows in (("train", train), ("validation", validation))
        ]
        started = time.time()
        job = http.post(
            "/v1/fine_tuning/jobs",
            json={
                "model": "sentiment",
                "training_file": files[0],
                "validation_file": files[1],
                "hyperparameters": {
                    "n_epochs": config.n_epochs,
                    "batch_size": config.batch_size,
                    "learning_rate": config.learning_rate,
                    "seed": config.seed,
                    "use_gpu": use_gpu,
                },
                "promotion": {"auto": False},
            },
        ).json()
        while (job := http.get(f"/v1/fine_tuning/jobs/{job['id']}").json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            time.sleep(0.5)
    assert job["status"] == "succeeded", job["error"]
    phases = _phases(settings, job["id"], started)
    return {
        **phases,
        "samples_per_s": job["trained_examples"] / phases["training_s"],
        "job": job["id"],
        "validation_accuracy": job["result"]["candidate_metrics"]["accuracy"],
        "production_accuracy": job["result"]["production_metrics"]["accuracy"],
        "trained_examples": job["trained_examples"],
    }


def _phases(settings, job_id: str, requested: float) -> dict:
    """Event times from the registry: accepted → running → workers ready → first step → end."""
    registry, _ = connect(settings.registry)
    with registry.engine.connect() as db:
        created = db.scalar(select(JobRow.created_at).where(JobRow.id == job_id)).timestamp()
        events = db.execute(
            select(JobEventRow.message, JobEventRow.created_at, JobEventRow.data)
            .where(JobEventRow.job_id == job_id)
            .order_by(JobEventRow.seq)
        ).all()
    at, train_seconds = {}, 0.0
    for message, moment, data in events:
        if message.startswith("epoch "):
            train_seconds += data["epoch_train_seconds"]
        for key, prefix in (
            ("running", "status: running"),
            ("ready", "workers ready"),
            ("first_step", "first step done"),
        ):
            if message.startswith(prefix):
                at[key] = moment.timestamp()
    return {
        "accepted_s": created - requested,
        "queue_to_running_s": at["running"] - created,
        "trainer_start_to_workers_ready_s": at["ready"] - at["running"],
        "workers_ready_to_first_step_s": at["first_step"] - at["ready"],
        "creation_to_first_step_s": at["first_step"] - created,
        "training_s": train_seconds,  # the workers' own timing of their training steps
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="training rows")
    parser.add_argument("--validation-rows", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both loops")
    parser.add_argument("--profile", default="full", choices=["full", "tiny"])
    parser.add_argument(
        "--jobs", type=int, default=3, help="jobs in a row (the first meets a new service)"
    )
    args = parser.parse_args()
    settings = bench_settings(args.threads, args.profile).updated(
        serving={"served_tasks": ["classification"]}, training={"torch_threads": args.threads}
    )
    registry, store = connect(settings.registry)
    for report in build_all(settings, ["sentiment"]):
        register_starter_model(report, settings, registry, store)
    train, validation, source = labelled_rows(args.rows, args.validation_rows)
    config = TrainingConfig(n_epochs=1, batch_size=32, learning_rate=5e-5, seed=0)
    console.print(
        f"{len(train)} training rows, {len(validation)} validation rows ({source}); "
        f"batch {config.batch_size}, 1 epoch, torch threads {args.threads}"
    )

    model_dir = settings.zoo.dir / "sentiment"
    plain_runs = [plain_loop(model_dir, train, validation, config, args.threads)]
    from tuneserve.serving import local

    url = local.start(settings)
    try:
        wait_ready(url)
        jobs = [through_service(url, settings, train, validation, config) for _ in range(args.jobs)]
    finally:
        local.stop()
    plain_runs.append(plain_loop(model_dir, train, validation, config, args.threads))
    plain = {  # both runs train the same model on the same rows: one accuracy
        "samples_per_s": sum(r["samples_per_s"] for r in plain_runs) / len(plain_runs),
        "threads": plain_runs[0]["threads"],
        "validation_accuracy": plain_runs[0]["validation_accuracy"],
    }
    service = sorted(jobs, key=lambda job: job["samples_per_s"])[len(jobs) // 2]  # median
    print_table(
        "fine-tuning sentiment: service (Ray Train, 1 worker) vs plain torch loop",
        ["", "threads", "samples/s", "÷ plain", "validation accuracy"],
        [
            *(
                [
                    f"plain loop, {when}",
                    run["threads"],
                    run["samples_per_s"],
                    run["samples_per_s"] / plain["samples_per_s"],
                    run["validation_accuracy"],
                ]
                for when, run in zip(("before", "after"), plain_runs, strict=True)
            ),
            [
                "plain loop, mean",
                plain["threads"],
                plain["samples_per_s"],
                1.0,
                plain["validation_accuracy"],
            ],
            [
                "service",
                args.threads,
                service["samples_per_s"],
                service["samples_per_s"] / plain["samples_per_s"],
                service["validation_accuracy"],
            ],
        ],
    )
    print_table(
        f"job creation → first training step (seconds), {len(jobs)} jobs in a row",
        ["phase", *(f"job {n}" for n in range(1, len(jobs) + 1))],
        [[name.removesuffix("_s").replace("_", " "), *(j[name] for j in jobs)] for name in PHASES],
    )
    path = write_results(
        "finetune",
        {
            "rows": len(train),
            "source": source,
            "threads": args.threads,
            "warm_fit_hosts": settings.training.warm_fit_hosts,
            "plain": plain,
            "plain_runs": plain_runs,
            "service": service,
            "jobs": jobs,
        },
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
