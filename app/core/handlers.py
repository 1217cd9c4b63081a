"""Exception handlers: everything a client can cause becomes problem+json, never a bare 500.

`install()` also makes the OpenAPI document say so: problem responses are documented as
`application/problem+json` (FastAPI would list them as `application/json`), and FastAPI's default
422 `HTTPValidationError` is replaced by our `request.validation_failed` problem.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core import errors, metrics
from app.core.config import get_settings
from app.core.i18n import negotiate
from app.core.logging import get_logger
from app.core.middleware import loggable_path

log = get_logger("errors")

_HTTP_STATUS_CODES = {
    400: errors.BAD_REQUEST,
    401: errors.UNAUTHENTICATED,
    403: errors.FORBIDDEN,
    404: errors.NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    413: errors.BODY_TOO_LARGE,
    415: errors.UNSUPPORTED_MEDIA_TYPE,
    503: errors.UNAVAILABLE,
}
# Where Starlette's own body limit (FastAPI `max_body_size=`) keeps the limit of a request.
_STARLETTE_BODY_LIMIT_KEY = "starlette.max_body_size"


def problem_response(
    request: Request,
    err: errors.ErrorCode,
    *,
    params: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> JSONResponse:
    language = negotiate(request.headers.get("accept-language"))
    body = errors.problem_body(
        err,
        language,
        params=params,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        extra=extra,
    )
    if status is not None:
        body["status"] = status
    metrics.count_problem(err.code)
    response = JSONResponse(body, status_code=body["status"], headers=headers)
    response.headers["content-type"] = errors.PROBLEM_JSON
    response.headers["content-language"] = language
    # The message depends on Accept-Language: caches must not serve one language for another.
    response.headers["vary"] = "Accept-Language"
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


def _body_limit(request: Request, exc: StarletteHTTPException) -> int:
    limit = getattr(exc, "limit", None) or request.scope.get(_STARLETTE_BODY_LIMIT_KEY)
    return int(limit) if limit is not None else get_settings().max_request_body_bytes


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    err = _HTTP_STATUS_CODES.get(exc.status_code)
    if err is errors.BODY_TOO_LARGE:  # RequestContextMiddleware adds `Connection: close`
        return problem_response(
            request, err, params={"limit": _body_limit(request, exc)}, headers=headers
        )
    if err is not None:
        return problem_response(request, err, headers=headers)
    # A status without a code of its own (nothing of ours raises one): keep the status, so the
    # body never contradicts the response line.
    log.warning("unmapped_http_status", status=exc.status_code, path=loggable_path(request.scope))
    fallback = errors.INTERNAL if exc.status_code >= 500 else errors.BAD_REQUEST
    return problem_response(request, fallback, headers=headers, status=exc.status_code)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Backstop only: RequestContextMiddleware answers unexpected exceptions first.
    log.exception("unhandled_error", path=loggable_path(request.scope), error=type(exc).__name__)
    return problem_response(request, errors.INTERNAL)


async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
    """The database refused or timed out (SQLite's writer lock under load, a failover): the
    request changed nothing, so tell the client to retry instead of answering a bare 500."""
    log.warning("database_unavailable", path=loggable_path(request.scope), error=str(exc)[:200])
    return problem_response(request, errors.UNAVAILABLE, headers={"Retry-After": "1"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.AppError, _app_error)
    app.add_exception_handler(sa.exc.OperationalError, _database_busy)
    app.add_exception_handler(sa.exc.InterfaceError, _database_busy)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
    _document_problems(app)


# ---------------------------------------------------------------- OpenAPI

_REF_PREFIX = "#/components/schemas/"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _document_problems(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            problem_openapi(generate())  # FastAPI caches the document; fix it once, in place
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_response() -> dict[str, Any]:
    documented = errors.responses(errors.VALIDATION_FAILED)[errors.VALIDATION_FAILED.status]
    content = documented["content"][errors.PROBLEM_JSON]
    return {
        "description": documented["description"],
        "content": {errors.PROBLEM_JSON: {"schema": {"$ref": _REF_PREFIX + "Problem"}, **content}},
    }


def _ensure_problem_schema(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" in schemas:
        return
    schema = errors.Problem.model_json_schema(ref_template=_REF_PREFIX + "{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas["Problem"] = schema


def problem_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Document problem responses as they are sent: `application/problem+json` with `Problem`."""
    needs_problem_schema = False
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in list(operation.get("responses", {}).items()):
                content = response.get("content", {})
                plain = content.get("application/json", {})
                if plain.get("schema", {}).get("$ref") == _REF_PREFIX + "HTTPValidationError":
                    operation["responses"][status] = _validation_response()
                    needs_problem_schema = True
                elif errors.PROBLEM_JSON in content and "schema" in plain:
                    content[errors.PROBLEM_JSON]["schema"] = content.pop("application/json")[
                        "schema"
                    ]
            if _document_generic_problems(operation):
                needs_problem_schema = True
    if needs_problem_schema:
        _ensure_problem_schema(document)
    _drop_fastapi_validation_schemas(document)
    return document


def _generic_problems(operation: dict[str, Any]) -> tuple[errors.ErrorCode, ...]:
    """The problems any route may answer whatever it does: for a request body, too large (the
    body limit), unreadable JSON, invalid fields; for a bearer token it asks for, missing or
    invalid (RFC 6750 3.1: 401)."""
    found: tuple[errors.ErrorCode, ...] = ()
    content = operation.get("requestBody", {}).get("content", {})
    if content:
        found += (errors.BODY_TOO_LARGE, errors.VALIDATION_FAILED)
        if any(media.endswith("json") for media in content):
            found += (errors.MALFORMED_JSON,)
    if operation.get("security"):
        found += (errors.UNAUTHENTICATED, errors.TOKEN_INVALID)
    return found


def _document_generic_problems(operation: dict[str, Any]) -> bool:
    """Document on every operation the problems it answers whatever the route (a body, a token),
    so no route has to repeat them. Returns whether a `Problem` reference was added."""
    added = False
    responses = operation.setdefault("responses", {})
    for err in _generic_problems(operation):
        status = str(err.status)
        example = {err.code: {"value": errors.problem_body(err, "vi")}}
        documented = responses.get(status)
        if documented is None:
            responses[status] = {
                "description": err.code,
                "content": {
                    errors.PROBLEM_JSON: {
                        "schema": {"$ref": _REF_PREFIX + "Problem"},
                        "examples": example,
                    }
                },
            }
            added = True
            continue
        problem = documented.get("content", {}).get(errors.PROBLEM_JSON)
        if problem is None or err.code in problem.get("examples", {}):
            continue  # documented already (or as something else the route answers with)
        problem.setdefault("examples", {}).update(example)
        documented["description"] = ", ".join(
            filter(None, [documented.get("description"), err.code])
        )
    return added


def _drop_fastapi_validation_schemas(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    if not schemas:
        return
    kept = {k: v for k, v in schemas.items() if k not in _FASTAPI_VALIDATION_SCHEMAS}
    rest = json.dumps({**document, "components": {**document["components"], "schemas": kept}})
    if not any(_REF_PREFIX + name + '"' in rest for name in _FASTAPI_VALIDATION_SCHEMAS):
        for name in _FASTAPI_VALIDATION_SCHEMAS:
            schemas.pop(name, None)
