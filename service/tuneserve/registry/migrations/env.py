"""Alembic environment: always online, on the connection ``tuneserve.registry.schema`` hands in.

There is no alembic.ini: the database URL is the deployment's setting, never a second copy.
"""

from alembic import context

from tuneserve.registry.db import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it; later revisions get that for free
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
