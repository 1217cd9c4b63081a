"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path).

RequestContextMiddleware: request id (X-Request-ID in and out), structlog context, metrics,
one access-log line, and the request-body size limit answered as problem+json 413.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import errors, metrics
from app.core.i18n import negotiate
from app.core.logging import get_logger

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = get_logger("http")


class BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


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
        status_holder = {"status": 500}
        limit = None if scope["path"].startswith(self.exempt) else self.max_body_bytes

        declared = _header(scope, b"content-length")
        if limit is not None and declared and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, request_id, limit)
            self._observe(scope, 413, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            await self._too_large(scope, send, request_id, limit or 0)
            status_holder["status"] = 413
        finally:
            # Also when an unhandled error escapes (after the 500 went out): crashes must show in
            # the metrics and the log like any other answer.
            self._observe(scope, status_holder["status"], started)

    async def _too_large(self, scope: Scope, send: Send, request_id: str, limit: int) -> None:
        language = negotiate(_header(scope, b"accept-language"))
        body = orjson.dumps(
            errors.problem_body(
                errors.BODY_TOO_LARGE, language, params={"limit": limit},
                instance=scope["path"], request_id=request_id,
            )
        )
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", errors.PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        metrics.HTTP_REQUESTS.labels(method, template, str(status)).inc()
        metrics.HTTP_LATENCY.labels(method, template).observe(elapsed)
        if status >= 500:
            log.error("request", method=method, path=scope["path"], status=status,
                      ms=round(elapsed * 1000, 2))
        else:
            log.info("request", method=method, path=scope["path"], status=status,
                      ms=round(elapsed * 1000, 2))
