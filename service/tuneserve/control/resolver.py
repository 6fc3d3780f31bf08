"""Resolve ``model`` strings (``sentiment``, ``sentiment@3``, ``sentiment@candidate``).

The gateway keeps a short-lived copy of each model's aliases and versions, so resolution
costs no database round trip per request; its staleness is bounded by ``ttl_s``. A version
number not in the copy triggers one refresh, so a just-registered version is found at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tuneserve.errors import InvalidRequest, NotFound
from tuneserve.registry import Registry
from tuneserve.registry.refs import ModelRef


@dataclass(frozen=True)
class Target:
    """A concrete model version a request is served by."""

    name: str
    version: int
    task: str


@dataclass(frozen=True)
class _Snapshot:
    task: str
    aliases: dict[str, int]
    versions: frozenset[int]
    taken_at: float


class ModelResolver:
    def __init__(self, registry: Registry, default_models: dict[str, str], ttl_s: float):
        self.registry = registry
        self.default_models = default_models
        self.ttl_s = ttl_s
        self._snapshots: dict[str, _Snapshot] = {}
        self._lock = threading.Lock()

    def _ref(self, model: str | None, task: str) -> ModelRef:
        ref = ModelRef.parse(model or self.default_models.get(task, ""))
        if not ref.name:
            raise InvalidRequest(f"no default model for task {task!r}; name one", param="model")
        return ref

    def resolve(self, model: str | None, task: str) -> Target:
        """The version a request for ``model`` on a ``task`` route is served by."""
        ref = self._ref(model, task)
        name = ref.name
        snapshot = self._snapshot(name, fresh=False)
        if snapshot.task != task:
            raise InvalidRequest(
                f"model {name!r} is a {snapshot.task} model and cannot serve {task}; "
                "use the route of its task or another model",
                param="model",
            )
        if ref.version is not None:
            if ref.version not in snapshot.versions:
                snapshot = self._snapshot(name, fresh=True)
            if ref.version not in snapshot.versions:
                raise NotFound(f"model {name!r} has no version {ref.version}", param="model")
            return Target(name, ref.version, task)
        if ref.alias not in snapshot.aliases:
            raise NotFound(f"model {name!r} has no alias {ref.alias!r}", param="model")
        return Target(name, snapshot.aliases[ref.alias], task)

    def resolve_cached(self, model: str | None, task: str) -> Target | None:
        """``resolve`` from the cached view alone (no database), or None if that is not enough.

        The hot path: the event loop answers most requests without a thread hop.
        """
        ref = ModelRef.parse(model or self.default_models.get(task, ""))
        with self._lock:
            snapshot = self._snapshots.get(ref.name)
        if snapshot is None or time.monotonic() - snapshot.taken_at >= self.ttl_s:
            return None
        if snapshot.task != task:
            return None  # let resolve() raise the error
        if ref.version is not None:
            return Target(ref.name, ref.version, task) if ref.version in snapshot.versions else None
        version = snapshot.aliases.get(ref.alias)
        return Target(ref.name, version, task) if version is not None else None

    def _snapshot(self, name: str, fresh: bool) -> _Snapshot:
        with self._lock:
            cached = self._snapshots.get(name)
        if cached and not fresh and time.monotonic() - cached.taken_at < self.ttl_s:
            return cached
        model = self.registry.get_model(name)  # NotFound names the model
        snapshot = _Snapshot(
            task=model.task,
            aliases=self.registry.aliases(name),
            versions=frozenset(v.version for v in self.registry.list_versions(name)),
            taken_at=time.monotonic(),
        )
        with self._lock:
            self._snapshots[name] = snapshot
        return snapshot

    def forget(self, name: str) -> None:
        """Drop the cached view of ``name`` (after this gateway moved one of its aliases)."""
        with self._lock:
            self._snapshots.pop(name, None)
