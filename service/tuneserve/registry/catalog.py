"""Every registry query: models, immutable versions, and compare-and-set alias moves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneserve.errors import Conflict, InvalidRequest, NotFound
from tuneserve.registry.aliases import ALIAS_NAME, alias_table, history, move, stale
from tuneserve.registry.db import READ_ONLY, AliasRow, ModelRow, VersionRow, make_engine
from tuneserve.registry.records import AliasMove, ModelInfo, VersionInfo, model_info, version_info
from tuneserve.registry.refs import MODEL_NAME, MODEL_NAME_RULE, PRODUCTION, ModelRef

_MODEL_NAME = (MODEL_NAME, MODEL_NAME_RULE)
MAX_VERSION = 2**31 - 1  # an INTEGER column; larger numbers from a client simply do not exist
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Registry:
    """The model registry over one SQLAlchemy engine; returns dataclasses, never rows."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> Registry:
        return cls(make_engine(url, migrate=migrate))

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction; ``write=False`` for reads, which on SQLite then never queue
        behind a writer (see ``db._sqlite_engine``). Postgres treats both alike."""
        options = {} if write else {READ_ONLY: True}
        with Session(self.engine, execution_options=options) as session, session.begin():
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
        with self._transaction(write=False) as session:
            row = _model_row(session, name)
            return model_info(row, alias_table(session, name).get(name, {}))

    def list_models(self) -> list[ModelInfo]:
        """Every model with its aliases, by name."""
        with self._transaction(write=False) as session:
            rows = session.scalars(select(ModelRow).order_by(ModelRow.name)).all()
            aliases = alias_table(session)
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
        variants: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """Add the next version (max + 1) of ``name``; versions are never changed afterwards.

        ``variants``: the verdict on each optimised variant, verified before registering.
        """
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
                variants=dict(variants or {}),
                sha256=sha256,
            )
            session.add(row)
            session.flush()
            return version_info(row)

    def get_version(self, name: str, version: int) -> VersionInfo:
        with self._transaction(write=False) as session:
            return version_info(_version_row(session, name, version))

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, oldest first, each with the aliases pointing at it."""
        with self._transaction(write=False) as session:
            _model_row(session, name)
            rows = session.scalars(
                select(VersionRow).where(VersionRow.model_name == name).order_by(VersionRow.version)
            )
            aliases = alias_table(session, name).get(name, {})
            return [
                version_info(row, tuple(a for a, v in aliases.items() if v == row.version))
                for row in rows
            ]

    def resolve(self, name: str, ref: int | str | None = None) -> VersionInfo:
        """The version ``ref`` names: None → 'production', 3 or '3' → version 3, else an alias."""
        return self.resolve_ref(ModelRef.of(name, ref))

    def resolve_ref(self, parsed: ModelRef) -> VersionInfo:
        name = parsed.name
        with self._transaction(write=False) as session:
            if parsed.version is not None:
                return version_info(_version_row(session, name, parsed.version))
            _model_row(session, name)
            alias = session.get(AliasRow, (name, parsed.alias))
            if alias is None:
                raise NotFound(f"model '{name}' has no alias '{parsed.alias}'", param="alias")
            return version_info(_version_row(session, name, alias.version))

    # --- aliases -----------------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, int]:
        with self._transaction(write=False) as session:
            _model_row(session, name)
            return alias_table(session, name).get(name, {})

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
        all, so every history row is a change. ``expected_from=None`` means the alias must
        not exist yet. A stale expectation is a Conflict naming the current value, so the
        caller can re-read and decide again.
        """
        _check_name(alias, ALIAS_NAME, "alias")
        if to_version == expected_from:
            raise InvalidRequest(
                f"alias '{alias}' of model '{name}' is expected at version {to_version} already;"
                " a move must change it",
                param="version",
            )
        try:
            with self._transaction() as session:
                _version_row(session, name, to_version)
                return move(session, name, alias, to_version, expected_from, reason)
        except IntegrityError:
            # The alias was created by a concurrent first set between our check and insert.
            current = self.aliases(name).get(alias)
            raise stale(name, alias, expected_from, current) from None

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        """Every move of ``alias``, newest first."""
        with self._transaction(write=False) as session:
            _model_row(session, name)
            return history(session, name, alias)

    def last_move(self, name: str, alias: str = PRODUCTION) -> AliasMove | None:
        """The latest move that changed ``alias`` (None if it was never set)."""
        with self._transaction(write=False) as session:
            _model_row(session, name)
            latest = history(session, name, alias, changes_only=True, limit=1)
            return latest[0] if latest else None

    def model_view(self, name: str) -> tuple[ModelInfo, frozenset[int]]:
        """A model with its aliases, and the numbers of its versions, in one read."""
        with self._transaction(write=False) as session:
            row = _model_row(session, name)
            numbers = session.scalars(
                select(VersionRow.version).where(VersionRow.model_name == name)
            ).all()
            return model_info(row, alias_table(session, name).get(name, {})), frozenset(numbers)


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
    if 0 < version <= MAX_VERSION:
        row = session.scalar(
            select(VersionRow).where(VersionRow.model_name == name, VersionRow.version == version)
        )
    if row is None:
        _model_row(session, name)
        raise NotFound(f"model '{name}' has no version {version}", param="version")
    return row
