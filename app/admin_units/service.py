"""Look-ups of provinces and wards; other domains use these, never the table."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.admin_units.errors import WARD_NOT_FOUND
from app.admin_units.models import AdminUnit
from app.core.errors import AppError

WARD_LEVELS = ("ward", "commune")


async def get_ward(session: AsyncSession, code: str) -> AdminUnit:
    unit = await session.get(AdminUnit, code)
    if unit is None or unit.level not in WARD_LEVELS:
        raise AppError(WARD_NOT_FOUND, params={"code": code})
    return unit


async def find_unit(session: AsyncSession, code: str) -> AdminUnit | None:
    return await session.get(AdminUnit, code)


async def list_units(session: AsyncSession, parent_code: str | None = None) -> list[AdminUnit]:
    query = sa.select(AdminUnit).order_by(col(AdminUnit.level).desc(), col(AdminUnit.name))
    if parent_code is not None:
        query = query.where(col(AdminUnit.parent_code) == parent_code)
    return list((await session.execute(query)).scalars())


async def upsert(session: AsyncSession, unit: AdminUnit) -> AdminUnit:
    existing = await session.get(AdminUnit, unit.code)
    if existing is None:
        session.add(unit)
        await session.flush()
        return unit
    existing.name, existing.name_en = unit.name, unit.name_en
    existing.level, existing.parent_code = unit.level, unit.parent_code
    await session.flush()
    return existing
