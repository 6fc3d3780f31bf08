"""Registry tables (one declarative ``Base`` for every table) and the engine that serves them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

from tuneserve.errors import Conflict, Unavailable
from tuneserve.registry import schema
from tuneserve.registry.outages import unreachable_is_unavailable

SQLITE_BUSY_TIMEOUT_S = 30
# Execution option of a transaction that only reads: on SQLite it begins deferred (below).
READ_ONLY = "tuneserve_read_only"
# The tenant of requests when the service runs open (no keys), and of rows older than tenants.
DEFAULT_TENANT = "default"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite stores no offset, and Postgres returns ``timestamptz`` in the session's time zone;
    both come back here as UTC so callers compare and serialize one kind of value.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Metadata shared by the registry and every later table (files, jobs, job events)."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ModelRow(Base):
    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VersionRow(Base):
    """One immutable model version; see ``_refuse_version_update``."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_name", "version", name="uq_model_versions_name_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(ForeignKey("models.name"))
    version: Mapped[int]
    task: Mapped[str] = mapped_column(String(64))
    artifact_uri: Mapped[str] = mapped_column(Text)
    base_version: Mapped[int | None]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)  # provenance: job, data, ...
    variants: Mapped[dict[str, Any]] = mapped_column(default=dict)  # verdict per variant tried
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasRow(Base):
    __tablename__ = "aliases"
    # An alias can only name a version that exists, enforced by the database as well.
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_name", "version"], ["model_versions.model_name", "model_versions.version"]
        ),
    )

    model_name: Mapped[str] = mapped_column(ForeignKey("models.name"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasHistoryRow(Base):
    """Every alias move, so the version an alias pointed to before is always known."""

    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_model_alias", "model_name", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(ForeignKey("models.name"))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None]
    to_version: Mapped[int]
    moved_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")


class FileRow(Base):
    """An uploaded fine-tuning file: its validated rows live in the artifact store."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_owner", "owner", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    filename: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int]
    task: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"labels": [...]}
    uri: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobRow(Base):
    """A fine-tuning job; its status walks validating_files → queued → running → evaluating
    → succeeded | failed | cancelled."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status", "status", "seq"),
        Index("ix_jobs_owner_status", "owner", "status"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    base_version: Mapped[int]
    task: Mapped[str] = mapped_column(String(64))
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    promotion: Mapped[dict[str, Any]] = mapped_column(default=dict)
    suffix: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    status: Mapped[str] = mapped_column(String(32))
    # how many times a runner started it; a job that keeps crashing its runner fails
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(80))
    trained_tokens: Mapped[int | None]
    trained_examples: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobEventRow(Base):
    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    level: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))  # "message" | "metrics"
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckpointRow(Base):
    __tablename__ = "job_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    epoch: Mapped[int]
    step: Mapped[int]
    uri: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of its secret is stored; the secret is shown once."""

    __tablename__ = "api_keys"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text, default="")
    scopes: Mapped[list[str]] = mapped_column(JSON)
    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


@event.listens_for(VersionRow, "before_update")
def _refuse_version_update(mapper: Mapper[Any], connection: Any, target: VersionRow) -> None:
    raise Conflict(
        f"version {target.version} of model '{target.model_name}' is immutable; "
        "register a new version instead",
        param="version",
    )


def make_engine(url: str, *, migrate: bool = True, check: bool = True) -> Engine:
    """An engine for ``url`` (SQLite file or ``postgresql+psycopg://``) at this release's schema.

    ``migrate`` upgrades the schema first; without it a database that is behind is refused
    (``schema.SchemaOutOfDate``), never read with the wrong columns. ``check=False`` is for
    the migration commands only, which look at the schema themselves.
    """
    if make_url(url).get_backend_name() == "sqlite":
        engine = _sqlite_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        event.listen(engine, "handle_error", unreachable_is_unavailable)
    if migrate:
        schema.upgrade(engine)
    elif check:
        schema.check(engine)
    return engine


def _sqlite_engine(url: str) -> Engine:
    """SQLite that is safe for concurrent writers in threads and processes.

    pysqlite would begin transactions lazily, so two read-then-write transactions could
    interleave and one fail with "database is locked" instead of waiting. We take over BEGIN
    (SQLAlchemy's documented recipe): a transaction that may write begins ``BEGIN
    IMMEDIATE``, taking the write lock up front, so compare-and-set transactions serialize;
    one marked ``READ_ONLY`` begins deferred and, in WAL mode, reads a snapshot without
    queueing behind writers. A writer still locked out after the busy timeout (the URL's
    ``timeout`` in seconds, pysqlite's own parameter; default ``SQLITE_BUSY_TIMEOUT_S``)
    gets ``Unavailable`` (503, retry), not a raw driver error.
    """
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    busy_timeout_s = float(parsed.query.get("timeout", SQLITE_BUSY_TIMEOUT_S))
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        # (the busy timeout is pysqlite's ``timeout`` connect argument, above)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    @event.listens_for(engine, "handle_error")
    def _busy_is_unavailable(context: Any) -> None:
        error = context.original_exception
        if getattr(error, "sqlite_errorname", "").startswith("SQLITE_BUSY"):  # also _SNAPSHOT
            raise Unavailable(
                f"the registry database is busy: another writer held its lock for over "
                f"{busy_timeout_s:g} s; nothing was changed, retry shortly",
                retry_after_s=max(1, round(busy_timeout_s)),
            ) from error

    return engine
