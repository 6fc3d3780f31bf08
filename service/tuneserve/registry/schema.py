"""Schema migrations: the registry's tables are made and changed only by Alembic revisions.

``upgrade`` brings a database to this release's revision (``tuneserve db upgrade``, or at
start when ``registry.migrate_on_start`` is on); ``check`` refuses a database whose schema
is not this release's, so a replica never runs queries against columns that are not there.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from tuneserve.errors import Unavailable

MIGRATIONS = Path(__file__).with_name("migrations")
# The revision whose tables equal what releases before Alembic made with create_all.
INITIAL_REVISION = "0001"
# Serializes upgrades across processes (replicas starting together on a fresh Postgres).
_SCHEMA_LOCK_KEY = 0x7475_6E65  # "tune"


class SchemaOutOfDate(Unavailable):
    """The database's schema revision is not the one this release reads and writes."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision this release's code expects."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations packaged"
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision; None for an empty (or pre-Alembic) database."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head; returns (revision before, revision after).

    A database made by create_all before migrations existed has the initial revision's
    tables and no version table: it is stamped as that revision, then upgraded.
    """
    head = head_revision()
    with engine.begin() as connection:
        _lock(connection)
        before = current_revision(connection)
        if before == head:
            return before, head
        config = _config(connection)
        if before is None and inspect(connection).has_table("models"):
            command.stamp(config, INITIAL_REVISION)
        command.upgrade(config, "head")
    return before, head


def check(engine: Engine) -> None:
    """Raise SchemaOutOfDate, saying what to run, unless the database is at head."""
    head = head_revision()
    with engine.connect() as connection:
        current = current_revision(connection)
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if current is None or current in _known_revisions():
        raise SchemaOutOfDate(
            f"the registry database {where} is at schema revision {current or 'none'}; this "
            f"release needs {head}. Run `tuneserve db upgrade` with the same "
            "TUNESERVE_REGISTRY__DATABASE_URL, or set TUNESERVE_REGISTRY__MIGRATE_ON_START=true",
            param="registry.database_url",
            retry_after_s=30,
        )
    raise SchemaOutOfDate(
        f"the registry database {where} is at schema revision {current}, which this release "
        f"does not know (its newest is {head}): a newer release migrated it; deploy that one",
        param="registry.database_url",
        retry_after_s=30,
    )


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def _lock(connection: Connection) -> None:
    """Postgres: one migrator at a time (SQLite's BEGIN IMMEDIATE already serializes)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
