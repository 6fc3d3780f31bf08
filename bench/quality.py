"""Quality of fine-tuning on real text, through the public API: ``python -m bench.quality``.

For each task, rows of a training file in ``../shared/data`` (or ``TUNESERVE_SHARED_DATA``)
are split once, seeded, into rows a job trains on and rows it never sees; the job is
created over HTTP on the full profile's starter model (``promotion.auto`` off) and its
evaluation scores the fine-tuned candidate and the starter (production) on the same unseen
rows. SQuAD paragraphs are held back whole (whole articles), so no context is shared. The
table gives each task's metric before (the starter) and after fine-tuning, and the job's
wall time from creation to its end. Skips (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from tuneserve.registry import connect
from tuneserve.zoo.build import build_all
from tuneserve.zoo.register import register_starter_model

from bench.common import console, print_table, wait_ready, write_results
from bench.serving import bench_settings

SHARED = Path(os.environ.get("TUNESERVE_SHARED_DATA", Path(__file__).parents[1] / "../shared/data"))
Rows = list[dict]


def _shuffled(rows: Rows, seed: int) -> Rows:
    random.Random(seed).shuffle(rows)
    return rows


def sst2(train: int, held: int, seed: int) -> tuple[Rows, Rows]:
    lines = (SHARED / "classification/sst2_glue_train.tsv").read_text().splitlines()[1:]
    names = {"0": "negative", "1": "positive"}
    rows = _shuffled(
        [{"text": t, "label": names[y]} for t, y in (x.split("\t") for x in lines)], seed
    )
    return rows[:train], rows[train : train + held]


def conll(train: int, held: int, seed: int) -> tuple[Rows, Rows]:
    rows, tokens, tags = [], [], []
    for line in [*(SHARED / "ner/conll2003_train_bio.txt").read_text().splitlines(), ""]:
        if line.strip() and not line.startswith("-DOCSTART-"):
            token, tag = line.split()[0], line.split()[-1]
            tokens.append(token)
            tags.append(tag)
        elif tokens:
            rows.append({"tokens": tokens, "tags": tags})
            tokens, tags = [], []
    rows = _shuffled(rows, seed)
    return rows[:train], rows[train : train + held]


def squad(train: int, held: int, seed: int) -> tuple[Rows, Rows]:
    """Questions of the first articles to train, of the last two to score: no shared text."""
    articles = json.loads((SHARED / "qa/squad_v1.1_train_first11articles.json").read_text())["data"]

    def questions(of: list[dict]) -> Rows:
        return [
            {
                "question": qa["question"],
                "context": paragraph["context"],
                "answers": {
                    "text": [a["text"] for a in qa["answers"]],
                    "answer_start": [a["answer_start"] for a in qa["answers"]],
                },
            }
            for article in of
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
        ]

    return (
        _shuffled(questions(articles[:-2]), seed)[:train],
        _shuffled(questions(articles[-2:]), seed)[:held],
    )


def multi30k(train: int, held: int, seed: int) -> tuple[Rows, Rows]:
    folder = SHARED / "translation"
    english = (folder / "multi30k_train.en").read_text().splitlines()
    german = (folder / "multi30k_train.de").read_text().splitlines()
    rows = _shuffled(
        [{"source": e, "target": d} for e, d in zip(english, german, strict=True)], seed
    )
    return rows[:train], rows[train : train + held]


def dailydialog(train: int, held: int, seed: int) -> tuple[Rows, Rows]:
    rows = []
    for line in (SHARED / "chat/dailydialog_train_dialogues.txt").read_text().splitlines():
        turns = [t.strip() for t in line.split("__eou__") if t.strip()][:6]
        if len(turns) >= 2:
            roles = ("user", "assistant")  # DailyDialog's speakers take turns
            messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
            rows.append({"messages": messages})
    rows = _shuffled(rows, seed)
    return rows[:train], rows[train : train + held]


# task → (starter model, data set, reader, train rows, unseen rows, metric, hyperparameters)
JOBS: dict[str, tuple[str, str, Callable, int, int, str, dict]] = {
    "classification": ("sentiment", "SST-2", sst2, 2000, 500, "accuracy", {"n_epochs": 1}),
    "ner": ("entities", "CoNLL-2003", conll, 1000, 300, "f1", {"n_epochs": 2}),
    "qa": ("qa", "SQuAD v1.1", squad, 1000, 300, "f1", {"n_epochs": 2}),
    "translation": (
        "translate-en-de",
        "Multi30k en→de",
        multi30k,
        28000,
        500,
        "bleu",
        {"n_epochs": 1, "batch_size": 64},
    ),
    "chat": (
        "chat",
        "DailyDialog",
        dailydialog,
        240,
        60,
        "loss",
        {"n_epochs": 1, "batch_size": 8, "learning_rate": 5e-5},
    ),
}


def _jsonl(rows: Rows) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


def run_job(http: httpx.Client, task: str, seed: int) -> dict:
    model, source, read, train_n, held_n, metric, hyper = JOBS[task]
    train, held = read(train_n, held_n, seed)
    files = [
        http.post(
            "/v1/files",
            files={"file": (f"{name}.jsonl", _jsonl(rows))},
            data={"purpose": "fine-tune"},
        )
        for name, rows in (("train", train), ("heldout", held))
    ]
    for response in files:
        response.raise_for_status()
    job = http.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": model,
            "training_file": files[0].json()["id"],
            "validation_file": files[1].json()["id"],
            "hyperparameters": hyper | {"seed": seed},
            "promotion": {"auto": False},
        },
    )
    job.raise_for_status()
    job_id = job.json()["id"]
    while (job := http.get(f"/v1/fine_tuning/jobs/{job_id}").json())["status"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        time.sleep(2)
    if job["status"] != "succeeded":
        raise RuntimeError(f"{task}: job {job_id} {job['status']}: {job['error']}")
    result = job["result"]
    return {
        "task": task,
        "model": model,
        "data": source,
        "train_rows": len(train),
        "unseen_rows": len(held),
        "metric": metric,
        "starter": result["production_metrics"][metric],
        "fine_tuned": result["candidate_metrics"][metric],
        "wall_s": job["finished_at"] - job["created_at"],
        "job": job_id,
        "all_metrics": {
            "starter": result["production_metrics"],
            "fine_tuned": result["candidate_metrics"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(JOBS), help="comma-separated tasks")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads per process (jobs run alone)"
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        console.print(f"skipped: no shared data at {SHARED} (set TUNESERVE_SHARED_DATA)")
        sys.exit(0)
    tasks = args.tasks.split(",")
    settings = bench_settings(args.threads, "full").updated(
        serving={"served_tasks": tasks}, training={"torch_threads": args.threads}
    )
    registry, store = connect(settings.registry)
    for report in build_all(settings, [JOBS[task][0] for task in tasks]):
        register_starter_model(report, settings, registry, store)
    from tuneserve.serving import local

    url = local.start(settings)
    results = []
    try:
        wait_ready(url)
        with httpx.Client(base_url=url, timeout=120) as http:
            for task in tasks:
                console.print(f"{datetime.now():%H:%M:%S} {task}: fine-tuning {JOBS[task][0]}…")
                results.append(run_job(http, task, args.seed))
                console.print(results[-1])
    finally:
        local.stop()
    print_table(
        "fine-tuning on real text, scored on rows the job never saw (through the API)",
        [
            "task",
            "data",
            "train rows",
            "unseen rows",
            "metric",
            "starter",
            "fine-tuned",
            "job wall s",
        ],
        [
            [
                r["task"],
                r["data"],
                r["train_rows"],
                r["unseen_rows"],
                r["metric"],
                r["starter"],
                r["fine_tuned"],
                r["wall_s"],
            ]
            for r in results
        ],
    )
    console.print(f"results: {write_results('quality', {'seed': args.seed, 'jobs': results})}")


if __name__ == "__main__":
    main()
