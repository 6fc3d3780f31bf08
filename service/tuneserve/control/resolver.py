"""Resolve ``model`` strings (``sentiment``, ``sentiment@3``, ``sentiment@candidate``).

The gateway keeps a short-lived view of each model's aliases and versions, so resolution
costs no database round trip per request; its staleness is bounded by ``ttl_s``. A version
number not in the view triggers one refresh, so a just-registered version is found at
once; but at most one such refresh per model per ``ttl_s``, and a view read by this very
call counts as one, so a flood of requests for versions that do not exist (``x@999999``)
is answered from memory and costs the database no more than one read per model per ttl.
Numbers outside the version column's range are refused without a read at all.

While the database cannot be read, a view keeps serving for up to ``outage_grace_s``
after its last good read (tried again once per ``ttl_s``): inference on the models this
gateway has seen goes on through an outage; a model or version it has not seen gets 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from tuneserve.errors import InvalidRequest, NotFound, Unavailable
from tuneserve.registry import Registry
from tuneserve.registry.catalog import MAX_VERSION
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
    taken_at: float  # when it was read from the database
    checked_at: float  # when it was read, or last tried while the database was down


class ModelResolver:
    def __init__(
        self,
        registry: Registry,
        default_models: dict[str, str],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        outage_grace_s: float = 0.0,
    ):
        self.registry = registry
        self.default_models = default_models
        self.ttl_s = ttl_s
        self.outage_grace_s = outage_grace_s
        self.clock = clock
        self._snapshots: dict[str, _Snapshot] = {}
        self._miss_refreshed_at: dict[str, float] = {}  # per model: last refresh for a miss
        self._lock = threading.Lock()

    def _ref(self, model: str | None, task: str) -> ModelRef:
        ref = ModelRef.parse(model or self.default_models.get(task, ""))
        if not ref.name:
            raise InvalidRequest(f"no default model for task {task!r}; name one", param="model")
        if ref.version is not None and not 0 < ref.version <= MAX_VERSION:
            raise NotFound(f"model {ref.name!r} has no version {ref.version}", param="model")
        return ref

    def resolve(self, model: str | None, task: str) -> Target:
        """The version a request for ``model`` on a ``task`` route is served by."""
        ref = self._ref(model, task)
        name = ref.name
        snapshot, read_now = self._snapshot(name)
        if snapshot.task != task:
            raise InvalidRequest(
                f"model {name!r} is a {snapshot.task} model and cannot serve {task}; "
                "use the route of its task or another model",
                param="model",
            )
        if ref.version is not None:
            if ref.version not in snapshot.versions and self._may_refresh_for_miss(name, read_now):
                snapshot = self._refresh(name)
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
        if snapshot is None or self.clock() - snapshot.checked_at >= self.ttl_s:
            return None
        if snapshot.task != task:
            return None  # let resolve() raise the error
        if ref.version is not None:
            return Target(ref.name, ref.version, task) if ref.version in snapshot.versions else None
        version = snapshot.aliases.get(ref.alias)
        return Target(ref.name, version, task) if version is not None else None

    def _snapshot(self, name: str) -> tuple[_Snapshot, bool]:
        """The view of ``name``, and whether it was read from the database just now."""
        with self._lock:
            cached = self._snapshots.get(name)
        if cached and self.clock() - cached.checked_at < self.ttl_s:
            return cached, False
        return self._refresh(name, stale=cached), True

    def _may_refresh_for_miss(self, name: str, read_now: bool) -> bool:
        """Whether a version missing from the view is worth a read: not if the view was read
        by this call, nor if a miss of this model already caused a read within ``ttl_s``."""
        now = self.clock()
        with self._lock:
            last = self._miss_refreshed_at.get(name)
            allowed = not read_now and (last is None or now - last >= self.ttl_s)
            if read_now or allowed:
                self._miss_refreshed_at[name] = now
            return allowed

    def _refresh(self, name: str, stale: _Snapshot | None = None) -> _Snapshot:
        """A view of ``name`` read now; if the database cannot be read, ``stale`` while it
        is within the outage grace (its next read is tried after ``ttl_s``)."""
        try:
            model, versions = self.registry.model_view(name)  # NotFound names the model
        except Unavailable:
            now = self.clock()
            if stale is None or now - stale.taken_at >= self.outage_grace_s:
                raise
            snapshot = replace(stale, checked_at=now)
        else:
            now = self.clock()
            snapshot = _Snapshot(model.task, model.aliases, versions, taken_at=now, checked_at=now)
        with self._lock:
            self._snapshots[name] = snapshot
        return snapshot

    def forget(self, name: str) -> None:
        """Drop the cached view of ``name`` (after this gateway moved one of its aliases)."""
        with self._lock:
            self._snapshots.pop(name, None)
