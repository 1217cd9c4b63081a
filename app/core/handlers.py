"""Exception handlers: everything a client can cause becomes problem+json, never a bare 500."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core import errors
from app.core.i18n import negotiate
from app.core.logging import get_logger

log = get_logger("errors")

_HTTP_STATUS_CODES = {
    404: errors.NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    413: errors.BODY_TOO_LARGE,
    415: errors.UNSUPPORTED_MEDIA_TYPE,
    401: errors.UNAUTHENTICATED,
    403: errors.FORBIDDEN,
}


def problem_response(
    request: Request,
    err: errors.ErrorCode,
    *,
    params: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = errors.problem_body(
        err,
        negotiate(request.headers.get("accept-language")),
        params=params,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        extra=extra,
    )
    response = JSONResponse(body, status_code=err.status, headers=headers)
    response.headers["content-type"] = errors.PROBLEM_JSON
    response.headers["content-language"] = negotiate(request.headers.get("accept-language"))
    return response


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.AppError)
    return problem_response(
        request, exc.error, params=exc.params, extra=exc.extra, headers=exc.headers
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = exc.errors()
    if any(d.get("type") == "json_invalid" for d in details):
        return problem_response(request, errors.MALFORMED_JSON)
    field_errors = [
        {
            "field": _field_name(d.get("loc", ())),
            "code": str(d.get("type", "invalid")),
            "message": str(d.get("msg", "")),
        }
        for d in details
    ]
    return problem_response(request, errors.VALIDATION_FAILED, extra={"errors": field_errors})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    err = _HTTP_STATUS_CODES.get(exc.status_code)
    if err is None:
        err = errors.INTERNAL if exc.status_code >= 500 else errors.VALIDATION_FAILED
    return problem_response(request, err, headers=dict(exc.headers or {}))


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
    return problem_response(request, errors.INTERNAL)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
