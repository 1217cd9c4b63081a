"""The per-account device cap (PUSH_MAX_DEVICES_PER_USER) holds when many app installs register
at once, over two server processes on PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.notifications.config import get_notification_settings
from app.notifications.models import Device
from tests.notifications.helpers import account

REGISTRATIONS = 40


async def test_the_device_cap_holds_against_concurrent_registrations(
    client, db: AsyncSession, two_servers: str
) -> None:
    an = await account(client, db, "0912700001")
    limit = get_notification_settings().push_max_devices_per_user
    async with httpx.AsyncClient(base_url=two_servers, headers=an.headers, timeout=60) as http:
        answers = await asyncio.gather(
            *[
                http.post(
                    "/api/v1/devices", json={"token": f"race-token-{n:03d}", "platform": "android"}
                )
                for n in range(REGISTRATIONS)
            ]
        )
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers][:3]
    kept = (
        await db.execute(
            sa.select(sa.func.count()).select_from(Device).where(Device.user_id == an.id)
        )
    ).scalar_one()
    assert kept == limit
