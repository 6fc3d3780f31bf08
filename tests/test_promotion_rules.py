"""Promotion and rollback rules at the control layer: a real registry (SQLite and Postgres),
an in-process fleet that pins as the task servers do, no Ray.

The registry and the production alias must agree after any sequence of moves and after any
failure: before the compare-and-set nothing changes, after it the move stands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event
from sqlite_lock import write_lock
from tuneserve.api.fine_tuning import PromoteRequest, RollbackRequest
from tuneserve.control.models import ModelService
from tuneserve.control.promotion import promote, rollback
from tuneserve.errors import Conflict, NotFound, Unavailable
from tuneserve.registry import Registry
from tuneserve.registry.aliases import ROLLBACK
from tuneserve.telemetry import Recorder

SHA = "cd" * 32
TASK = "classification"


class InProcessFleet:
    """Two replicas in this process. Loading pins the version, as ``TaskServer.load_version``
    does; ``set_pins`` records the production version the registry had when it was called."""

    def __init__(self, registry: Registry, replicas: tuple[str, ...] = ("r-a", "r-b")):
        self.registry = registry
        self.replicas = replicas
        self.pins: dict[str, list[int]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.during_load: Callable[[], None] = lambda: None
        self.set_pins_error: Exception | None = None

    def load_everywhere(self, task: str, name: str, version: int) -> list[dict]:
        self.calls.append(("load", name, version))
        self.during_load()
        if self.replicas:
            self.pins[name] = sorted({*self.pins.get(name, []), version})
        return [{"replica_id": replica, "version": version} for replica in self.replicas]

    def set_pins(self, task: str, name: str, versions: list[int]) -> None:
        self.calls.append(("pin", name, versions, self.registry.aliases(name).get("production")))
        if self.set_pins_error is not None:
            raise self.set_pins_error
        self.pins[name] = sorted(versions)


def fill(registry: Registry) -> Registry:
    """Model 'clf' with versions 1-4, production 1 (as a starter model is registered)."""
    registry.create_model("clf", TASK)
    for _ in range(4):
        registry.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={})
    registry.move_alias("clf", "production", 1, expected_from=None, reason="starter model")
    return registry


@pytest.fixture
def clf(db_url: str) -> Iterator[Registry]:
    registry = fill(Registry.from_url(db_url))
    yield registry
    registry.engine.dispose()


@pytest.fixture
def fleet(clf: Registry) -> InProcessFleet:
    fleet = InProcessFleet(clf)
    fleet.pins["clf"] = [1]  # what replicas pin after start: production
    return fleet


def moves(registry: Registry) -> list[tuple[int | None, int, str]]:
    """The production history, newest first."""
    history = registry.alias_history("clf", "production")
    return [(move.from_version, move.to_version, move.reason) for move in history]


def production(registry: Registry) -> int:
    return registry.aliases("clf")["production"]


# --- no-op promotion -------------------------------------------------------------------------


def test_promoting_production_again_changes_nothing(clf: Registry, fleet: InProcessFleet) -> None:
    history = moves(clf)
    swap = promote(clf, fleet, "clf", 1)
    assert (swap.from_version, swap.to_version, swap.changed, swap.replicas) == (1, 1, False, [])
    assert promote(clf, fleet, "clf", 1, expected_from=1).changed is False
    with pytest.raises(Conflict, match="is version 1, not 2"):
        promote(clf, fleet, "clf", 1, expected_from=2)
    assert moves(clf) == history and fleet.calls == [] and fleet.pins["clf"] == [1]
    answer = ModelService(clf, fleet, Recorder(enabled=False)).promote(
        "clf", PromoteRequest(version=1)
    )
    assert (answer.from_version, answer.to_version, answer.changed) == (1, 1, False)
    assert moves(clf) == history


def test_promoting_production_again_does_not_hide_the_previous_version(
    clf: Registry, fleet: InProcessFleet
) -> None:
    """The bug this rule fixes: 2 → 2 was recorded, so a rollback went to 2 (nowhere), and
    two rollbacks brought back the version rolled away from."""
    promote(clf, fleet, "clf", 2)
    assert promote(clf, fleet, "clf", 2).changed is False
    back = rollback(clf, fleet, "clf")
    assert (back.from_version, back.to_version, back.changed) == (2, 1, True)
    with pytest.raises(Conflict):
        rollback(clf, fleet, "clf")
    assert production(clf) == 1
    assert moves(clf) == [(2, 1, ROLLBACK), (1, 2, "promoted"), (None, 1, "starter model")]


# --- rollback --------------------------------------------------------------------------------


def test_rollback_goes_back_once_then_asks_for_a_version(
    clf: Registry, fleet: InProcessFleet
) -> None:
    promote(clf, fleet, "clf", 2)
    promote(clf, fleet, "clf", 3)
    back = rollback(clf, fleet, "clf")
    assert (back.from_version, back.to_version) == (3, 2)
    assert fleet.pins["clf"] == [2, 3]  # the version rolled away from stays ready
    history = moves(clf)
    with pytest.raises(Conflict, match="was a rollback") as refused:
        rollback(clf, fleet, "clf")
    assert refused.value.status_code == 409 and refused.value.param == "version"
    assert 'rollback {"version": N}' in refused.value.message
    assert moves(clf) == history and production(clf) == 2
    assert rollback(clf, fleet, "clf", version=1).to_version == 1  # named: allowed
    assert rollback(clf, fleet, "clf", version=3).to_version == 3  # again named: allowed
    with pytest.raises(Conflict, match="version 4 of clf has never been production"):
        rollback(clf, fleet, "clf", version=4)
    with pytest.raises(NotFound, match="no version 99"):
        rollback(clf, fleet, "clf", version=99)
    assert rollback(clf, fleet, "clf", version=3).changed is False  # production already
    assert moves(clf)[:2] == [(1, 3, ROLLBACK), (2, 1, ROLLBACK)]


def test_a_promotion_after_a_rollback_can_be_rolled_back(
    clf: Registry, fleet: InProcessFleet
) -> None:
    for _ in range(2):  # the hot-swap benchmark's cycle: promote 2, roll back, again
        assert promote(clf, fleet, "clf", 2).to_version == 2
        assert rollback(clf, fleet, "clf").to_version == 1
    promote(clf, fleet, "clf", 3)
    assert rollback(clf, fleet, "clf").to_version == 1  # what the promotion of 3 replaced


def test_rollback_needs_a_version_that_was_production(clf: Registry) -> None:
    fleet = InProcessFleet(clf)
    with pytest.raises(NotFound, match="no previous production version"):
        rollback(clf, fleet, "clf")  # only the first setting of production so far
    clf.create_model("fresh", TASK)
    clf.register_version("fresh", artifact_uri="/a", sha256=SHA, metrics={})
    with pytest.raises(NotFound, match="no previous production version"):
        rollback(clf, fleet, "fresh")
    with pytest.raises(Conflict, match="never been production"):
        rollback(clf, fleet, "fresh", version=1)
    with pytest.raises(NotFound, match="model 'ghost' not found"):
        rollback(clf, fleet, "ghost")
    assert fleet.calls == []


def test_the_rollback_body_is_optional_and_checked(clf: Registry, fleet: InProcessFleet) -> None:
    service = ModelService(clf, fleet, Recorder(enabled=False))
    service.promote("clf", PromoteRequest(version=2))
    assert service.rollback("clf", RollbackRequest()).to_version == 1  # {}: what 2 replaced
    with pytest.raises(Conflict):
        service.rollback("clf")  # no body: the same rule
    assert service.rollback("clf", RollbackRequest(version=2)).to_version == 2
    for body in ({"version": 0}, {"version": "two"}, {"version": 2, "to": 1}):
        with pytest.raises(ValidationError):
            RollbackRequest.model_validate(body)


# --- pins and late failures -----------------------------------------------------------------


def test_pins_are_set_only_after_the_alias_moved(clf: Registry, fleet: InProcessFleet) -> None:
    promote(clf, fleet, "clf", 2)
    assert fleet.calls == [("load", "clf", 2), ("pin", "clf", [2, 1], 2)]
    assert fleet.pins["clf"] == [1, 2]


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_failure_after_the_move_is_a_success_with_a_warning(
    clf: Registry, fleet: InProcessFleet
) -> None:
    fleet.set_pins_error = RuntimeError("replica r-b is gone")
    captured = Captured()
    logger = logging.getLogger("tuneserve.control.promotion")
    logger.addHandler(captured)
    try:
        swap = promote(clf, fleet, "clf", 2)
        answer = ModelService(clf, fleet, Recorder(enabled=False)).promote(
            "clf", PromoteRequest(version=3)
        )
    finally:
        logger.removeHandler(captured)
    assert (swap.to_version, swap.changed) == (2, True)
    assert swap.warning.startswith("production of clf is version 2")
    assert "replica r-b is gone" in swap.warning
    assert (answer.from_version, answer.to_version) == (2, 3) and "r-b is gone" in answer.warning
    assert production(clf) == 3 and moves(clf)[:2] == [(2, 3, "promoted"), (1, 2, "promoted")]
    assert [r.getMessage() for r in captured.records] == [swap.warning, answer.warning]
    assert all(r.exc_info for r in captured.records)  # the traceback is in the log
    fleet.set_pins_error = None
    assert promote(clf, fleet, "clf", 1).warning is None


def test_a_failed_load_changes_nothing(clf: Registry, fleet: InProcessFleet) -> None:
    fleet.replicas = ()
    with pytest.raises(Unavailable, match="no running replica serves clf"):
        promote(clf, fleet, "clf", 2)
    assert production(clf) == 1 and len(moves(clf)) == 1 and fleet.pins["clf"] == [1]


def test_a_move_that_loses_the_race_leaves_the_pins_of_the_winner(
    clf: Registry, fleet: InProcessFleet
) -> None:
    """Another gateway promotes 3 while this one loads 2: the compare-and-set refuses 2, and
    the pin that loading 2 took is given back, leaving production 3 and its predecessor."""
    fleet.during_load = lambda: clf.move_alias("clf", "production", 3, 1, reason="elsewhere")
    with pytest.raises(Conflict, match="is version 3, not version 1"):
        promote(clf, fleet, "clf", 2)
    assert production(clf) == 3 and moves(clf)[0] == (1, 3, "elsewhere")
    assert fleet.pins["clf"] == [1, 3]


# --- the registry's write lock held by someone else ------------------------------------------


def sqlite_registry(tmp_path: Path, busy_timeout_s: float) -> tuple[Registry, str]:
    url = f"sqlite:///{tmp_path / 'locked' / 'registry.db'}?timeout={busy_timeout_s}"
    return fill(Registry.from_url(url)), url


def test_a_promotion_that_outwaits_the_busy_timeout_fails_cleanly(tmp_path: Path) -> None:
    """The write lock is held for longer than the busy timeout (for the whole call): the
    promotion is a typed 503 with nothing done. Production waits 30 s
    (``SQLITE_BUSY_TIMEOUT_S``); 1 s here, through the same code path."""
    registry, url = sqlite_registry(tmp_path, busy_timeout_s=1)
    fleet = InProcessFleet(registry)
    fleet.pins["clf"] = [1]
    with write_lock(url), pytest.raises(Unavailable, match="registry database is busy") as busy:
        promote(registry, fleet, "clf", 2)
    assert busy.value.status_code == 503 and busy.value.retry_after_s >= 1
    assert production(registry) == 1 and moves(registry) == [(None, 1, "starter model")]
    assert fleet.pins["clf"] == [1]  # the pin loading 2 took was given back
    assert [call[0] for call in fleet.calls] == ["load", "pin"]
    assert promote(registry, fleet, "clf", 2).to_version == 2  # once the lock is free
    registry.engine.dispose()


def test_a_promotion_waits_out_a_short_lock(tmp_path: Path) -> None:
    registry, url = sqlite_registry(tmp_path, busy_timeout_s=30)
    fleet = InProcessFleet(registry)
    released = threading.Event()
    with write_lock(url) as holder:

        def release() -> None:
            released.set()  # before the rollback: the move cannot commit before this
            holder.rollback()

        def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement == "BEGIN IMMEDIATE":  # the compare-and-set asks for the lock
                threading.Timer(0.2, release).start()

        event.listen(registry.engine, "before_cursor_execute", on_statement)
        try:
            swap = promote(registry, fleet, "clf", 2)
        finally:
            event.remove(registry.engine, "before_cursor_execute", on_statement)
        assert released.is_set()
    assert swap.to_version == 2 and production(registry) == 2
    registry.engine.dispose()
