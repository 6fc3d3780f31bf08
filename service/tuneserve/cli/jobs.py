"""``tuneserve files …`` and ``tuneserve jobs …``: training files and fine-tuning jobs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from tuneserve_client import Client

from tuneserve.cli.apps import files_app, jobs_app
from tuneserve.cli.progress import evaluation_table, follow_job
from tuneserve.cli.remote import JsonFlag, console, print_json, service, table

ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@files_app.command("upload")
def files_upload(
    path: ExistingFile,
    task: Annotated[str | None, typer.Option(help="Default: inferred from the rows.")] = None,
    json: JsonFlag = False,
) -> None:
    """Upload JSONL or CSV rows; every row is checked (errors name the line and field)."""
    with service() as client:
        uploaded = client.files.create(path, task=task)
    if json:
        print_json(uploaded)
    else:
        console.print(f"{uploaded.id}: {uploaded.rows} {uploaded.task} rows from {path.name}")


@files_app.command("list")
def files_list(json: JsonFlag = False) -> None:
    with service() as client:
        files = client.files.list()
    if json:
        print_json(files)
        return
    shown = table("id", "file", "task", "rows", "bytes", "created")
    for f in files.data:
        shown.add_row(f.id, f.filename, f.task, str(f.rows), str(f.bytes), _when(f.created_at))
    console.print(shown)


@files_app.command("delete")
def files_delete(file_id: str) -> None:
    with service() as client:
        client.files.delete(file_id)
    console.print(f"deleted {file_id}")


@jobs_app.command("create")
def jobs_create(
    model: Annotated[str, typer.Option(help="Base model: name, name@3 or name@alias.")],
    file: Annotated[str, typer.Option(help="Training rows: a JSONL/CSV path or a file id.")],
    validation: Annotated[str | None, typer.Option(help="Held-out rows: path or id.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0)] = None,
    suffix: Annotated[str | None, typer.Option(help="Train a new model <model>:<suffix>.")] = None,
    lora: Annotated[bool, typer.Option(help="Train a LoRA adapter, not every weight.")] = False,
    auto_promote: Annotated[
        bool | None, typer.Option(help="Promote when the gate passes [default: admin keys].")
    ] = None,
    min_delta: Annotated[float, typer.Option(help="How much better it must be.")] = 0.0,
    seed: Annotated[int | None, typer.Option()] = None,
    follow: Annotated[bool, typer.Option(help="Show its progress until it ends.")] = False,
    json: JsonFlag = False,
) -> None:
    """Fine-tune MODEL on a file; with --follow, a progress bar, then the evaluation table
    (candidate against production) and the gate's decision. Exits 1 if the job fails."""
    hyper = {"n_epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    fields: dict[str, Any] = {
        "hyperparameters": {k: v for k, v in hyper.items() if v is not None} or None,
        "suffix": suffix,
        "seed": seed,
        "method": {"type": "lora"} if lora else None,
        "promotion": {"auto": auto_promote, "min_delta": min_delta},
    }
    with service() as client:
        training = _file_id(client, file)
        fields["validation_file"] = _file_id(client, validation) if validation else None
        job = client.fine_tuning.jobs.create(model, training, **fields)
        if not follow:
            print_json(job) if json else console.print(f"created {job.id} ({job.status})")
            return
        console.print(f"created {job.id}: {model} on {training}")
        job = follow_job(client, job.id, epochs or job.hyperparameters.get("n_epochs"), console)
    _ended(job, json)


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20, json: JsonFlag = False
) -> None:
    """The newest jobs first."""
    with service() as client:
        jobs = client.fine_tuning.jobs.list(limit=limit)
    if json:
        print_json(jobs)
        return
    shown = table("id", "model", "task", "status", "created", "fine-tuned model")
    for job in jobs.data:
        created = _when(job.created_at)
        shown.add_row(job.id, job.model, job.task, job.status, created, job.fine_tuned_model or "")
    console.print(shown)


@jobs_app.command("show")
def jobs_show(job_id: str, json: JsonFlag = False) -> None:
    """A job: its state, and when it has one its evaluation and the gate's decision."""
    with service() as client:
        job = client.fine_tuning.jobs.get(job_id)
    _ended(job, json, exit_on_failure=False)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel: at once if queued; a running job stops at its next step."""
    with service() as client:
        job = client.fine_tuning.jobs.cancel(job_id)
    console.print(f"{job.id}: {job.status}")


@jobs_app.command("events")
def jobs_events(
    job_id: str,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    json: JsonFlag = False,
) -> None:
    """The job's latest events, oldest first."""
    with service() as client:
        events = client.fine_tuning.jobs.events(job_id, limit=limit)
    if json:
        print_json(events)
        return
    shown = table("time", "level", "message")
    for event in reversed(events.data):
        shown.add_row(_when(event.created_at), event.level, event.message)
    console.print(shown)


def _file_id(client: Client, path_or_id: str) -> str:
    """A path is uploaded (its id returned); anything else is taken for a file id."""
    path = Path(path_or_id)
    if not path.is_file():
        return path_or_id
    uploaded = client.files.create(path)
    console.print(f"uploaded {path.name}: {uploaded.id} ({uploaded.rows} {uploaded.task} rows)")
    return uploaded.id


def _ended(job: Any, json: bool, exit_on_failure: bool = True) -> None:
    if json:
        print_json(job)
    else:
        console.print(f"[bold]{job.id}[/bold] {job.model} → {job.status}")
        if job.result:
            console.print(evaluation_table(job.result))
            verdict = "[green]promoted[/green]" if job.result.get("promoted") else "not promoted"
            console.print(f"gate: {verdict}: {job.result.get('reason')}")
        if job.fine_tuned_model:
            console.print(f"fine-tuned model: {job.fine_tuned_model}")
        if job.error:
            console.print(f"[red]{job.error.code}: {job.error.message}[/red]")
    if exit_on_failure and job.status != "succeeded":
        raise typer.Exit(1)


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
