"""Zero-downtime promotion and rollback of a model's ``production`` alias.

Promotion loads and warms the new version on *every* running replica of the task first
(through the ``Fleet``), checks that each acknowledged, and only then moves the alias in
one compare-and-set. Requests already resolved keep their version; new ones get the new
one within the gateways' alias staleness bound. Production and the previous production
stay pinned in every replica, so a rollback needs no load at all.

The compare-and-set is the commit point. Before it, a failure leaves the registry as it
was and the replicas' pins as the registry says they should be. After it the move has
happened, so a failure to re-pin the replicas is logged and returned as a ``warning`` on
a successful answer: an error would make the caller retry a move that is done.

Promoting the version that is production already is a no-op (no replica call, no history
row, no metric). A rollback goes back to the version the last promotion replaced; a second
rollback in a row is refused unless the caller names the version, because it would undo
the first and bring back the version just rolled away from.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from tuneserve.errors import Conflict, InvalidRequest, NotFound, Unavailable
from tuneserve.registry import Registry
from tuneserve.registry.aliases import ROLLBACK
from tuneserve.registry.refs import PRODUCTION
from tuneserve.tasks.spec import BASE_ENCODER
from tuneserve.telemetry import Recorder, catalog

logger = logging.getLogger(__name__)
PROMOTED = "promoted"  # the history reason of a promotion made through the API


class Fleet(Protocol):
    """The running replicas of each task, as the serving layer reaches them."""

    def load_everywhere(self, task: str, name: str, version: int) -> list[dict]:
        """Load, warm and pin ``name@version`` on every replica; one acknowledgement each."""

    def set_pins(self, task: str, name: str, versions: list[int]) -> None:
        """Keep exactly ``versions`` of ``name`` pinned on every replica (production first)."""


@dataclass(frozen=True)
class Swap:
    model: str
    from_version: int | None
    to_version: int
    replicas: list[str]
    seconds: float
    alias: str = PRODUCTION
    changed: bool = True  # False: the version was production already and nothing was done
    warning: str | None = None  # a step after the move failed; production did move


def promote(
    registry: Registry,
    fleet: Fleet,
    name: str,
    version: int,
    expected_from: int | None = None,
    reason: str = PROMOTED,
    recorder: Recorder | None = None,
    kind: str = "promotion",
) -> Swap:
    """Make ``name@version`` production on every replica; 409 if production moved meanwhile.

    ``expected_from`` is the production version the caller decided against (a job's
    evaluation, say); None means "whatever production is now".
    """
    started = time.perf_counter()
    # NotFound before touching any replica: an unknown version is not a swap of anything
    task = registry.get_version(name, version).task
    if task == BASE_ENCODER:
        raise InvalidRequest(
            f"{name} is a plain encoder: no replica serves it, so it has no production to "
            "move; fine-tune it with labels into a model that serves",
            param="name",
        )
    labels = {"task": task, "model": name, "kind": kind}
    recorder = recorder or Recorder(enabled=False)
    try:
        current = registry.aliases(name).get(PRODUCTION)
        if expected_from is not None and current != expected_from:
            raise Conflict(
                f"production of {name} is version {current}, not {expected_from}",
                param="expected_from",
            )
        if current == version:
            return Swap(name, current, version, [], time.perf_counter() - started, changed=False)
        replicas = _move(registry, fleet, task, name, version, current, reason)
    except Exception:
        recorder.count(catalog.SWAPS, outcome="error", **labels)
        raise
    swap = Swap(name, current, version, replicas, time.perf_counter() - started)
    return _after_move(fleet, recorder, swap, task, labels)


def _move(
    registry: Registry,
    fleet: Fleet,
    task: str,
    name: str,
    version: int,
    current: int | None,
    reason: str,
) -> list[str]:
    """Load everywhere, then compare-and-set; if either fails, the replicas' pins go back
    to what the registry says (loading pinned the new version wherever it got that far)."""
    try:
        replicas = _load_everywhere(fleet, task, name, version)
        registry.move_alias(name, PRODUCTION, version, current, reason=reason)
    except Exception:
        _restore_pins(registry, fleet, task, name)
        raise
    return replicas


def _load_everywhere(fleet: Fleet, task: str, name: str, version: int) -> list[str]:
    acks = fleet.load_everywhere(task, name, version)
    if not acks:
        raise Unavailable(f"no running replica serves {name}; nothing was changed")
    if any(ack["version"] != version for ack in acks):
        raise Unavailable(f"a replica did not load {name}@{version}; nothing was changed")
    return sorted(ack["replica_id"] for ack in acks)


def _pins(production: int, previous: int | None) -> list[int]:
    """What replicas keep pinned: production first, then the one it replaced (for rollback)."""
    return [production] + ([previous] if previous is not None else [])


def _restore_pins(registry: Registry, fleet: Fleet, task: str, name: str) -> None:
    """Best effort, after a failed move: pin what the registry says, not the loaded version.

    Read again rather than remembered: a concurrent promotion may be what made ours fail.
    Its own failure is logged and the move's error is what the caller sees.
    """
    try:
        last = registry.last_move(name, PRODUCTION)
        if last is not None:  # no production yet: replicas pin nothing of this model
            fleet.set_pins(task, name, _pins(last.to_version, last.from_version))
    except Exception:
        logger.warning("could not restore the pins of %s after a failed move", name, exc_info=True)


def _after_move(
    fleet: Fleet, recorder: Recorder, swap: Swap, task: str, labels: dict[str, str]
) -> Swap:
    """The steps after the compare-and-set: a failure here does not turn the move into an
    error, since production has moved and a retry would move it again."""
    keep = _pins(swap.to_version, swap.from_version)
    warning = None
    try:
        fleet.set_pins(task, swap.model, keep)
    except Exception as error:
        warning = (
            f"production of {swap.model} is version {swap.to_version}, but pinning versions "
            f"{keep} on its replicas failed ({type(error).__name__}: {error}); they serve the new "
            "version, and a rollback may have to load the previous one again"
        )
        logger.warning(warning, exc_info=True, extra={"model": swap.model})
    recorder.count(catalog.SWAPS, outcome="ok", **labels)  # a Recorder never raises
    recorder.observe(catalog.SWAP_DURATION, swap.seconds, **labels)
    return dataclasses.replace(swap, warning=warning)


def rollback(
    registry: Registry,
    fleet: Fleet,
    name: str,
    version: int | None = None,
    recorder: Recorder | None = None,
) -> Swap:
    """Move production back to the version its last promotion replaced, or to ``version``.

    ``version`` must have been production before. Without it, a rollback right after a
    rollback is refused (409): it would undo the first one.
    """
    target, production = _rollback_target(registry, name, version)
    return promote(
        registry,
        fleet,
        name,
        target,
        expected_from=production,
        reason=ROLLBACK,
        recorder=recorder,
        kind="rollback",
    )


def _rollback_target(registry: Registry, name: str, version: int | None) -> tuple[int, int]:
    """(the version to roll back to, production now: what the compare-and-set expects)."""
    if version is not None:
        return _named_target(registry, name, version)
    last = registry.last_move(name, PRODUCTION)
    if last is None or last.from_version is None:
        raise NotFound(f"{name} has no previous production version to roll back to", param="name")
    if last.reason == ROLLBACK:
        raise Conflict(
            f"the last move of {name}'s production (version {last.from_version} → "
            f"{last.to_version}) was a rollback; another one would undo it. Name the version "
            f'to roll back to: POST /v1/models/{name}/rollback {{"version": N}}',
            param="version",
        )
    return last.from_version, last.to_version


def _named_target(registry: Registry, name: str, version: int) -> tuple[int, int]:
    registry.get_version(name, version)  # NotFound for a version that does not exist
    history = registry.alias_history(name, PRODUCTION)  # newest first
    if version not in {move.to_version for move in history}:
        raise Conflict(
            f"version {version} of {name} has never been production, so there is nothing "
            "to roll back to; promote it instead",
            param="version",
        )
    return version, history[0].to_version
