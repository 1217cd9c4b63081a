"""Who receives what: languages and audiences, read from the accounts table.

Read-only queries on `users`. They belong in `app.identity.service` (a domain uses another only
through its service); they live here, in one place, until identity offers them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.identity.models import User
from app.notifications.models import NotificationPreference

CITIZEN_ROLES = ("citizen", "community_helper")
WARD_STAFF_ROLES = ("ward_staff", "ward_admin")


def _lang(value: str | None) -> str:
    return "en" if (value or "").lower().startswith("en") else "vi"


async def languages(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The language each recipient reads: their preference, else their account's locale."""
    ids = list(user_ids)
    out: dict[uuid.UUID, str] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        rows = await session.execute(
            sa.select(User.id, User.locale, NotificationPreference.language)
            .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
            .where(User.id.in_(chunk))
        )
        for user_id, locale, preferred in rows:
            out[user_id] = _lang(preferred or locale)
    return out


async def user_locale(session: AsyncSession, user_id: uuid.UUID) -> str:
    locale = (await session.execute(sa.select(User.locale).where(User.id == user_id))).scalar()
    return _lang(locale)


def audience(scope: str, ward_code: str | None) -> sa.Select[tuple[uuid.UUID]]:
    """Active citizens of a ward (their home ward) or of the whole city."""
    query = sa.select(User.id).where(User.status == "active", User.role.in_(CITIZEN_ROLES))
    if scope == "ward":
        query = query.where(User.ward_code == ward_code)
    return query


async def ward_staff(session: AsyncSession, ward_code: str) -> list[uuid.UUID]:
    rows = await session.execute(
        sa.select(User.id).where(
            User.status == "active", User.role.in_(WARD_STAFF_ROLES), User.ward_code == ward_code
        )
    )
    return list(rows.scalars())


async def active_users(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    ids = list(user_ids)
    if not ids:
        return []
    rows = await session.execute(
        sa.select(User.id).where(User.id.in_(ids), User.status == "active")
    )
    found = set(rows.scalars())
    return [i for i in ids if i in found]
