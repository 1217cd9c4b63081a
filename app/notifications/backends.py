"""Push backends: the file sink (development) and FCM through firebase-admin (`fcm.py`).

Both take firebase-admin `Message` objects and answer one `Outcome` per message, so the rest of
the pipeline does not know which one runs. The file sink writes the exact JSON firebase-admin
would send to FCM, one line per message, so the same JSON Schemas check both.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from firebase_admin import messaging

from app.core import clock
from app.core.config import Settings, get_settings
from app.notifications import templates
from app.notifications.models import Device, Notification

Status = Literal["sent", "retry", "unregistered", "invalid", "failed"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None


class PushBackend(Protocol):
    name: str

    async def send(self, messages: list[messaging.Message]) -> list[Outcome]: ...

    async def aclose(self) -> None: ...


def encode(message: messaging.Message) -> dict[str, Any]:
    """The JSON body firebase-admin sends to FCM for this message."""
    return messaging._MessagingService.encode_message(message)


def _channel(note: Notification) -> str:
    template = templates.TEMPLATES.get(note.kind)
    return template.android_channel if template else note.category


def build_message(note: Notification, device: Device) -> messaging.Message:
    """One FCM message: visible notification, data with the deep link, per-platform headers."""
    collapse = note.collapse_key or note.kind
    urgent = note.urgent
    android = apns = webpush = None
    if device.platform == "android":
        android = messaging.AndroidConfig(
            collapse_key=collapse,
            priority="high" if urgent else "normal",
            ttl=timedelta(seconds=note.ttl_seconds),
            notification=messaging.AndroidNotification(
                channel_id=_channel(note), tag=collapse,
            ),
        )
    elif device.platform == "ios":
        expires = int((clock.now() + timedelta(seconds=note.ttl_seconds)).timestamp())
        apns = messaging.APNSConfig(
            headers={
                "apns-push-type": "alert",
                # 10 = deliver now; 5 = may be batched for battery, fine for routine updates.
                "apns-priority": "10" if urgent else "5",
                "apns-collapse-id": collapse[:64],
                "apns-expiration": str(expires),
            },
            payload=messaging.APNSPayload(
                aps=messaging.Aps(
                    thread_id=note.category,
                    sound="default" if urgent else None,
                    mutable_content=True,
                )
            ),
        )
    else:
        webpush = messaging.WebpushConfig(
            headers={
                "TTL": str(note.ttl_seconds),
                "Urgency": "high" if urgent else "normal",
                "Topic": collapse.replace(".", "-")[:32],
            },
        )
    with warnings.catch_warnings():
        # firebase-admin 7 deprecates `Message.token` for Firebase installation IDs (`fid`); the
        # FCM v1 API still takes registration tokens, which is what the apps register today.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _message(note, device, android, apns, webpush)


def _message(note: Notification, device: Device, android: messaging.AndroidConfig | None,
             apns: messaging.APNSConfig | None,
             webpush: messaging.WebpushConfig | None) -> messaging.Message:
    return messaging.Message(
        token=device.token,
        notification=messaging.Notification(title=note.title, body=note.body),
        data={k: str(v) for k, v in note.data.items()},
        android=android,
        apns=apns,
        webpush=webpush,
        fcm_options=messaging.FCMOptions(analytics_label=note.kind),
    )


class FileBackend:
    """Development sink: one JSON object a line in PUSH_FILE_PATH (default var/push.jsonl)."""

    name = "file"
    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as sink:
            sink.writelines(lines)

    async def send(self, messages: list[messaging.Message]) -> list[Outcome]:
        at = clock.now().isoformat()
        ids = [f"file/{uuid.uuid4()}" for _ in messages]
        lines = [
            json.dumps({"at": at, "id": mid, "message": encode(m)}, ensure_ascii=False) + "\n"
            for mid, m in zip(ids, messages, strict=True)
        ]
        await asyncio.to_thread(self._write, lines)
        return [Outcome("sent", message_id=mid) for mid in ids]

    async def aclose(self) -> None:
        return None


_backends: dict[tuple[Any, ...], PushBackend] = {}


def _key(settings: Settings) -> tuple[Any, ...]:
    # An httpx client belongs to the event loop it first ran on: one backend per loop.
    loop = id(asyncio.get_running_loop())
    return (settings.push_backend, str(settings.push_file_path), str(settings.fcm_credentials_file),
            settings.fcm_base_url, settings.fcm_project_id, loop)


def get_backend() -> PushBackend:
    settings = get_settings()
    key = _key(settings)
    backend = _backends.get(key)
    if backend is None:
        if settings.push_backend == "fcm":
            from app.notifications.fcm import FcmBackend

            backend = FcmBackend(settings)
        else:
            backend = FileBackend(settings.push_file_path)
        _backends[key] = backend
    return backend


async def close_backends() -> None:
    """Close the FCM clients opened on the running loop (on shutdown, and between tests)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _backends if k[-1] == loop]:
        await _backends.pop(key).aclose()
