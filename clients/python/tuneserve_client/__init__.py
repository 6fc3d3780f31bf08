"""tuneserve-client: the tuneserve REST API, typed, for Python (httpx and pydantic only).

``Client`` blocks and ``AsyncClient`` awaits; both answer with the pydantic models of
``tuneserve_client.models`` (generated from the service's OpenAPI document) and raise the
errors of ``tuneserve_client.errors``.
"""

__version__ = "0.1.0"

from tuneserve_client._retry import RetryPolicy
from tuneserve_client.async_client import AsyncClient, AsyncStream
from tuneserve_client.client import Client, Stream
from tuneserve_client.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    TuneserveError,
)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "Stream",
    "StreamError",
    "TuneserveError",
]
