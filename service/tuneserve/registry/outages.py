"""A database server that cannot be reached, as callers see it: ``Unavailable`` (503, retry)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import OperationalError

from tuneserve.errors import Unavailable

RETRY_AFTER_S = 5  # a server restart or failover takes seconds


def unreachable_is_unavailable(context: Any) -> None:
    """A ``handle_error`` listener of a server database's engine (Postgres).

    A server that refuses the connection or drops it (a restart, a failover, the network)
    is a 503 the client may retry, not an internal error. Operational errors only (those of
    the server and the connection, never of the SQL), and not while the pool pings a
    connection: a failed ping only makes the pool reconnect.
    """
    if context.is_pre_ping:
        return
    if context.is_disconnect or isinstance(context.sqlalchemy_exception, OperationalError):
        raise Unavailable(
            "the registry database cannot be reached; retry shortly", retry_after_s=RETRY_AFTER_S
        ) from context.original_exception
