"""Every registry query: models, immutable versions, and compare-and-set alias moves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneserve.errors import Conflict, InvalidRequest, NotFound
from tuneserve.registry.db import (
    AliasHistoryRow,
    AliasRow,
    ModelRow,
    VersionRow,
    make_engine,
    utcnow,
)
from tuneserve.registry.records import (
    AliasMove,
    ModelInfo,
    VersionInfo,
    alias_move,
    model_info,
    version_info,
)
from tuneserve.registry.refs import PRODUCTION, ModelRef

_MODEL_NAME = (re.compile(r"[a-z0-9_-]{1,64}"), "1-64 lowercase letters, digits, '-' or '_'")
# Aliases start with a letter so that a reference like "3" can only ever mean version 3.
_ALIAS_NAME = (
    re.compile(r"[a-z][a-z0-9_-]{0,63}"),
    "1-64 lowercase letters, digits, '-' or '_', starting with a letter",
)
_MAX_VERSION = 2**31 - 1  # an INTEGER column; larger numbers from a client simply do not exist
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Registry:
    """The model registry over one SQLAlchemy engine; returns dataclasses, never rows."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> Registry:
        return cls(make_engine(url, migrate=migrate))

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    # --- models ------------------------------------------------------------------------

    def create_model(self, name: str, task: str, description: str = "") -> ModelInfo:
        """Create a model; repeating the call with the same task returns the existing one."""
        _check_name(name, _MODEL_NAME, "model")
        try:
            with self._transaction() as session:
                row = session.get(ModelRow, name)
                if row is None:
                    row = ModelRow(name=name, task=task, description=description)
                    session.add(row)
                    session.flush()
                return _same_task(model_info(row), task)
        except IntegrityError:
            # Created concurrently by another writer: answer as the repeated call would.
            return _same_task(self.get_model(name), task)

    def get_model(self, name: str) -> ModelInfo:
        """The model with its aliases."""
        with self._transaction() as session:
            row = _model_row(session, name)
            return model_info(row, _aliases(session, name).get(name, {}))

    def list_models(self) -> list[ModelInfo]:
        """Every model with its aliases, by name."""
        with self._transaction() as session:
            rows = session.scalars(select(ModelRow).order_by(ModelRow.name)).all()
            aliases = _aliases(session)
            return [model_info(row, aliases.get(row.name, {})) for row in rows]

    # --- versions ----------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        *,
        artifact_uri: str,
        sha256: str,
        metrics: dict[str, Any],
        base_version: int | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """Add the next version (max + 1) of ``name``; versions are never changed afterwards."""
        if not _SHA256.fullmatch(sha256):
            raise InvalidRequest("sha256 must be 64 lowercase hex digits", param="sha256")
        with self._transaction() as session:
            # Locking the model row serializes numbering per model on Postgres; on SQLite
            # BEGIN IMMEDIATE already does (and FOR UPDATE is not emitted there).
            model = _model_row(session, name, for_update=True)
            if base_version is not None:
                _version_row(session, name, base_version)
            latest = session.scalar(
                select(func.max(VersionRow.version)).where(VersionRow.model_name == name)
            )
            row = VersionRow(
                model_name=name,
                version=(latest or 0) + 1,
                task=model.task,
                artifact_uri=artifact_uri,
                base_version=base_version,
                metrics=dict(metrics),
                lineage=dict(lineage or {}),
                sha256=sha256,
            )
            session.add(row)
            session.flush()
            return version_info(row)

    def get_version(self, name: str, version: int) -> VersionInfo:
        with self._transaction() as session:
            return version_info(_version_row(session, name, version))

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, oldest first, each with the aliases pointing at it."""
        with self._transaction() as session:
            _model_row(session, name)
            rows = session.scalars(
                select(VersionRow).where(VersionRow.model_name == name).order_by(VersionRow.version)
            )
            aliases = _aliases(session, name).get(name, {})
            return [
                version_info(row, tuple(a for a, v in aliases.items() if v == row.version))
                for row in rows
            ]

    def resolve(self, name: str, ref: int | str | None = None) -> VersionInfo:
        """The version ``ref`` names: None → 'production', 3 or '3' → version 3, else an alias."""
        return self.resolve_ref(ModelRef.of(name, ref))

    def resolve_ref(self, parsed: ModelRef) -> VersionInfo:
        name = parsed.name
        with self._transaction() as session:
            if parsed.version is not None:
                return version_info(_version_row(session, name, parsed.version))
            _model_row(session, name)
            alias = session.get(AliasRow, (name, parsed.alias))
            if alias is None:
                raise NotFound(f"model '{name}' has no alias '{parsed.alias}'", param="alias")
            return version_info(_version_row(session, name, alias.version))

    # --- aliases -----------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        with self._transaction() as session:
            _model_row(session, name)
            return _aliases(session, name).get(name, {})

    def move_alias(
        self,
        name: str,
        alias: str,
        to_version: int,
        expected_from: int | None,
        reason: str = "",
    ) -> AliasMove:
        """Point ``alias`` at ``to_version`` if it still points at ``expected_from``.

        One transaction: the compare-and-set and its history row commit together or not at
        all. ``expected_from=None`` means the alias must not exist yet. A stale expectation
        is a Conflict naming the current value, so the caller can re-read and decide again.
        """
        _check_name(alias, _ALIAS_NAME, "alias")
        try:
            with self._transaction() as session:
                _version_row(session, name, to_version)
                now = utcnow()
                if expected_from is None:
                    _insert_alias(session, name, alias, to_version, now)
                else:
                    _update_alias(session, name, alias, to_version, expected_from, now)
                move = AliasHistoryRow(
                    model_name=name,
                    alias=alias,
                    from_version=expected_from,
                    to_version=to_version,
                    moved_at=now,
                    reason=reason,
                )
                session.add(move)
                session.flush()
                return alias_move(move)
        except IntegrityError:
            # The alias was created by a concurrent first set between our check and insert.
            current = self.aliases(name).get(alias)
            raise _stale(name, alias, expected_from, current) from None

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        """Every move of ``alias``, newest first."""
        with self._transaction() as session:
            _model_row(session, name)
            rows = session.scalars(
                select(AliasHistoryRow)
                .where(AliasHistoryRow.model_name == name, AliasHistoryRow.alias == alias)
                .order_by(AliasHistoryRow.id.desc())
            )
            return [alias_move(row) for row in rows]

    def previous_version(self, name: str, alias: str = PRODUCTION) -> int | None:
        """The version ``alias`` pointed to before its latest move (None if it had none)."""
        history = self.alias_history(name, alias)
        return history[0].from_version if history else None


def _insert_alias(session: Session, name: str, alias: str, version: int, now: datetime) -> None:
    current = session.get(AliasRow, (name, alias))
    if current is not None:
        raise _stale(name, alias, None, current.version)
    session.add(AliasRow(model_name=name, alias=alias, version=version, updated_at=now))
    session.flush()


def _update_alias(
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
        raise _stale(name, alias, expected, current)


def _stale(name: str, alias: str, expected: int | None, current: int | None) -> Conflict:
    def show(version: int | None) -> str:
        return "unset" if version is None else f"version {version}"

    return Conflict(
        f"alias '{alias}' of model '{name}' is {show(current)}, not {show(expected)} as "
        f"expected; re-read the aliases and retry with expected_from={current}",
        param="expected_from",
    )


def _check_name(value: str, rule: tuple[re.Pattern[str], str], what: str) -> None:
    pattern, hint = rule
    if not pattern.fullmatch(value):
        raise InvalidRequest(f"invalid {what} name '{value}': use {hint}", param=what)


def _same_task(model: ModelInfo, task: str) -> ModelInfo:
    if model.task != task:
        raise Conflict(
            f"model '{model.name}' already exists with task '{model.task}', not '{task}'; "
            "choose another name",
            param="name",
        )
    return model


def _model_row(session: Session, name: str, *, for_update: bool = False) -> ModelRow:
    row = session.get(ModelRow, name, with_for_update=for_update)
    if row is None:
        raise NotFound(f"model '{name}' not found", param="model")
    return row


def _version_row(session: Session, name: str, version: int) -> VersionRow:
    row = None
    if 0 < version <= _MAX_VERSION:
        row = session.scalar(
            select(VersionRow).where(VersionRow.model_name == name, VersionRow.version == version)
        )
    if row is None:
        _model_row(session, name)
        raise NotFound(f"model '{name}' has no version {version}", param="version")
    return row


def _aliases(session: Session, name: str | None = None) -> dict[str, dict[str, int]]:
    """model → {alias: version}, sorted by alias, for one model or all."""
    query = select(AliasRow).order_by(AliasRow.model_name, AliasRow.alias)
    if name is not None:
        query = query.where(AliasRow.model_name == name)
    found: dict[str, dict[str, int]] = {}
    for row in session.scalars(query):
        found.setdefault(row.model_name, {})[row.alias] = row.version
    return found
