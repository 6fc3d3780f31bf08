"""Holding a SQLite registry's write lock from another connection, as another process would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import make_url


@contextmanager
def write_lock(url: str) -> Iterator[sqlite3.Connection]:
    """An open ``BEGIN IMMEDIATE`` transaction on the database of ``url`` until the block
    ends; ``rollback()`` on the yielded connection (from any thread) releases it earlier."""
    holder = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield holder
    finally:
        holder.close()  # rolls back whatever is still open
