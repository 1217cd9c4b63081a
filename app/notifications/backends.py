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
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from firebase_admin import messaging

from app.core import clock
from app.notifications import templates
from app.notifications.config import NotificationSettings, get_notification_settings

Status = Literal["sent", "retry", "unregistered", "invalid", "failed"]


class Outcome(NamedTuple):
    """FCM's answer for one message, as what we do next (a tuple: one per message sent)."""

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


def _channel(kind: str, category: str) -> str:
    template = templates.TEMPLATES.get(kind)
    return template.android_channel if template else category


class PushNote(Protocol):
    """What a push needs of an inbox row (a `Notification` or a `NewNotification`)."""

    kind: str
    category: str
    urgent: bool
    title: str
    body: str
    data: dict[str, Any]
    collapse_key: str | None
    ttl_seconds: int


class PushDevice(Protocol):
    token: str
    platform: str


# The parts of a message that do not depend on the recipient, built once per distinct value:
# an announcement to 100,000 devices needs a handful of them, not 100,000 of each.
@lru_cache(maxsize=512)
def _visible(title: str, body: str) -> messaging.Notification:
    return messaging.Notification(title=title, body=body)


@lru_cache(maxsize=512)
def _fcm_options(kind: str) -> messaging.FCMOptions:
    return messaging.FCMOptions(analytics_label=kind)


PlatformConfig = tuple[
    messaging.AndroidConfig | None, messaging.APNSConfig | None, messaging.WebpushConfig | None
]


@lru_cache(maxsize=1024)
def _platform_config(
    platform: str, kind: str, category: str, collapse: str, urgent: bool, ttl: int, expires: int
) -> PlatformConfig:
    """Android channel and priority, APNs headers, web push headers."""
    if platform == "android":
        android = messaging.AndroidConfig(
            collapse_key=collapse,
            priority="high" if urgent else "normal",
            ttl=timedelta(seconds=ttl),
            notification=messaging.AndroidNotification(
                channel_id=_channel(kind, category), tag=collapse
            ),
        )
        return android, None, None
    if platform == "ios":
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
                    thread_id=category,
                    sound="default" if urgent else None,
                    mutable_content=True,
                )
            ),
        )
        return None, apns, None
    webpush = messaging.WebpushConfig(
        headers={
            "TTL": str(ttl),
            "Urgency": "high" if urgent else "normal",
            "Topic": collapse.replace(".", "-")[:32],
        },
    )
    return None, None, webpush


def build_messages(
    pairs: Iterable[tuple[PushNote, PushDevice]], *, at: datetime | None = None
) -> list[messaging.Message]:
    """One FCM message per (inbox row, device): visible notification, data with the deep link,
    per-platform headers. Only the token and the data map are per message: everything else is
    a prototype built once per distinct (content, platform) and shared by the messages that
    carry it (an announcement to 100,000 devices needs three). The data map (strings only, as
    the templates build it) is the inbox row's own, as pushed."""
    now = int((at or clock.now()).timestamp())
    prototypes: dict[tuple[Any, ...], dict[str, Any]] = {}
    new = object.__new__
    out = []
    for note, device in pairs:
        platform = device.platform
        key = (note.kind, note.category, note.collapse_key, note.urgent, note.ttl_seconds,
               note.title, note.body, platform)  # fmt: skip
        proto = prototypes.get(key)
        if proto is None:
            proto = prototypes[key] = _prototype(note, platform, now)
        message = new(messaging.Message)
        # The attributes `Message.__init__` sets, without its per-message DeprecationWarning
        # about `token` (firebase-admin 7 prefers `fid`, for Firebase installation IDs; the FCM
        # v1 API still takes the registration tokens the apps register today).
        message.__dict__ = {**proto, "token": device.token, "data": note.data}
        out.append(message)
    return out


def _prototype(note: PushNote, platform: str, now: int) -> dict[str, Any]:
    ttl = note.ttl_seconds
    android, apns, webpush = _platform_config(
        platform,
        note.kind,
        note.category,
        note.collapse_key or note.kind,
        note.urgent,
        ttl,
        now + ttl if platform == "ios" else 0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        proto = messaging.Message(
            token="",  # replaced per message
            notification=_visible(note.title, note.body),
            data={},
            android=android,
            apns=apns,
            webpush=webpush,
            fcm_options=_fcm_options(note.kind),
        )
    return dict(proto.__dict__)


def build_message(note: PushNote, device: PushDevice) -> messaging.Message:
    return build_messages([(note, device)])[0]


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


def _key(settings: NotificationSettings) -> tuple[Any, ...]:
    # An httpx client belongs to the event loop it first ran on: one backend per loop.
    loop = id(asyncio.get_running_loop())
    return (
        settings.push_backend,
        str(settings.push_file_path),
        str(settings.fcm_credentials_file),
        settings.fcm_base_url,
        settings.fcm_project_id,
        loop,
    )


def get_backend() -> PushBackend:
    settings = get_notification_settings()
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
