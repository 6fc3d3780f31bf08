"""Schema migrations (Alembic): head equals the models, old databases are adopted or refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import ROOT
from sqlalchemy import create_engine, inspect, text
from tuneserve.registry import Registry, schema
from tuneserve.registry.db import DEFAULT_TENANT, Base, make_engine
from tuneserve.registry.jobs import JobStore
from tuneserve.registry.schema import SchemaOutOfDate
from tuneserve.serving.app import build_app
from tuneserve.settings import Settings


def _differences(url: str) -> list:
    """What Alembic's autogenerate would change to make the database equal the models."""
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return diff


def test_upgrading_an_empty_database_gives_exactly_the_models(db_url: str):
    """On SQLite and on a real Postgres: `tuneserve db upgrade` from nothing to head, and the
    tables, columns, types, indexes and constraints then match the SQLAlchemy models."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("tuneserve")), "db", "upgrade"],
        env={"TUNESERVE_REGISTRY__DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert f"revision none → {schema.head_revision()}" in result.stdout
    assert _differences(db_url) == []
    engine = make_engine(db_url, migrate=False)  # at head: accepted as it is
    with engine.connect() as connection:
        assert schema.current_revision(connection) == schema.head_revision()
    engine.dispose()


def test_a_database_behind_is_refused_with_what_to_run(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    create_engine(url).connect().close()  # an empty database: revision none
    with pytest.raises(SchemaOutOfDate) as refused:
        Registry.from_url(url, migrate=False)
    assert "revision none" in refused.value.message
    assert "tuneserve db upgrade" in refused.value.message
    # the service as a whole refuses to be built on it, with the same message
    settings = Settings(data_dir=tmp_path, registry={"migrate_on_start": False})
    with pytest.raises(SchemaOutOfDate, match="tuneserve db upgrade"):
        build_app(settings)


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    make_engine(url).dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="a newer release migrated it"):
        make_engine(url, migrate=False)
    with pytest.raises(Exception, match="f00dcafe"):  # and nothing tries to "upgrade" it
        make_engine(url, migrate=True)


def _pre_alembic_database(url: str) -> None:
    """What releases before Alembic made with create_all: the initial revision's tables,
    without Alembic's version table."""
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(schema._config(connection), schema.INITIAL_REVISION)
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(
            text(
                "INSERT INTO models (name, task, description, created_at) "
                "VALUES ('sentiment', 'classification', '', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO files (id, filename, purpose, bytes, sha256, rows, task, labels, "
                "uri, created_at) VALUES ('file-old', 'a.jsonl', 'fine-tune', 1, :sha, 1, "
                "'classification', '{\"labels\": []}', 'x', '2026-01-01 00:00:00')"
            ),
            {"sha": "0" * 64},
        )
        connection.execute(
            text(
                "INSERT INTO model_versions (model_name, version, task, artifact_uri, metrics, "
                "lineage, sha256, created_at) VALUES ('sentiment', 1, 'classification', 'x', "
                "'{}', '{}', :sha, '2026-01-01 00:00:00')"
            ),
            {"sha": "0" * 64},
        )
    engine.dispose()


def test_a_database_made_before_migrations_is_adopted_with_its_rows(tmp_path: Path):
    """Releases before Alembic made the tables with create_all: upgrade stamps them as the
    initial revision (same tables), migrates them to head and keeps every row; rows older
    than tenants belong to the open mode's tenant."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _pre_alembic_database(url)
    registry = Registry.from_url(url)
    assert [model.name for model in registry.list_models()] == ["sentiment"]
    assert JobStore(registry.engine).get_file("file-old").owner == DEFAULT_TENANT
    # a version older than variants was verified for none: it serves fp32
    assert registry.get_version("sentiment", 1).variants == {}
    assert "alembic_version" in inspect(registry.engine).get_table_names()
    registry.engine.dispose()
    assert _differences(url) == []
