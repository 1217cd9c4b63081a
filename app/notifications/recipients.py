"""Who receives what: languages and audiences, asked of the identity domain's service."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.identity import duty
from app.identity import service as identity
from app.notifications.models import NotificationPreference


def _lang(value: str | None) -> str:
    return "en" if (value or "").lower().startswith("en") else "vi"


async def languages(
    session: AsyncSession,
    user_ids: Iterable[uuid.UUID],
    preferences: dict[uuid.UUID, NotificationPreference] | None = None,
) -> dict[uuid.UUID, str]:
    """The language each recipient reads: their preference, else their account's locale.
    `preferences`: these users' preference rows when the caller has them already."""
    ids = list(user_ids)
    preferred: dict[uuid.UUID, str | None] = {}
    if preferences is not None:
        preferred = {user_id: pref.language for user_id, pref in preferences.items()}
    for start in range(0, len(ids) if preferences is None else 0, 1000):
        rows = await session.execute(
            sa.select(
                col(NotificationPreference.user_id), col(NotificationPreference.language)
            ).where(col(NotificationPreference.user_id).in_(ids[start : start + 1000]))
        )
        preferred.update({user_id: language for user_id, language in rows})
    account_locales = await identity.locales(session, ids)
    return {
        user_id: _lang(preferred.get(user_id) or locale)
        for user_id, locale in account_locales.items()
    }


async def user_locale(session: AsyncSession, user_id: uuid.UUID) -> str:
    return _lang((await identity.locales(session, [user_id])).get(user_id))


def audience(
    scope: str, ward_code: str | None, **page: uuid.UUID | int | None
) -> sa.Select[uuid.UUID]:
    """Active citizens of a ward (their home ward) or of the whole city, in id order."""
    return identity.citizen_ids(ward_code if scope == "ward" else None, **page)  # type: ignore[arg-type]


async def ward_staff_on_duty(session: AsyncSession, ward_code: str) -> list[uuid.UUID]:
    """For a ward's urgent notices: its staff on duty, or all its staff while nobody is."""
    return await duty.recipients(session, ward_code)


async def active_users(session: AsyncSession, user_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    return await identity.active_user_ids(session, list(user_ids))
