"""The per-account storage quota and upload rate, one rule for every way a file comes in
(multipart `POST /api/v1/media`, tus `POST /api/v1/uploads/`).

The quota is a counter per account (`media_quota_usage`), reserved in one conditional upsert:
`used + n <= quota` is checked and the bytes added in the same statement, so concurrent uploads
(any process, any machine) cannot together pass the quota. On PostgreSQL the row stays locked
until the transaction ends, so a second upload of the same account waits for the first to
commit or roll back (a rolled-back upload gives its bytes back with it). Bytes are given back
when a file or an unfinished upload goes (`release`).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import ratelimit
from app.core.errors import AppError
from app.core.tables import table_of
from app.media import errors
from app.media.config import get_media_settings
from app.media.models import MediaQuotaUsage

_TABLE = table_of(MediaQuotaUsage)


def _exceeded(limit: int) -> AppError:
    return AppError(errors.QUOTA_EXCEEDED, params={"limit": limit}, extra={"limit": limit})


async def admit(session: AsyncSession, owner_id: uuid.UUID) -> None:
    """Count one upload attempt of the account (MEDIA_UPLOADS_PER_HOUR, every way in: a
    multipart file, a tus creation); 429 `request.rate_limited` past the limit."""
    await ratelimit.hit(
        session,
        f"media.upload:{owner_id}",
        limit=get_media_settings().media_uploads_per_hour,
        window_seconds=3600,
    )


async def reserve(session: AsyncSession, owner_id: uuid.UUID, size: int) -> None:
    """Add `size` bytes to the account's use, or refuse (413 `media.quota_exceeded`) when that
    would pass MEDIA_QUOTA_BYTES. Atomic: checked and counted in one statement."""
    limit = get_media_settings().media_quota_bytes
    if size > limit:
        raise _exceeded(limit)
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    row = insert(_TABLE).values(owner_id=owner_id, used_bytes=size)
    stmt = row.on_conflict_do_update(
        index_elements=[_TABLE.c.owner_id],
        set_={"used_bytes": _TABLE.c.used_bytes + size},
        where=_TABLE.c.used_bytes + size <= limit,
    ).returning(_TABLE.c.used_bytes)
    if (await session.execute(stmt)).first() is None:
        raise _exceeded(limit)


async def release(session: AsyncSession, owner_id: uuid.UUID | None, size: int) -> None:
    """Give back `size` bytes (a file or an unfinished upload went)."""
    if owner_id is None or size <= 0:
        return
    await session.execute(
        sa.update(_TABLE)
        .where(_TABLE.c.owner_id == owner_id)
        .values(
            used_bytes=sa.case((_TABLE.c.used_bytes > size, _TABLE.c.used_bytes - size), else_=0)
        )
    )


async def used(session: AsyncSession, owner_id: uuid.UUID) -> int:
    value = (
        await session.execute(sa.select(_TABLE.c.used_bytes).where(_TABLE.c.owner_id == owner_id))
    ).scalar_one_or_none()
    return int(value or 0)
