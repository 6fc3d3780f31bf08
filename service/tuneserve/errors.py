"""One typed error hierarchy; the HTTP layer shapes every one as ``{"error": {...}}``.

Code raises these (never a bare ``ValueError`` meant as a 400). Each carries its HTTP status
and an OpenAI-style ``type``; ``param`` names the offending field, row or line.
"""

from __future__ import annotations

import sys
from typing import Any


class TuneserveError(Exception):
    """Base of every error that reaches a client."""

    status_code: int = 500
    type: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        # machine-readable specifics (e.g. every bad row of an upload) beyond the one message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "param": self.param,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidRequest(TuneserveError):
    status_code = 400
    type = "invalid_request_error"


class Unauthorized(TuneserveError):
    status_code = 401
    type = "authentication_error"


class PermissionDenied(TuneserveError):
    """A valid caller without the scope (or tenant) a route needs."""

    status_code = 403
    type = "permission_error"


class QuotaExceeded(TuneserveError):
    """A tenant's quota (queued jobs, stored bytes) is used up; the message says which."""

    status_code = 429
    type = "quota_exceeded"


class NotFound(TuneserveError):
    status_code = 404
    type = "not_found_error"


class MethodNotAllowed(TuneserveError):
    status_code = 405
    type = "invalid_request_error"


class Conflict(TuneserveError):
    status_code = 409
    type = "conflict_error"


class Misconfigured(TuneserveError):
    """The deployment's settings cannot work where it runs; the message says what to set."""

    status_code = 500
    type = "configuration_error"


class PayloadTooLarge(TuneserveError):
    status_code = 413
    type = "payload_too_large"


class Timeout(TuneserveError):
    """The work ran past a deadline that a setting sets; the message names the setting."""

    status_code = 504
    type = "timeout_error"


class Unavailable(TuneserveError):
    status_code = 503
    type = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class ArtifactCorrupt(Unavailable):
    """An artifact's weights are not the ones registered; the version cannot serve."""

    def __init__(self, message: str):
        super().__init__(message, retry_after_s=60, code="artifact_corrupt")


def unreadable_json(error: BaseException) -> str | None:
    """Why Python's ``json`` could not read a well-formed text, for the client; None if not
    one of these. Both are refusals of abusive input, not server faults: nesting past the
    interpreter's recursion limit, and integers past its digit limit (a quadratic parse)."""
    if isinstance(error, RecursionError):
        return "it is nested too deeply"
    if isinstance(error, ValueError) and "integer string conversion" in str(error):
        return f"it has an integer of more than {sys.get_int_max_str_digits()} digits"
    return None
