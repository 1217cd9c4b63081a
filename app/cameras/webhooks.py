"""Standard Webhooks verification of internal alert calls, before the body is even parsed.

`SignedWebhookRoute` checks, in this order: the caller's network (INTERNAL_ALLOWED_NETWORKS), the
presence of the three headers, the timestamp tolerance (the package's fixed 5 minutes), and the
HMAC-SHA256 signature against each secret of CAMERA_WEBHOOK_SECRETS (several at once during a
rotation; a sender may also send several signatures). Only then is the JSON parsed and validated,
so an unsigned caller learns nothing about the body schema.

A route marked `@direct(Model)` (the alert intake, the hottest request of the service, with a
100 KB body) skips FastAPI's request handling: the signature is checked over the raw bytes, which
pydantic then parses and validates in one pass (`model_validate_json`, no intermediate dict), and
the endpoint is called as `endpoint(model, meta, session)` with the request's unit of work (what
`DbSession` gives other routes: committed before the answer is sent, rolled back on an error) and
returns its Response. Its FastAPI signature still describes it for the OpenAPI document.
Validation errors are raised as FastAPI's would be (`RequestValidationError`, located under
`body`), so the problems are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from standardwebhooks import Webhook
from starlette.datastructures import Headers

from app.cameras import errors
from app.core.config import get_settings
from app.core.db import unit_of_work
from app.core.errors import AppError
from app.core.internal import require_internal_network

TOLERANCE_SECONDS = 300  # standardwebhooks' fixed tolerance
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class WebhookMeta:
    id: str
    timestamp: datetime


@lru_cache(maxsize=4)
def _verifiers(secrets: tuple[str, ...]) -> tuple[Webhook, ...]:
    return tuple(Webhook(secret) for secret in secrets)


def verify(body: bytes, headers: Headers | dict[str, str]) -> WebhookMeta:
    """Return the verified message id and timestamp, or raise the matching 401 problem."""
    secrets = tuple(get_settings().camera_webhook_secrets)
    if not secrets:
        raise AppError(errors.WEBHOOK_NOT_CONFIGURED)
    msg_id, stamp, signature = (headers.get(name, "").strip() for name in HEADERS)
    if not (msg_id and stamp and signature):
        raise AppError(errors.WEBHOOK_UNSIGNED, headers={"WWW-Authenticate": "Signature"})
    if len(msg_id) > 200:
        raise AppError(errors.WEBHOOK_BAD_SIGNATURE)
    try:
        seconds = float(stamp)
        if not math.isfinite(seconds):
            raise ValueError(stamp)
        sent_at = datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise AppError(errors.WEBHOOK_BAD_SIGNATURE) from None
    # Wall-clock time, as the package checks it (not the app's test clock).
    if abs((datetime.now(UTC) - sent_at).total_seconds()) > TOLERANCE_SECONDS:
        raise AppError(errors.WEBHOOK_TIMESTAMP, params={"tolerance": TOLERANCE_SECONDS})
    wanted = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}
    for verifier in _verifiers(secrets):
        try:
            verifier.verify(body, wanted, json_parse=False)
        except Exception:  # noqa: S112 - malformed signatures raise ValueError, binascii.Error...
            continue
        return WebhookMeta(id=msg_id, timestamp=sent_at)
    raise AppError(errors.WEBHOOK_BAD_SIGNATURE)


def webhook_meta(request: Request) -> WebhookMeta:
    """Dependency: the verified webhook headers of this request."""
    meta = getattr(request.state, "webhook", None)
    if not isinstance(meta, WebhookMeta):  # only reachable if a route forgot the route class
        raise AppError(errors.WEBHOOK_UNSIGNED)
    return meta


Endpoint = Callable[..., Coroutine[Any, Any, Response]]


def direct(model: type[BaseModel]) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint `async def f(body: model, meta: WebhookMeta, session) -> Response` to be
    called by `SignedWebhookRoute` without FastAPI's request handling (see the module docstring)."""

    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.direct_body = model  # type: ignore[attr-defined]
        return endpoint

    return mark


def _parse(model: type[BaseModel], request: Request, body: bytes) -> BaseModel:
    """The body as FastAPI would read it into `model`, errors included, in one pass."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "input": None, "msg": "Field required"}],
            body=body,
        )
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (
        media == "application/json"
        or (media.startswith("application/") and media.endswith("+json"))
    ):
        # FastAPI leaves a body without a JSON media type unparsed: not an object.
        raise RequestValidationError(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ("body",),
                    "input": body,
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                }
            ],
            body=body,
        )
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()], body=body
        ) from None


class SignedWebhookRoute(APIRoute):
    """Route class of the internal webhook routes: network, then signature, then the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        model: type[BaseModel] | None = getattr(self.endpoint, "direct_body", None)
        if model is not None:
            endpoint = self.endpoint

            async def direct_handler(request: Request) -> Response:
                await require_internal_network(request)
                body = await request.body()
                meta = verify(body, request.headers)
                parsed = _parse(model, request, body)
                async with unit_of_work() as session:
                    return await endpoint(parsed, meta, session)

            return direct_handler

        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            await require_internal_network(request)
            body = await request.body()  # cached: FastAPI parses the same bytes afterwards
            request.state.webhook = verify(body, request.headers)
            return await original(request)

        return handler
