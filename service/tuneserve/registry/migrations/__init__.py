"""Alembic revisions of the registry schema (run by ``tuneserve.registry.schema``)."""
