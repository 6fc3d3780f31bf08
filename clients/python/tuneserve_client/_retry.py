"""When to send a request again, and after how long.

A 503 is the service saying "not now" (busy, loading, a database hiccup) before it did
anything, so every call is retried on it, after its ``Retry-After`` when it sends one. A
connection that could not be opened never carried the request: retried too. A connection
that broke after the request went out may have done the work, so only calls that are safe to
repeat (reads, inference) are resent then.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from tuneserve_client._calls import Call
from tuneserve_client.errors import APIConnectionError, APITimeoutError

RETRIED_STATUSES = frozenset({503})
# nothing reached the service: any call may be sent again
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_s: float = 0.5  # the first wait; doubled each time, with jitter
    max_backoff_s: float = 30.0  # no wait is longer, whatever Retry-After asks

    def after_response(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before resending after ``response``; None: do not resend."""
        if response.status_code not in RETRIED_STATUSES or attempt >= self.max_retries:
            return None
        asked = retry_after_s(response.headers.get("Retry-After"))
        return min(asked, self.max_backoff_s) if asked is not None else self._backoff(attempt)

    def after_error(self, call: Call, error: httpx.TransportError, attempt: int) -> float | None:
        """Seconds to wait before resending after a transport error; None: do not resend."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, NEVER_SENT) or call.idempotent:
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2**attempt, self.max_backoff_s) * random.uniform(0.5, 1.0)


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def connection_error(error: httpx.TransportError) -> APIConnectionError:
    kind = APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
    return kind(f"{type(error).__name__}: {error}")
