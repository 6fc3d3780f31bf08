"""``tuneserve classify|ner|qa|translate|chat``: the tasks of a service, from a terminal.

Inputs come as arguments, a JSONL file, or stdin's lines; they are sent in batches of
``--batch-size``. ``--json`` prints the service's answers as they are, one per batch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from tuneserve_client import Client
from tuneserve_client.models import ClassificationOutput, NerOutput, QaOutput

from tuneserve.cli.apps import app
from tuneserve.cli.remote import (
    FileOption,
    JsonFlag,
    answer_in_batches,
    console,
    print_json,
    read_inputs,
    service,
    text_of,
)

Texts = Annotated[list[str] | None, typer.Argument(help="Texts; none: --file or stdin.")]
Model = Annotated[str | None, typer.Option(help="name, name@3 or name@alias.")]
BatchSize = Annotated[int, typer.Option(help="Inputs per request.", min=1)]


@app.command()
def classify(
    texts: Texts = None,
    file: FileOption = None,
    model: Model = None,
    top_k: Annotated[int, typer.Option(help="Labels per text.", min=1)] = 1,
    batch_size: BatchSize = 32,
    json: JsonFlag = False,
) -> None:
    """Label texts (sentiment by default)."""

    def rows(text: str, result: ClassificationOutput) -> Iterator[tuple[str, ...]]:
        others = ", ".join(f"{o.label} {o.score:.3f}" for o in result.top[1:])
        yield text, result.label, f"{result.score:.3f}", others

    answer_in_batches(
        [text_of(item) for item in read_inputs(texts, file)],
        batch_size,
        lambda client, batch: client.classify(batch, model=model, top_k=top_k),
        ("text", "label", "score", "others"),
        rows,
        json,
    )


@app.command()
def ner(
    texts: Texts = None,
    file: FileOption = None,
    model: Model = None,
    batch_size: BatchSize = 32,
    json: JsonFlag = False,
) -> None:
    """Named entities, with their character offsets."""

    def rows(text: str, result: NerOutput) -> Iterator[tuple[str, ...]]:
        for e in result.entities or []:
            yield text, e.text, e.label, f"{e.start}-{e.end}", f"{e.score:.3f}"
        if not result.entities:
            yield text, "", "", "", ""

    answer_in_batches(
        [text_of(item) for item in read_inputs(texts, file)],
        batch_size,
        lambda client, batch: client.ner(batch, model=model),
        ("text", "entity", "label", "span", "score"),
        rows,
        json,
    )


@app.command()
def qa(
    questions: Annotated[list[str] | None, typer.Argument(help="Questions on --context.")] = None,
    context: Annotated[str | None, typer.Option(help="The text the answers are in.")] = None,
    file: FileOption = None,
    model: Model = None,
    batch_size: BatchSize = 32,
    json: JsonFlag = False,
) -> None:
    """Answer spans: QUESTION… --context TEXT, or JSONL lines {"question", "context"}."""
    items = read_inputs(questions, file)
    pairs = [
        item if isinstance(item, dict) else {"question": item, "context": context} for item in items
    ]
    if any(not pair.get("context") for pair in pairs):
        console.print("[red]every question needs a context: --context, or one per JSONL line")
        raise typer.Exit(2)

    def rows(pair: dict, result: QaOutput) -> Iterator[tuple[str, ...]]:
        yield pair["question"], result.answer, f"{result.start}-{result.end}", f"{result.score:.3f}"

    answer_in_batches(
        pairs,
        batch_size,
        lambda client, batch: client.qa(inputs=batch, model=model),
        ("question", "answer", "span", "score"),
        rows,
        json,
    )


@app.command()
def translate(
    texts: Texts = None,
    file: FileOption = None,
    model: Model = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Most tokens each.")] = None,
    batch_size: BatchSize = 16,
    json: JsonFlag = False,
) -> None:
    """Translate texts (English → German with the starter model)."""
    answer_in_batches(
        [text_of(item) for item in read_inputs(texts, file)],
        batch_size,
        lambda client, batch: client.translate(batch, model=model, max_new_tokens=max_new_tokens),
        ("source", "translation"),
        lambda text, result: [(text, result.translation)],
        json,
    )


@app.command()
def chat(
    message: Annotated[
        str | None, typer.Argument(help="One message; none: a conversation.")
    ] = None,
    file: FileOption = None,
    model: Model = None,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens per reply.")] = None,
    temperature: Annotated[float | None, typer.Option(help="0: greedy.")] = None,
    json: JsonFlag = False,
) -> None:
    """Chat, streamed token by token. With no MESSAGE on a terminal: a conversation (empty
    line or Ctrl-D ends it); from a pipe or --file: one reply per line (a text, or a JSON
    object with "messages")."""
    params = {"model": model, "max_completion_tokens": max_tokens, "temperature": temperature}
    params = {key: value for key, value in params.items() if value is not None}
    prefix = [{"role": "system", "content": system}] if system else []
    with service() as client:
        if message is None and file is None and sys.stdin.isatty():
            _conversation(client, prefix, params)
            return
        for item in [message] if message is not None else read_inputs(None, file):
            messages = (
                item["messages"]
                if isinstance(item, dict) and "messages" in item
                else [*prefix, {"role": "user", "content": text_of(item, "content")}]
            )
            if json:
                print_json(client.chat.completions.create(messages, **params))
            else:
                _stream_reply(client, messages, params)


def _conversation(client: Client, history: list[dict], params: dict) -> None:
    while True:
        try:
            line = console.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            return
        if not line.strip():
            return
        history.append({"role": "user", "content": line})
        history.append({"role": "assistant", "content": _stream_reply(client, history, params)})


def _stream_reply(client: Client, messages: list[dict], params: dict) -> str:
    """Print the reply as it streams in; its text."""
    parts = []
    for chunk in client.chat.completions.create(messages, stream=True, **params):
        for choice in chunk.choices:
            text = choice.delta.content or ""
            parts.append(text)
            print(text, end="", flush=True)
    print()
    return "".join(parts)
