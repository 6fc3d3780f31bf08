"""One sample request per starter model, answered by its production version."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from tuneserve.registry import connect
from tuneserve.settings import Settings
from tuneserve.tasks.catalog import TaskCatalog
from tuneserve.tasks.handlers.lora import open_version

SAMPLES: dict[str, dict] = {
    "sentiment": {"text": "The concert was absolutely wonderful.", "top_k": 2},
    "entities": {"text": "Anna Schmidt met Kenji Tanaka at Siemens in Berlin."},
    "qa": {
        "question": "Where was Maria Rossi born?",
        "context": "Maria Rossi was born in Vienna. Peter Chen works as a pilot.",
    },
    "translate-en-de": {"text": "The woman buys the book."},
    "chat": {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 24,
        "temperature": 0,
    },
}


def sample_predictions(settings: Settings) -> Iterator[tuple[str, BaseModel, BaseModel]]:
    """(model name, request item, output) for every starter model's production version."""
    registry, store = connect(settings.registry)
    catalog = TaskCatalog.load(settings.tasks.modules)
    for name, payload in SAMPLES.items():
        version = registry.resolve(name, None)
        spec = catalog.get(version.task)
        base = version.weights_base
        handler = open_version(
            spec.handler_class(),
            store.local_path(version.artifact_uri),
            store.local_path(base[0]) if base else None,
            max_length=settings.limits.max_sequence_length,
            options=spec.options(settings.tasks.options.get(spec.name)),
        )
        item = spec.Item(**payload)
        yield f"{name}@{version.version}", item, handler.predict([item])[0]
