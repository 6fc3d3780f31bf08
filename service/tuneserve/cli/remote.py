"""How the commands that use a service reach it: the root options, the client, the errors.

``tuneserve --url URL --key KEY <command>`` (or ``TUNESERVE_URL`` / ``TUNESERVE_API_KEY``).
An error answer prints the service's message and the field it names, and exits 2; a service
that cannot be reached exits 3. Nothing here knows a route: that is the client's job.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from tuneserve_client import APIConnectionError, APIStatusError, Client

from tuneserve.cli.apps import app

console = Console()
errors = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine output: JSON, one per line.")]
FileOption = Annotated[
    Path | None, typer.Option("--file", "-f", help="A JSONL file of inputs (- for stdin).")
]


@dataclass
class Connection:
    url: str | None = None
    key: str | None = None
    timeout_s: float = 120.0


connection = Connection()


@app.callback()
def connect(
    url: Annotated[
        str | None,
        typer.Option(envvar="TUNESERVE_URL", help="The service [default: http://127.0.0.1:8000]"),
    ] = None,
    key: Annotated[
        str | None, typer.Option(envvar="TUNESERVE_API_KEY", help="An API key of the service.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 120.0,
) -> None:
    """Model serving with online fine-tuning on Ray: serve it, call it, fine-tune on it."""
    connection.url, connection.key, connection.timeout_s = url, key, timeout


@contextmanager
def service() -> Iterator[Client]:
    """A client of the service; its errors become a message and an exit code."""
    try:
        with Client(connection.url, connection.key, timeout=connection.timeout_s) as client:
            yield client
    except APIStatusError as error:
        where = f" ({error.param})" if error.param else ""
        errors.print(f"[red]{error.status_code} {error.type}{where}: {error.message}[/red]")
        raise typer.Exit(2) from None
    except APIConnectionError as error:
        url = connection.url or "http://127.0.0.1:8000"
        errors.print(f"[red]cannot reach the service at {url}: {error}[/red]")
        raise typer.Exit(3) from None


def print_json(data: BaseModel | dict | list) -> None:
    """One JSON document on one line (``jq`` reads a stream of them)."""
    if isinstance(data, BaseModel):
        print(data.model_dump_json())
    else:
        print(json.dumps(data))


def read_inputs(args: list[str] | None, file: Path | None) -> list[Any]:
    """Inputs from the arguments, else a JSONL file (``-``: stdin), else stdin's lines.

    A JSONL line is a JSON string or an object; stdin without ``--file`` is one plain text
    per line (blank lines skipped). A line that is not JSON is refused naming its number.
    """
    if args:
        return list(args)
    if file is not None:
        lines = sys.stdin if str(file) == "-" else file.open(encoding="utf-8")
        return [_json_line(line, number) for number, line in enumerate(lines, 1) if line.strip()]
    if sys.stdin.isatty():
        errors.print("[red]give the inputs as arguments, --file PATH, or on stdin[/red]")
        raise typer.Exit(2)
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def _json_line(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as error:
        errors.print(f"[red]line {number}: not JSON ({error})[/red]")
        raise typer.Exit(2) from None


def text_of(item: Any, field: str = "text") -> str:
    """A JSONL item's text: the string itself or its object's ``field`` (or ``text``)."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get(field, item.get("text")), str):
        return item.get(field, item.get("text"))
    errors.print(f"[red]an input is neither a string nor an object with {field!r}: {item}[/red]")
    raise typer.Exit(2)


def answer_in_batches(
    items: list[Any],
    batch_size: int,
    ask: Callable[[Client, list[Any]], Any],
    columns: tuple[str, ...],
    rows: Callable[[Any, Any], Iterable[tuple[str, ...]]],
    json: bool,
) -> None:
    """Send ``items`` ``batch_size`` at a time through ``ask``; print each answer as JSON, or
    gather every item's ``rows(item, result)`` into one table printed at the end."""
    shown = table(*columns)
    with service() as client:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            answer = ask(client, batch)
            if json:
                print_json(answer)
                continue
            for item, result in zip(batch, answer.results, strict=True):
                for row in rows(item, result):
                    shown.add_row(*row)
    if not json:
        console.print(shown)


def table(*columns: str) -> Table:
    """A table whose long cells wrap rather than cut."""
    shown = Table()
    for column in columns:
        shown.add_column(column, overflow="fold")
    return shown
