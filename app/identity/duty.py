"""Who of a ward's staff is on duty: urgent notices of the ward (a camera's accident, a camera
gone silent) go to them. A shift is declared by the staff member (`PUT /api/v1/staff/duty`) and
ends by itself; while nobody of a ward is on duty, such notices go to all its staff, so that
none is lost."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock, personal_data
from app.core.errors import AppError
from app.core.personal_data import Retained
from app.identity import errors
from app.identity.models import StaffDuty, User
from app.identity.service import WARD_STAFF_ROLES, ward_staff_ids


async def start(session: AsyncSession, user: User, hours: float) -> StaffDuty:
    """On duty from now for `hours` (again: the shift is extended or shortened)."""
    if user.role not in WARD_STAFF_ROLES or not user.ward_code:
        raise AppError(errors.NOT_WARD_STAFF)
    now = clock.now()
    duty = await session.get(StaffDuty, user.id)
    if duty is None:
        duty = StaffDuty(user_id=user.id, ward_code=user.ward_code, started_at=now, until=now)
        session.add(duty)
    elif duty.until <= now:  # an ended shift: a new one
        duty.started_at = now
    duty.ward_code, duty.until = user.ward_code, now + timedelta(hours=hours)
    await session.flush()
    return duty


async def end(session: AsyncSession, user: User) -> None:
    await session.execute(sa.delete(StaffDuty).where(col(StaffDuty.user_id) == user.id))


async def current(session: AsyncSession, user_id: uuid.UUID) -> StaffDuty | None:
    duty = await session.get(StaffDuty, user_id)
    return duty if duty is not None and duty.until > clock.now() else None


@dataclass(frozen=True)
class Shift:
    user_id: uuid.UUID
    full_name: str | None
    started_at: datetime
    until: datetime


async def on_duty(session: AsyncSession, ward_code: str) -> list[Shift]:
    """The shifts running now in the ward, of staff still active and still of that ward."""
    rows = await session.execute(
        sa.select(
            col(StaffDuty.user_id),
            col(User.full_name),
            col(StaffDuty.started_at),
            col(StaffDuty.until),
        )
        .join(User, col(User.id) == StaffDuty.user_id)
        .where(
            col(StaffDuty.ward_code) == ward_code,
            col(StaffDuty.until) > clock.now(),
            col(User.ward_code) == ward_code,
            col(User.status) == "active",
            col(User.role).in_(WARD_STAFF_ROLES),
        )
        .order_by(col(StaffDuty.started_at))
    )
    return [Shift(*row) for row in rows]


async def view(session: AsyncSession, user: User) -> dict[str, Any]:
    """My shift, and the shifts running now in my ward."""
    mine = await current(session, user.id)
    ward = await on_duty(session, user.ward_code) if user.ward_code else []
    return {
        "on_duty": mine is not None,
        "until": mine.until if mine else None,
        "ward_code": user.ward_code,
        "ward_on_duty": [asdict(shift) for shift in ward],
    }


async def recipients(session: AsyncSession, ward_code: str) -> list[uuid.UUID]:
    """Who gets the ward's urgent notices: the staff on duty, or all its staff when none is."""
    shifts = await on_duty(session, ward_code)
    return [d.user_id for d in shifts] or await ward_staff_ids(session, ward_code)


async def export_user(session: AsyncSession, user_id: uuid.UUID) -> list[dict[str, Any]]:
    duty = await session.get(StaffDuty, user_id)
    return (
        []
        if duty is None
        else [
            {
                "ward_code": duty.ward_code,
                "started_at": duty.started_at.isoformat(),
                "until": duty.until.isoformat(),
            }
        ]
    )


async def erase_user(session: AsyncSession, user_id: uuid.UUID) -> list[Retained]:
    await session.execute(sa.delete(StaffDuty).where(col(StaffDuty.user_id) == user_id))
    return []


personal_data.register("staff_duty", exporter=export_user, eraser=erase_user)
