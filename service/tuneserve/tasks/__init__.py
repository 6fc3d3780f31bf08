"""Task handlers, one module each; ``HANDLERS`` is the only place a task is registered."""

from __future__ import annotations

from tuneserve.tasks.base import TaskHandler
from tuneserve.tasks.chat import ChatHandler
from tuneserve.tasks.classification import ClassificationHandler
from tuneserve.tasks.ner import NerHandler
from tuneserve.tasks.qa import QaHandler
from tuneserve.tasks.translation import TranslationHandler

HANDLERS: dict[str, type[TaskHandler]] = {
    handler.task: handler
    for handler in (
        ClassificationHandler,
        NerHandler,
        QaHandler,
        TranslationHandler,
        ChatHandler,
    )
}


def handler_for(task: str) -> type[TaskHandler]:
    """The handler class of a task name, with an error that lists the known tasks."""
    try:
        return HANDLERS[task]
    except KeyError:
        from tuneserve.errors import InvalidRequest

        known = ", ".join(sorted(HANDLERS))
        raise InvalidRequest(f"unknown task {task!r}; known tasks: {known}", param="task") from None


__all__ = ["HANDLERS", "TaskHandler", "handler_for"]
