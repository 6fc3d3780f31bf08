"""The tasks a deployment serves: the built-in specs, one line each, plus plug-in modules.

A plug-in task is a module with a ``SPEC`` (a ``TaskSpec`` instance) importable on every
node, named in the ``task_modules`` setting; nothing else in tuneserve changes for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence

from tuneserve.errors import InvalidRequest
from tuneserve.tasks import chat, classification, ner, qa, translation
from tuneserve.tasks.spec import TaskSpec

BUILTIN: tuple[TaskSpec, ...] = (
    classification.SPEC,
    ner.SPEC,
    qa.SPEC,
    translation.SPEC,
    chat.SPEC,
)


class TaskCatalog:
    """Specs by task name, in registration order."""

    def __init__(self, specs: Sequence[TaskSpec]):
        self._specs = {spec.name: spec for spec in specs}

    @classmethod
    def load(cls, modules: Sequence[str] = ()) -> TaskCatalog:
        """The built-in tasks plus the ``SPEC`` of each module in ``modules``."""
        extra = [importlib.import_module(module).SPEC for module in modules]
        return cls([*BUILTIN, *extra])

    def get(self, name: str) -> TaskSpec:
        """The spec of a task name, with an error that lists the known tasks."""
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise InvalidRequest(
                f"unknown task {name!r}; known tasks: {known}", param="task"
            ) from None

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self._specs.values())

    def select(self, names: Sequence[str] | None) -> list[TaskSpec]:
        """The specs of ``names`` (every task when None)."""
        return [self.get(name) for name in names] if names is not None else list(self)


def builtin_catalog() -> TaskCatalog:
    return TaskCatalog(BUILTIN)
