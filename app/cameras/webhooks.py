"""Standard Webhooks verification of internal alert calls, before the body is even parsed.

`SignedWebhookRoute` checks, in this order: the caller's network (INTERNAL_ALLOWED_NETWORKS), the
presence of the three headers, the timestamp tolerance (the package's fixed 5 minutes), and the
HMAC-SHA256 signature against each secret of CAMERA_WEBHOOK_SECRETS (several at once during a
rotation; a sender may also send several signatures). Only then does FastAPI parse and validate
the JSON, so an unsigned caller learns nothing about the body schema.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from standardwebhooks import Webhook

from app.cameras import errors
from app.core.config import get_settings
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


def verify(body: bytes, headers: dict[str, str]) -> WebhookMeta:
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


class SignedWebhookRoute(APIRoute):
    """Route class of the internal webhook routes: network, then signature, then the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            await require_internal_network(request)
            body = await request.body()  # cached: FastAPI parses the same bytes afterwards
            request.state.webhook = verify(body, dict(request.headers))
            return await original(request)

        return handler
