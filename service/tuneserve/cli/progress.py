"""A followed job in a terminal: a live progress bar from its events, then its evaluation.

The bar is driven by the job's own events (``GET …/events``, through ``jobs.follow``):
each step event carries ``step``, ``total_steps``, ``epoch``, ``train_loss`` and
``learning_rate``; other events are printed above the bar as they arrive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from tuneserve_client import Client

COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    TextColumn("{task.percentage:>3.0f}%"),
    MofNCompleteColumn(),
    TextColumn("{task.fields[loss]}"),
    TextColumn("{task.fields[lr]}"),
    TextColumn("ETA"),
    TimeRemainingColumn(),
    TimeElapsedColumn(),
)


def follow_job(client: Client, job_id: str, epochs: Any, console: Console) -> Any:
    """Show the job's progress until it ends; the job as it ended."""
    with Progress(*COLUMNS, console=console) as progress:
        bar = progress.add_task("queued", total=None, loss="", lr="")
        for event in client.fine_tuning.jobs.follow(job_id, poll_interval_s=0.5):
            data = event.data or {}
            if event.type == "metrics" and "total_steps" in data:
                epoch = f"epoch {data['epoch']}" + (f"/{epochs}" if isinstance(epochs, int) else "")
                progress.update(
                    bar,
                    description=epoch,
                    total=data["total_steps"],
                    completed=data["step"],
                    loss=f"loss {data['train_loss']:.4f}",
                    lr=f"lr {data['learning_rate']:.2e}",
                )
            elif event.type == "metrics":  # an epoch's end: its steps and mean loss
                loss = data.get("epoch_train_loss")
                shown = {"loss": f"loss {loss:.4f}"} if isinstance(loss, float) else {}
                progress.update(bar, completed=data["step"], **shown)
            if event.type != "metrics" or "total_steps" not in data:
                when = datetime.fromtimestamp(event.created_at).strftime("%H:%M:%S")
                style = {"error": "red", "warning": "yellow"}.get(event.level, "dim")
                progress.console.print(f"[{style}]{when} {event.message}[/{style}]")
        job = client.fine_tuning.jobs.get(job_id)
        if job.status == "succeeded":  # training ran to its last step
            done = progress.tasks[0]  # a short job may end before a step event gave a total
            total = done.total or done.completed or 1
            progress.update(bar, description="trained", total=total, completed=total)
    return job


def evaluation_table(result: dict[str, Any]) -> Table:
    """Candidate against production on the job's held-out rows, the gate's metric first
    (the numbers; nested ones, such as per-class scores, are in ``jobs show --json``)."""
    candidate = result.get("candidate_metrics") or {}
    production = result.get("production_metrics") or {}
    gate = result.get("metric")
    numbers = [name for name, value in candidate.items() if isinstance(value, int | float)]
    names = sorted(numbers, key=lambda name: (name != gate, name))
    table = Table(title="evaluation on the held-out rows")
    for column in ("metric", f"candidate v{result.get('candidate_version')}", "production"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    if production:
        table.columns[2].header = f"production v{result.get('production_version')}"
    for name in names:
        label = f"[bold]{name}[/bold] (gate)" if name == gate else name
        table.add_row(label, _number(candidate.get(name)), _number(production.get(name)))
    return table


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "—" if value is None else str(value)
