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

    def resolve(self, model: str | None, task: str) -> Target:
        """The version a request for ``model`` on a ``task`` route is served by."""
        name, _, ref = (model or self.default_models.get(task, "")).partition("@")
        if not name:
            raise InvalidRequest(f"no default model for task {task!r}; name one", param="model")
        snapshot = self._snapshot(name, fresh=False)
        if snapshot.task != task:
            raise InvalidRequest(
                f"model {name!r} is a {snapshot.task} model and cannot serve {task}; "
                "use the route of its task or another model",
                param="model",
            )
        if ref.isdigit():
            number = int(ref)
            if number not in snapshot.versions:
                snapshot = self._snapshot(name, fresh=True)
            if number not in snapshot.versions:
                raise NotFound(f"model {name!r} has no version {number}", param="model")
            return Target(name, number, task)
        alias = ref or "production"
        if alias not in snapshot.aliases:
            raise NotFound(f"model {name!r} has no alias {alias!r}", param="model")
        return Target(name, snapshot.aliases[alias], task)

    def resolve_cached(self, model: str | None, task: str) -> Target | None:
        """``resolve`` from the cached view alone (no database), or None if that is not enough.

        The hot path: the event loop answers most requests without a thread hop.
        """
        name, _, ref = (model or self.default_models.get(task, "")).partition("@")
        with self._lock:
            snapshot = self._snapshots.get(name)
        if snapshot is None or time.monotonic() - snapshot.taken_at >= self.ttl_s:
            return None
        if snapshot.task != task:
            return None  # let resolve() raise the error
        if ref.isdigit():
            return Target(name, int(ref), task) if int(ref) in snapshot.versions else None
        version = snapshot.aliases.get(ref or "production")
        return Target(name, version, task) if version is not None else None

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
