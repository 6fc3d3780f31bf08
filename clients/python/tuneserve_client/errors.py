"""Typed errors: one class per kind of failure, each carrying the service's error body.

The service answers every error as ``{"error": {"type", "message", "param", "code"}}``;
``APIStatusError`` keeps those fields, and its subclass says what to do about it (fix the
request, get a key, retry later) without reading status codes.
"""

from __future__ import annotations

from typing import Any

import httpx


class TuneserveError(Exception):
    """Base of everything the client raises."""


class APIConnectionError(TuneserveError):
    """The service could not be reached or the connection broke (after any retries)."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


class APIStatusError(TuneserveError):
    """The service answered with an error status; its body's fields are attributes."""

    def __init__(self, response: httpx.Response, body: dict[str, Any] | None):
        error = (body or {}).get("error") or {}
        self.response = response
        self.status_code = response.status_code
        self.type: str = error.get("type") or "unknown_error"
        self.message: str = error.get("message") or response.text[:500] or response.reason_phrase
        self.param: str | None = error.get("param")
        self.code: str | None = error.get("code")
        self.details: list[dict[str, Any]] | None = error.get("details")
        self.body = body
        where = f" (param: {self.param})" if self.param else ""
        super().__init__(f"{self.status_code} {self.type}: {self.message}{where}")


class BadRequestError(APIStatusError):
    """400/422: the request is wrong; ``param`` names the field, row or line."""


class AuthenticationError(APIStatusError):
    """401: no key, or not a valid one."""


class PermissionDeniedError(APIStatusError):
    """403: the key lacks the scope (or tenant) the route needs."""


class NotFoundError(APIStatusError):
    """404: no such model, version, file or job (or not the key's tenant's)."""


class ConflictError(APIStatusError):
    """409: the state moved (a compare-and-set lost, a file still in use, …)."""


class PayloadTooLargeError(APIStatusError):
    """413: over one of the service's size limits; the message names it."""


class RateLimitError(APIStatusError):
    """429: a tenant quota is used up."""


class ServiceUnavailableError(APIStatusError):
    """503 (after the client's retries): busy, not ready, or a dependency is down."""


class InternalServerError(APIStatusError):
    """500 or another 5xx: the service failed; worth reporting with its request id."""


class StreamError(APIStatusError):
    """A chat stream that failed after it began: the error arrived as an event."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: BadRequestError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_for(response: httpx.Response) -> APIStatusError:
    """The typed error of an error response (its body read already)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    kind = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    return kind(response, body if isinstance(body, dict) else None)
