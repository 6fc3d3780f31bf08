"""Zero-downtime promotion and rollback of a model's ``production`` alias.

Promotion loads and warms the new version on *every* running replica of the task first
(through the ``Fleet``), checks that each acknowledged, and only then moves the alias in
one compare-and-set. Requests already resolved keep their version; new ones get the new
one within the gateways' alias staleness bound. Production and the previous production
stay pinned in every replica, so a rollback needs no load at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from tuneserve.errors import Conflict, NotFound, Unavailable
from tuneserve.registry import Registry
from tuneserve.registry.refs import PRODUCTION
from tuneserve.telemetry import Recorder, catalog


class Fleet(Protocol):
    """The running replicas of each task, as the serving layer reaches them."""

    def load_everywhere(self, task: str, name: str, version: int) -> list[dict]:
        """Load and warm ``name@version`` on every replica; one acknowledgement each."""

    def set_pins(self, task: str, name: str, versions: list[int]) -> None:
        """Keep exactly ``versions`` of ``name`` pinned on every replica."""


@dataclass(frozen=True)
class Swap:
    model: str
    from_version: int | None
    to_version: int
    replicas: list[str]
    seconds: float
    alias: str = PRODUCTION


def _load_everywhere(fleet: Fleet, task: str, name: str, version: int) -> list[str]:
    acks = fleet.load_everywhere(task, name, version)
    if not acks:
        raise Unavailable(f"no running replica serves {name}; nothing was changed")
    if any(ack["version"] != version for ack in acks):
        raise Unavailable(f"a replica did not load {name}@{version}; nothing was changed")
    return sorted(ack["replica_id"] for ack in acks)


def promote(
    registry: Registry,
    fleet: Fleet,
    name: str,
    version: int,
    expected_from: int | None = None,
    reason: str = "promoted",
    recorder: Recorder | None = None,
    kind: str = "promotion",
) -> Swap:
    """Make ``name@version`` production on every replica; 409 if production moved meanwhile.

    ``expected_from`` is the production version the caller decided against (a job's
    evaluation, say); None means "whatever production is now".
    """
    # NotFound before touching any replica: an unknown version is not a swap of anything
    task = registry.get_version(name, version).task
    labels = {"task": task, "model": name, "kind": kind}
    recorder = recorder or Recorder(enabled=False)
    try:
        swap = _swap(registry, fleet, task, name, version, expected_from, reason)
    except Exception:
        recorder.count(catalog.SWAPS, outcome="error", **labels)
        raise
    recorder.count(catalog.SWAPS, outcome="ok", **labels)
    recorder.observe(catalog.SWAP_DURATION, swap.seconds, **labels)
    return swap


def _swap(
    registry: Registry,
    fleet: Fleet,
    task: str,
    name: str,
    version: int,
    expected_from: int | None,
    reason: str,
) -> Swap:
    started = time.perf_counter()
    current = registry.aliases(name).get(PRODUCTION)
    if expected_from is not None and current != expected_from:
        raise Conflict(
            f"production of {name} is version {current}, not {expected_from}", param="expected_from"
        )
    replicas = _load_everywhere(fleet, task, name, version)
    registry.move_alias(name, PRODUCTION, version, current, reason=reason)
    keep = [version] + ([current] if current is not None and current != version else [])
    fleet.set_pins(task, name, keep)
    return Swap(name, current, version, replicas, time.perf_counter() - started)


def rollback(registry: Registry, fleet: Fleet, name: str, recorder: Recorder | None = None) -> Swap:
    """Move production back to the version it pointed at before its last move."""
    previous = registry.previous_version(name, PRODUCTION)
    if previous is None:
        raise NotFound(f"{name} has no previous production version to roll back to", param="name")
    return promote(
        registry, fleet, name, previous, reason="rollback", recorder=recorder, kind="rollback"
    )
