"""Alias queries inside one registry transaction: compare-and-set moves and their history.

Every history row is a move that changed its alias (a move to the version the alias
already names is refused), and a move made by a rollback has the reason ``ROLLBACK``: so
the history tells a rollback from a promotion without a column of its own.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuneserve.errors import Conflict
from tuneserve.registry.db import AliasHistoryRow, AliasRow, utcnow
from tuneserve.registry.records import AliasMove, alias_move

# Aliases start with a letter so that a reference like "3" can only ever mean version 3.
ALIAS_NAME = (
    re.compile(r"[a-z][a-z0-9_-]{0,63}"),
    "1-64 lowercase letters, digits, '-' or '_', starting with a letter",
)
# The reason recorded on every move a rollback makes (and by releases before this one).
ROLLBACK = "rollback"


def move(
    session: Session, name: str, alias: str, to_version: int, expected: int | None, reason: str
) -> AliasMove:
    """Compare-and-set ``alias`` from ``expected`` (None: unset) and record the move."""
    now = utcnow()
    if expected is None:
        _insert(session, name, alias, to_version, now)
    else:
        _update(session, name, alias, to_version, expected, now)
    row = AliasHistoryRow(
        model_name=name,
        alias=alias,
        from_version=expected,
        to_version=to_version,
        moved_at=now,
        reason=reason,
    )
    session.add(row)
    session.flush()
    return alias_move(row)


def history(
    session: Session, name: str, alias: str, *, changes_only: bool = False, limit: int | None = None
) -> list[AliasMove]:
    """The moves of ``alias``, newest first; ``changes_only`` skips rows from a version to
    itself, which releases before no-op promotions wrote when production was promoted again."""
    query = select(AliasHistoryRow).where(
        AliasHistoryRow.model_name == name, AliasHistoryRow.alias == alias
    )
    if changes_only:
        changed = AliasHistoryRow.from_version.is_distinct_from(AliasHistoryRow.to_version)
        query = query.where(changed)
    rows = session.scalars(query.order_by(AliasHistoryRow.id.desc()).limit(limit))
    return [alias_move(row) for row in rows]


def alias_table(session: Session, name: str | None = None) -> dict[str, dict[str, int]]:
    """model → {alias: version}, sorted by alias, for one model or all."""
    query = select(AliasRow).order_by(AliasRow.model_name, AliasRow.alias)
    if name is not None:
        query = query.where(AliasRow.model_name == name)
    found: dict[str, dict[str, int]] = {}
    for row in session.scalars(query):
        found.setdefault(row.model_name, {})[row.alias] = row.version
    return found


def stale(name: str, alias: str, expected: int | None, current: int | None) -> Conflict:
    def show(version: int | None) -> str:
        return "unset" if version is None else f"version {version}"

    return Conflict(
        f"alias '{alias}' of model '{name}' is {show(current)}, not {show(expected)} as "
        f"expected; re-read the aliases and retry with expected_from={current}",
        param="expected_from",
    )


def _insert(session: Session, name: str, alias: str, version: int, now: datetime) -> None:
    current = session.get(AliasRow, (name, alias))
    if current is not None:
        raise stale(name, alias, None, current.version)
    session.add(AliasRow(model_name=name, alias=alias, version=version, updated_at=now))
    session.flush()


def _update(
    session: Session, name: str, alias: str, version: int, expected: int, now: datetime
) -> None:
    result = session.execute(
        update(AliasRow)
        .where(AliasRow.model_name == name, AliasRow.alias == alias, AliasRow.version == expected)
        .values(version=version, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        current = session.scalar(
            select(AliasRow.version).where(AliasRow.model_name == name, AliasRow.alias == alias)
        )
        raise stale(name, alias, expected, current)
