"""The gateway's resolver: what it costs the database, counted on a real one (no mocks).

A flood of requests for versions that do not exist (``model=x@999999``) must not turn into
a flood of registry reads that starve promotions; a version registered a moment ago must
still be found.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from tuneserve.control.resolver import ModelResolver, Target
from tuneserve.errors import NotFound
from tuneserve.registry import Registry

SHA = "ef" * 32
TASK = "classification"
TTL_S = 1.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clf(db_url: str) -> Iterator[Registry]:
    registry = Registry.from_url(db_url)
    registry.create_model("clf", TASK)
    for _ in range(3):
        registry.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={})
    registry.move_alias("clf", "production", 1, expected_from=None)
    yield registry
    registry.engine.dispose()


@pytest.fixture
def statements(clf: Registry) -> Iterator[list[str]]:
    """Every SQL statement the registry's engine sends from now on."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(clf.engine, "before_cursor_execute", record)
    yield sent
    event.remove(clf.engine, "before_cursor_execute", record)


def test_a_flood_of_unknown_versions_costs_one_read_per_ttl(
    clf: Registry, statements: list[str]
) -> None:
    clock = Clock()
    resolver = ModelResolver(clf, {}, TTL_S, clock)
    assert resolver.resolve("clf", TASK) == Target("clf", 1, TASK)
    one_read = len(statements)
    assert one_read > 0
    for window in range(3):
        statements.clear()
        for version in range(999_000, 999_500):
            with pytest.raises(NotFound, match=f"has no version {version}"):
                resolver.resolve(f"clf@{version}", TASK)
            assert resolver.resolve_cached(f"clf@{version}", TASK) is None
        assert len(statements) == one_read, f"window {window}: {len(statements)} statements"
        clock.now += TTL_S


def test_a_version_registered_meanwhile_is_found_within_the_ttl(clf: Registry) -> None:
    clock = Clock()
    resolver = ModelResolver(clf, {}, TTL_S, clock)
    resolver.resolve("clf", TASK)
    clf.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={})
    assert resolver.resolve("clf@4", TASK) == Target("clf", 4, TASK)  # at once
    clf.register_version("clf", artifact_uri="/a", sha256=SHA, metrics={})
    clock.now += TTL_S / 2
    with pytest.raises(NotFound):  # a miss looked less than a ttl ago
        resolver.resolve("clf@5", TASK)
    clock.now += TTL_S / 2
    assert resolver.resolve("clf@5", TASK) == Target("clf", 5, TASK)


def test_versions_beyond_the_column_are_refused_without_a_read(
    clf: Registry, statements: list[str]
) -> None:
    resolver = ModelResolver(clf, {}, TTL_S, Clock())
    for ref in ("clf@0", "clf@2147483648", "clf@99999999999999999999", "ghost@2147483648"):
        with pytest.raises(NotFound, match="has no version") as refused:
            resolver.resolve(ref, TASK)
        assert refused.value.param == "model"
    assert statements == []
    with pytest.raises(NotFound, match="has no version 2147483647"):
        resolver.resolve("clf@2147483647", TASK)  # in range: looked up
    assert statements


def test_aliases_come_from_the_view_until_it_expires_or_is_forgotten(
    clf: Registry, statements: list[str]
) -> None:
    clock = Clock()
    resolver = ModelResolver(clf, {TASK: "clf"}, TTL_S, clock)
    assert resolver.resolve(None, TASK) == Target("clf", 1, TASK)
    clf.move_alias("clf", "production", 2, expected_from=1)
    statements.clear()
    assert resolver.resolve("clf", TASK).version == 1  # within the staleness bound
    assert resolver.resolve_cached("clf@production", TASK) == Target("clf", 1, TASK)
    assert statements == []
    clock.now += TTL_S
    assert resolver.resolve_cached("clf", TASK) is None  # expired: not answered from memory
    assert resolver.resolve("clf", TASK).version == 2
    clf.move_alias("clf", "production", 3, expected_from=2)
    resolver.forget("clf")
    assert resolver.resolve("clf", TASK).version == 3
