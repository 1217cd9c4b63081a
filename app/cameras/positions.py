"""Coarse device positions for nearby warnings: kept as a grid cell, only with the citizen's
opt-in to traffic alerts, overwritten on every report (no history), part of the citizen's export
and erased with the account."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.cameras import errors, grid, integrations
from app.cameras.dialect import insert
from app.cameras.models import DevicePosition
from app.core import clock, personal_data
from app.core.errors import AppError
from app.core.personal_data import Retained
from app.core.tables import rows_matched


async def report(
    session: AsyncSession, user_id: uuid.UUID, token: str, lat: float, lon: float
) -> dict[str, Any]:
    if not await integrations.device_belongs_to(session, user_id, token):
        raise AppError(errors.DEVICE_NOT_FOUND)
    if not await integrations.traffic_alerts_on(session, user_id):
        # Opting out later must not leave a position behind either (see `forget_user`).
        await forget(session, user_id, token)
        raise AppError(errors.NOT_OPTED_IN, commit=True)
    now = clock.now()
    cell = grid.cell_of(lat, lon)
    statement = insert(session, DevicePosition).values(
        token=token, user_id=user_id, cell=cell, reported_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[DevicePosition.token],
            set_={"user_id": user_id, "cell": cell, "reported_at": now},
        )
    )
    return {"cell": cell, "reported_at": now}


async def forget(session: AsyncSession, user_id: uuid.UUID, token: str) -> None:
    await session.execute(
        sa.delete(DevicePosition).where(
            col(DevicePosition.token) == token, col(DevicePosition.user_id) == user_id
        )
    )


async def forget_stale(session: AsyncSession) -> int:
    """Positions too old to put anyone near anything (`POSITION_FRESH_FOR`) serve no warning:
    they go, so that a citizen who stopped reporting leaves no place behind."""
    cutoff = clock.now() - integrations.POSITION_FRESH_FOR
    result = await session.execute(
        sa.delete(DevicePosition).where(col(DevicePosition.reported_at) < cutoff)
    )
    return rows_matched(result)


async def forget_user(session: AsyncSession, user_id: uuid.UUID) -> list[Retained]:
    await session.execute(sa.delete(DevicePosition).where(col(DevicePosition.user_id) == user_id))
    return []


async def export_user(session: AsyncSession, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        sa.select(DevicePosition).where(col(DevicePosition.user_id) == user_id)
    )
    return [
        {"device_token_end": p.token[-6:], "cell": p.cell, "reported_at": p.reported_at.isoformat()}
        for p in rows.scalars()
    ]


personal_data.register("device_positions", exporter=export_user, eraser=forget_user)
