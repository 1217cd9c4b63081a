"""Accounts and steps shared by the notifications tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import session_factory
from app.identity.models import User
from app.notifications.models import Delivery, Device, Notification
from app.tokens import service as tokens
from tests.support.flows import bearer, login, make_user


@dataclass
class Account:
    user: User
    tokens: dict[str, Any]

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.tokens)


async def account(
    client: httpx.AsyncClient,
    db: AsyncSession,
    phone: str,
    role: str = "citizen",
    ward: str | None = None,
    *,
    with_password: bool = False,
    locale: str = "vi",
) -> Account:
    """An account with a live sign-in session and real access token.

    Without a password (the default) no argon2 hash is computed: tests stay fast.
    """
    if with_password:
        user = await make_user(db, phone, role, ward_code=ward)
        return Account(user, await login(client, phone))
    user = User(
        phone=f"+84{phone.lstrip('0')}",
        full_name="Người dùng",
        role=role,
        ward_code=ward,
        locale=locale,
    )
    db.add(user)
    await db.flush()
    return await sign_in(db, user)


async def sign_in(db: AsyncSession, user: User) -> Account:
    """A new sign-in session (as a login would open) for an existing account."""
    auth_session, refresh = await tokens.start_session(
        db, user_id=user.id, device_name="test", user_agent=None, ip=None, acr=None
    )
    access, _ = tokens.issue_access_token(
        subject=str(user.id),
        session_id=auth_session.id,
        scope="app",
        extra_claims={"role": user.role},
    )
    await db.commit()
    return Account(
        user, {"access_token": access, "refresh_token": refresh, "session_id": str(auth_session.id)}
    )


async def add_device(
    client: httpx.AsyncClient, who: Account, token: str, platform: str = "android"
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/devices",
        headers=who.headers,
        json={"token": token, "platform": platform, "app_version": "1.0.0", "locale": "vi-VN"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def pushes(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line)["message"] for line in path.read_text("utf-8").splitlines()]


async def fresh(query: Any) -> list[Any]:
    """Read in a new session: what the worker's transactions committed."""
    async with session_factory()() as session:
        return list((await session.execute(query)).scalars())


async def devices_of(user_id: uuid.UUID) -> list[Device]:
    return await fresh(sa.select(Device).where(Device.user_id == user_id))


async def inbox_rows(user_id: uuid.UUID) -> list[Notification]:
    return await fresh(
        sa.select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
    )


async def deliveries() -> list[Delivery]:
    return await fresh(sa.select(Delivery).order_by(Delivery.created_at))
