"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path).

RequestContextMiddleware: request id (X-Request-ID in and out), structlog context, metrics,
one access-log line, the request-body size limit answered as problem+json 413, and the last line
of defence that turns an unexpected exception into a problem+json 500 carrying the request id.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import errors, metrics, nul_guard
from app.core.i18n import negotiate
from app.core.logging import get_logger

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = get_logger("http")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The labelled children of the request metrics, by (method, route template, status): a bounded
# set, since the method is one of the above and the route a template, never a raw path.
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


# Path parameters that carry a secret (a device's push token, on deprecated paths): a request to
# a route taking one is logged with the route's template as its path, never the raw path.
SECRET_PATH_PARAMS = frozenset({"token"})


def loggable_path(scope: Scope) -> str:
    """The request's path as logs may show it (see SECRET_PATH_PARAMS)."""
    params = scope.get("path_params")
    if params and not SECRET_PATH_PARAMS.isdisjoint(params):
        return getattr(scope.get("route"), "path", None) or "(redacted)"
    return scope["path"]


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a streamed body (no or a lying Content-Length) passes the limit.

    An HTTPException on purpose: FastAPI re-raises HTTPExceptions met while reading a body, where
    any other exception would become a generic 400. The route's exception handler then renders the
    413 problem and the request's transaction rolls back like that of any failed request, so
    nothing the handler did with the first chunks is kept.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive) -> list[Message]:
    """Every message up to the end of the body (or a disconnect), as received."""
    messages = [await receive()]
    while messages[-1]["type"] == "http.request" and messages[-1].get("more_body", False):
        messages.append(await receive())
    return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_limit_exempt: tuple[str, ...] = ()):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.exempt = body_limit_exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        limit = None if self._exempt(scope["path"]) else self.max_body_bytes

        declared = _header(scope, b"content-length")
        if limit is not None and declared and declared.isdigit() and int(declared) > limit:
            # Refused before the application reads a byte of it.
            await self._send_problem(
                scope, send, request_id, errors.BODY_TOO_LARGE, {"limit": limit}
            )
            self._observe(scope, 413, started)
            return

        received = 0
        status = 500
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        app_receive: Receive = limited_receive
        try:
            nul_fields = nul_guard.in_url(scope)
            if not nul_fields and limit is not None and nul_guard.wants_body_check(scope):
                # JSON and form bodies are small (under the limit): read them whole, look, replay.
                buffered = await _read_body(limited_receive)
                body = b"".join(message.get("body", b"") for message in buffered)
                nul_fields = nul_guard.in_body(scope, body)
                app_receive = _replay(buffered, limited_receive)
        except BodyTooLarge as exc:
            await self._send_problem(
                scope, send, request_id, errors.BODY_TOO_LARGE, {"limit": exc.limit}
            )
            self._observe(scope, 413, started)
            return
        if nul_fields:
            await self._send_problem(
                scope,
                send,
                request_id,
                errors.VALIDATION_FAILED,
                None,
                extra={"errors": nul_guard.field_errors(nul_fields)},
            )
            self._observe(scope, 422, started)
            return

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                if status == 413 and not any(k == b"connection" for k, _ in headers):
                    # The rest of the body was never read: the connection cannot be reused.
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, app_receive, send_with_id)
        except BodyTooLarge as exc:
            # Read outside a route (no exception handler saw it).
            if response_started:
                raise
            await self._send_problem(
                scope, send, request_id, errors.BODY_TOO_LARGE, {"limit": exc.limit}
            )
            status = 413
        except Exception:
            log.exception("unhandled_error", method=scope.get("method"), path=loggable_path(scope))
            if response_started:
                # Half a response is out: the server must cut the connection, never finish it
                # with something that looks complete.
                raise
            await self._send_problem(scope, send, request_id, errors.INTERNAL, None)
            status = 500
        finally:
            self._observe(scope, status, started)

    def _exempt(self, path: str) -> bool:
        """Whole segments: `/api/v1/media` covers `/api/v1/media/x`, not `/api/v1/mediax`."""
        return any(
            path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in self.exempt
        )

    @staticmethod
    async def _send_problem(
        scope: Scope,
        send: Send,
        request_id: str,
        err: errors.ErrorCode,
        params: dict[str, Any] | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        language = negotiate(_header(scope, b"accept-language"))
        metrics.count_problem(err.code)
        body = orjson.dumps(
            errors.problem_body(
                err,
                language,
                params=params,
                instance=scope["path"],
                request_id=request_id,
                extra=extra,
            )
        )
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", errors.PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"content-language", language.encode()),
            (b"vary", b"Accept-Language"),
            (b"x-request-id", request_id.encode()),
        ]
        if err.status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        # The route template, never the raw path: ids in paths would explode the label set.
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        if method not in _METHODS:
            method = "other"  # clients choose methods: keep the label set bounded
        counted = _series.get((method, template, status))
        if counted is None:  # prometheus-client's labels() costs ~20 us a call: once per series
            counted = _series[(method, template, status)] = (
                metrics.HTTP_REQUESTS.labels(method, template, str(status)),
                metrics.HTTP_LATENCY.labels(method, template),
            )
        counted[0].inc()
        counted[1].observe(elapsed)
        fields = {
            "method": method,
            "path": loggable_path(scope),
            "route": template,
            "status": status,
            "ms": round(elapsed * 1000, 2),
        }
        if status >= 500:
            log.error("request", **fields)
        else:
            log.info("request", **fields)
