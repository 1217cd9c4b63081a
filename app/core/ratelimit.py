"""Fixed-window rate limits kept in the database, so every process and machine shares them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from app.core import clock, errors
from app.core.db import utc_field
from app.core.tables import rows_matched, table_of


class RateLimitCounter(SQLModel, table=True):
    __tablename__ = "rate_limit_counters"

    key: str = Field(primary_key=True, max_length=200)
    window_start: datetime = utc_field(default_now=True)
    count: int = 0


async def hit(session: AsyncSession, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one hit for `key`; raise 429 `request.rate_limited` past `limit` in the window.

    The counter is committed even when the request then fails (`commit=True`), otherwise failed
    attempts would not count.
    """
    now = clock.now()
    epoch = int(now.timestamp())
    window_start = datetime.fromtimestamp(epoch - epoch % window_seconds, tz=now.tzinfo)
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = table_of(RateLimitCounter)
    row = insert(table).values(key=key, window_start=window_start, count=1)
    stmt = row.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "count": sa.case((table.c.window_start == window_start, table.c.count + 1), else_=1),
            "window_start": window_start,
        },
    ).returning(table.c.count)
    count = (await session.execute(stmt)).scalar_one()
    if count > limit:
        retry_after = max(1, window_seconds - (epoch % window_seconds))
        raise errors.AppError(
            errors.RATE_LIMITED,
            params={"retry_after": retry_after},
            extra={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
            commit=True,
        )


async def purge_expired(session: AsyncSession, older_than_seconds: int = 86400) -> int:
    cutoff = datetime.fromtimestamp(clock.now().timestamp() - older_than_seconds, tz=clock.LOCAL_TZ)
    result = await session.execute(
        sa.delete(RateLimitCounter).where(col(RateLimitCounter.window_start) < cutoff)
    )
    return rows_matched(result) or 0
