"""Helpers of the camera tests: signing as the operations centre does, pictures, cameras."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from app.cameras import service
from app.cameras.models import Camera
from app.cameras.schemas import CameraCreate
from app.notifications import service as notifications
from tests.notifications.helpers import Account, account

SECRET = "whsec_" + base64.b64encode(b"camera-test-secret-0123456789abcd").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"camera-old-secret-0123456789abcd!").decode()
ALERTS = "/internal/v1/camera-alerts"
# Phan Dinh Phung ward, central Thai Nguyen.
LAT, LON = 21.5942, 105.8482


def signed_headers(
    body: bytes,
    secret: str = SECRET,
    *,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def alert_body(camera: str = "TNG-CAM-0042", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": f"ioc-{uuid.uuid4().hex[:12]}",
        "camera_id": camera,
        "type": "accident",
        "confidence": 0.93,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


async def send(
    client: httpx.AsyncClient,
    body: dict[str, Any] | bytes,
    *,
    path: str = ALERTS,
    secret: str = SECRET,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        path, content=raw, headers=signed_headers(raw, secret, msg_id=msg_id, at=at)
    )


def jpeg(width: int = 640, height: int = 360, *, seed: int = 1) -> bytes:
    """A textured street-like picture (noise, so that blurring visibly changes it)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (width // 4, height // 3), (width // 2, height // 2), (0, 0, 200), -1)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buffer.tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def make_camera(
    db: AsyncSession,
    code: str = "TNG-CAM-0042",
    *,
    ward: str = "TNG-PDP",
    status: str = "active",
    lat: float = LAT,
    lon: float = LON,
) -> Camera:
    camera = await service.create_camera(
        db,
        CameraCreate(
            code=code,
            name=f"Camera {code}",
            lat=lat,
            lon=lon,
            ward_code=ward,
            direction="northbound",
            status=status,  # type: ignore[arg-type]
        ),
    )
    await db.commit()
    return camera


def old(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


async def staff_with_phone(
    client: httpx.AsyncClient,
    db: AsyncSession,
    phone: str,
    token: str,
    *,
    ward: str = "TNG-PDP",
    platform: str = "android",
    locale: str = "vi",
) -> Account:
    """A ward staff member whose phone gets pushes (its device registered, as the app does)."""
    staff = await account(client, db, phone, "ward_staff", ward)
    await notifications.register_device(
        db,
        user_id=staff.id,
        auth_session_id=None,
        token=token,
        platform=platform,
        app_version="1.0",
        locale=locale,
    )
    await db.commit()
    return staff
