"""The one place errors become HTTP responses: ``{"error": {type, message, param, code}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException

from tuneserve.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    TuneserveError,
    Unauthorized,
    Unavailable,
    unreadable_json,
)

logger = logging.getLogger("tuneserve.gateway")


def as_tuneserve_error(error: BaseException) -> TuneserveError:
    """Map anything a route can raise (also from a replica, wrapped by Ray) to our errors."""
    if isinstance(error, RayTaskError) and error.cause is not None:
        error = error.cause
    if isinstance(error, TuneserveError):
        return error
    if isinstance(error, BackPressureError):
        return Unavailable("the server is at capacity; retry shortly", retry_after_s=1)
    if isinstance(error, DeploymentUnavailableError):
        return Unavailable("the model server is not available yet; retry shortly")
    if isinstance(error, RayActorError):  # a replica or actor died (or was cut off) mid-call
        return Unavailable("the server process handling this request stopped; retry shortly")
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        return InvalidRequest(f"{param}: {first['msg']}", param=param or None)
    logger.exception("unexpected error", exc_info=error)
    return TuneserveError("internal error; the request was not completed")


def error_response(error: TuneserveError) -> JSONResponse:
    headers = {}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": error.to_dict()}, status_code=error.status_code, headers=headers)


def _is_field(part: str | int) -> bool:
    """Whether a pydantic error location part names a field (not a union member's type)."""
    if isinstance(part, int):
        return True
    return part != "body" and part not in _TYPES and not any(c in part for c in "[-")


_TYPES = {"str", "int", "float", "bool", "list", "dict", "none"}


def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    param = ".".join(str(part) for part in first["loc"] if _is_field(part)) or None
    if first["type"] == "json_invalid":
        return error_response(InvalidRequest(f"the body is not valid JSON: {first['msg']}"))
    message = f"{param}: {first['msg']}" if param else first["msg"]
    body = InvalidRequest(message, param=param).to_dict()
    return JSONResponse({"error": body}, status_code=422)


def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    if error.status_code == 405:
        return error_response(
            MethodNotAllowed(f"{request.url.path} does not take {request.method}")
        )
    if error.status_code == 404:
        return error_response(NotFound(f"no route {request.method} {request.url.path}"))
    # FastAPI wraps any failure to parse a body as a bare 400; say which, when we know
    reason = unreadable_json(error.__cause__) if error.__cause__ else None
    if reason:
        return error_response(InvalidRequest(f"the body is not accepted JSON: {reason}"))
    return error_response(InvalidRequest(str(error.detail)))


def _any_error(request: Request, error: Exception) -> JSONResponse:
    return error_response(as_tuneserve_error(error))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for known in (
        TuneserveError,
        RayTaskError,
        BackPressureError,
        DeploymentUnavailableError,
        RayActorError,
        ValidationError,
    ):
        app.add_exception_handler(known, _any_error)
    app.add_exception_handler(Exception, _any_error)  # last resort: still our JSON shape
