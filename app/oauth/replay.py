"""Remember one-time values (DPoP proof and client assertion `jti`s) until they expire."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.tables import rows_matched
from app.oauth.models import UsedJti


async def first_use(db: AsyncSession, key: str, *, expires_at: datetime) -> bool:
    """True the first time `key` is seen (atomic: a unique insert in a savepoint)."""
    try:
        async with db.begin_nested():
            db.add(UsedJti(key=key[:100], expires_at=expires_at))
            await db.flush()
    except sa.exc.IntegrityError:
        return False
    return True


async def purge(db: AsyncSession) -> int:
    result = await db.execute(sa.delete(UsedJti).where(col(UsedJti.expires_at) < clock.now()))
    return rows_matched(result)
