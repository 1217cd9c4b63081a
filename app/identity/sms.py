"""SMS delivery backends: a JSONL file sink for development, an HTTP gateway for production.

Messages are sent by the worker (job `identity.send_sms`), never on the request path, so a failed
gateway call is retried and a rolled-back request sends nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import anyio
import httpx

from app.core import clock
from app.identity.config import get_identity_settings


class SmsBackend(Protocol):
    async def send(self, to: str, body: str) -> None: ...


class FileSmsBackend:
    """Appends one JSON object per line: {"to", "body", "sent_at"}."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, to: str, body: str) -> None:
        line = json.dumps(
            {"to": to, "body": body, "sent_at": clock.now().isoformat()}, ensure_ascii=False
        )
        await anyio.Path(self.path.parent).mkdir(parents=True, exist_ok=True)
        async with await anyio.open_file(self.path, "a", encoding="utf-8") as handle:
            await handle.write(line + "\n")


class SmsGatewayError(Exception):
    """The gateway did not take the message; the job fails and the worker retries it."""


class HttpSmsBackend:
    """POST {"to", "body", "sender"} as JSON with `Authorization: Bearer <key>`; 2xx is success."""

    def __init__(self, url: str, api_key: str, sender: str, timeout: float = 10.0) -> None:
        self.url, self.api_key, self.sender, self.timeout = url, api_key, sender, timeout

    async def send(self, to: str, body: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    self.url,
                    json={"to": to, "body": body, "sender": self.sender},
                    headers={"Authorization": f"Bearer {self.api_key}"},
                )
        except httpx.HTTPError as exc:
            raise SmsGatewayError(f"gateway unreachable: {type(exc).__name__}") from exc
        if not response.is_success:
            # Only the status: the gateway's answer may echo the message, and this text ends up
            # in the job's last_error and in the logs (an OTP must not).
            raise SmsGatewayError(f"gateway answered {response.status_code}")


def get_backend() -> SmsBackend:
    settings = get_identity_settings()
    if settings.sms_backend == "http":  # with its URL: IdentitySettings refuses one without
        return HttpSmsBackend(
            settings.sms_gateway_url, settings.sms_gateway_api_key, settings.sms_sender_name
        )
    return FileSmsBackend(settings.sms_file_path)
