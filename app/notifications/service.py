"""Notifications: devices, the inbox, preferences, and `notify` for the other domains.

Other domains call `notify(session, user_ids, kind, params)` in their own transaction: the inbox
rows and the push job commit with the change that caused them, or not at all. A device's token
goes when its sign-in ends and every token when all of them end: subscriptions to identity's hooks
at the end of this module.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock, personal_data
from app.core.db import new_id
from app.core.errors import AppError
from app.core.jobs import enqueue
from app.core.personal_data import Retained
from app.core.tables import rows_matched
from app.identity import service as identity
from app.notifications import errors, recipients, templates
from app.notifications.config import get_notification_settings
from app.notifications.delivery import PUSH_JOB, insert_notes
from app.notifications.ids import new_ids
from app.notifications.models import (
    Delivery,
    Device,
    NewNotification,
    Notification,
    NotificationPreference,
)
from app.tokens import service as tokens

# ---------------------------------------------------------------- devices


async def register_device(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    auth_session_id: uuid.UUID | None,
    token: str,
    platform: str,
    app_version: str | None,
    locale: str | None,
) -> Device:
    """Register a push token for this account; a token known under another account moves here.

    One statement (INSERT ... ON CONFLICT (token) DO UPDATE), so two apps registering the same
    token at once, or a phone changing hands, can never leave it on two accounts.
    """
    now = clock.now()
    values = {
        "user_id": user_id,
        "auth_session_id": auth_session_id,
        "platform": platform,
        "app_version": app_version,
        "locale": locale,
        "last_seen_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await _one_registration_at_a_time(session, user_id)
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Device).values(id=new_id(), token=token, created_at=now, **values)
    statement = statement.on_conflict_do_update(index_elements=[Device.token], set_=values)
    await session.execute(statement)
    await _evict_extra_devices(session, user_id)
    device = (
        await session.execute(
            sa.select(Device)
            .where(col(Device.token) == token)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return device


# pg_advisory_xact_lock(class, key) class of an account's device registrations.
_DEVICE_LOCK_CLASS = 0x7417_0102


async def _one_registration_at_a_time(session: AsyncSession, user_id: uuid.UUID) -> None:
    """An account's registrations one after the other, until each commits (PostgreSQL; SQLite
    runs one writer at a time anyway). The cap is a count: two registrations at once under READ
    COMMITTED would each count the account's devices without the other's and both keep theirs
    (40 at once left 19 of 10). The key is 32 bits of the account id: a rare collision only
    makes two accounts wait for each other."""
    key = int.from_bytes(user_id.bytes[-4:], "big", signed=True)
    await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_DEVICE_LOCK_CLASS, key)))


async def _evict_extra_devices(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Keep the most recently seen PUSH_MAX_DEVICES_PER_USER tokens of an account."""
    limit = get_notification_settings().push_max_devices_per_user
    stale = (
        (
            await session.execute(
                sa.select(col(Device.id))
                .where(col(Device.user_id) == user_id)
                .order_by(col(Device.last_seen_at).desc(), col(Device.id).desc())
                .offset(limit)
            )
        )
        .scalars()
        .all()
    )
    if stale:
        await session.execute(sa.delete(Device).where(col(Device.id).in_(stale)))


async def list_devices(session: AsyncSession, user_id: uuid.UUID) -> list[Device]:
    rows = await session.execute(
        sa.select(Device)
        .where(col(Device.user_id) == user_id)
        .order_by(col(Device.last_seen_at).desc())
    )
    return list(rows.scalars())


async def delete_device(session: AsyncSession, user_id: uuid.UUID, token: str) -> None:
    result = await session.execute(
        sa.delete(Device).where(col(Device.token) == token, col(Device.user_id) == user_id)
    )
    if rows_matched(result) == 0:
        raise AppError(errors.DEVICE_NOT_FOUND)


async def remove_devices_of_session(session: AsyncSession, auth_session_id: uuid.UUID) -> int:
    """Logout: the tokens registered under this sign-in stop receiving pushes."""
    result = await session.execute(
        sa.delete(Device).where(col(Device.auth_session_id) == auth_session_id)
    )
    return rows_matched(result) or 0


async def remove_user_devices(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Every session ended (password reset, account deletion): remove every token."""
    result = await session.execute(sa.delete(Device).where(col(Device.user_id) == user_id))
    return rows_matched(result) or 0


# Firebase expires the token of an app install that has not connected for 270 days; a token
# not re-registered for that long (apps re-register at every start) is dead either way.
INACTIVE_DEVICE_DAYS = 270


async def remove_signed_out_devices(session: AsyncSession, *, page: int = 1000) -> int:
    """Tokens whose sign-in ended without passing through logout: the session expired, or was
    revoked by something that does not tell us. The phone is signed out; pushes there would
    show a citizen's dossier or report to whoever holds it now. Keyset pages over the devices;
    tokens says which sessions are alive (its tables are its own)."""
    removed, after = 0, None
    while True:
        query = (
            sa.select(col(Device.id), col(Device.auth_session_id))
            .where(col(Device.auth_session_id).is_not(None))
            .order_by(col(Device.id))
            .limit(page)
        )
        if after is not None:
            query = query.where(Device.id > after)
        rows = (await session.execute(query)).all()
        if not rows:
            return removed
        after = rows[-1].id
        alive = await tokens.active_session_ids(session, {r.auth_session_id for r in rows})
        ended = [r.id for r in rows if r.auth_session_id not in alive]
        if ended:
            await session.execute(sa.delete(Device).where(col(Device.id).in_(ended)))
            removed += len(ended)


async def remove_inactive_devices(session: AsyncSession) -> int:
    """Tokens not registered again for INACTIVE_DEVICE_DAYS (FCM has expired them)."""
    cutoff = clock.now() - timedelta(days=INACTIVE_DEVICE_DAYS)
    result = await session.execute(sa.delete(Device).where(col(Device.last_seen_at) < cutoff))
    return rows_matched(result) or 0


# ---------------------------------------------------------------- notify (for other domains)


def _common_data(
    note_id: uuid.UUID,
    kind: str,
    template: templates.Template,
    deep_link: str,
    urgent: bool,
    extra: dict[str, str],
) -> dict[str, str]:
    return {
        "kind": kind,
        "notification_id": str(note_id),
        "category": template.category,
        "deep_link": deep_link,
        "urgent": "true" if urgent else "false",
        **{k: v for k, v in extra.items() if v != ""},
    }


async def build_notifications(
    session: AsyncSession,
    user_ids: Iterable[uuid.UUID],
    kind: str,
    params: dict[str, Any] | BaseModel,
    *,
    urgent: bool | None = None,
    dedupe_key: str | None = None,
    announcement_id: uuid.UUID | None = None,
    preferences: dict[uuid.UUID, NotificationPreference] | None = None,
    already: Collection[uuid.UUID] | None = None,
) -> list[NewNotification]:
    """One inbox row per recipient, rendered in the recipient's language (not yet written).
    `preferences`: the recipients' preference rows, when the caller has read them already;
    `already`: the recipients who have this notification already, when the caller knows them
    (else, with a `dedupe_key`, they are looked up)."""
    template = templates.get(kind)
    raw = params.model_dump() if isinstance(params, BaseModel) else params
    parsed = template.params.model_validate(raw)
    targets = list(dict.fromkeys(user_ids))
    if already is not None:
        targets = [u for u in targets if u not in already] if already else targets
    elif dedupe_key and targets:
        seen = set(
            (
                await session.execute(
                    sa.select(col(Notification.user_id)).where(
                        col(Notification.dedupe_key) == dedupe_key,
                        col(Notification.user_id).in_(targets),
                    )
                )
            ).scalars()
        )
        targets = [u for u in targets if u not in seen]
    if not targets:
        return []
    langs = await recipients.languages(session, targets, preferences)
    is_urgent = template.urgent if urgent is None else urgent
    deep_link = template.deep_link(parsed)
    collapse = template.collapse_key(parsed)
    extra = template.data(parsed)
    rendered = {lang: template.render(parsed, lang) for lang in ("vi", "en")}
    now = clock.now()
    # Everything but the id is the same for every recipient of a language: the data map is
    # copied from a template with only `notification_id` replaced.
    base_data = _common_data(uuid.UUID(int=0), kind, template, deep_link, is_urgent, extra)
    notes: list[NewNotification] = []
    for user_id, note_id in zip(targets, new_ids(len(targets)), strict=True):
        lang = langs.get(user_id)
        if lang is None:
            continue  # no such account (erased meanwhile): nobody to tell
        text = rendered[lang]
        data = base_data.copy()
        data["notification_id"] = str(note_id)
        notes.append(
            NewNotification(
                note_id,
                user_id,
                kind,
                template.category,
                is_urgent,
                lang,
                text.title,
                text.body,
                deep_link,
                data,
                collapse,
                template.ttl_seconds,
                announcement_id,
                dedupe_key,
                "pending",
                now,
            )
        )
    return notes


async def notify(
    session: AsyncSession,
    user_ids: Iterable[uuid.UUID],
    kind: str,
    params: dict[str, Any] | BaseModel,
    *,
    urgent: bool | None = None,
    dedupe_key: str | None = None,
) -> list[uuid.UUID]:
    """Tell these users about an event: inbox rows now, pushes by the worker after commit.

    `kind` is one of `templates.TEMPLATES` (e.g. "dossier.status_changed") and `params` its
    parameters. `dedupe_key` (e.g. the producer's event id) makes a repeated call a no-op.
    Returns the ids of the inbox rows written.
    """
    notes = await build_notifications(
        session, user_ids, kind, params, urgent=urgent, dedupe_key=dedupe_key
    )
    await insert_notes(session, notes)
    ids = [n.id for n in notes]
    await enqueue_push(session, ids)
    return ids


async def enqueue_push(session: AsyncSession, notification_ids: Sequence[uuid.UUID]) -> None:
    size = get_notification_settings().push_batch_size
    for start in range(0, len(notification_ids), size):
        chunk = notification_ids[start : start + size]
        await enqueue(session, PUSH_JOB, {"notification_ids": [str(i) for i in chunk]})


# ---------------------------------------------------------------- inbox


def encode_cursor(note_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(note_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise AppError(errors.INVALID_CURSOR) from None


async def inbox(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
    unread_only: bool,
) -> tuple[list[Notification], str | None, int]:
    """Newest first (UUIDv7 ids are time-ordered); keyset pagination on the id."""
    query = sa.select(Notification).where(col(Notification.user_id) == user_id)
    if unread_only:
        query = query.where(col(Notification.read_at).is_(None))
    if cursor:
        query = query.where(col(Notification.id) < decode_cursor(cursor))
    rows = list(
        (
            await session.execute(query.order_by(col(Notification.id).desc()).limit(limit + 1))
        ).scalars()
    )
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor, await unread_count(session, user_id)


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(Notification)
            .where(col(Notification.user_id) == user_id, col(Notification.read_at).is_(None))
        )
    ).scalar_one()


async def mark_read(session: AsyncSession, user_id: uuid.UUID, note_id: uuid.UUID) -> Notification:
    note = await session.get(Notification, note_id)
    if note is None or note.user_id != user_id:
        raise AppError(errors.NOTIFICATION_NOT_FOUND)
    if note.read_at is None:
        note.read_at = clock.now()
        await session.flush()
    return note


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        sa.update(Notification)
        .where(col(Notification.user_id) == user_id, col(Notification.read_at).is_(None))
        .values(read_at=clock.now())
    )
    return rows_matched(result) or 0


# ---------------------------------------------------------------- preferences


async def get_preferences(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    pref = await session.get(NotificationPreference, user_id)
    language = (
        pref.language if pref and pref.language else await recipients.user_locale(session, user_id)
    )
    stored = pref.categories if pref else {}
    quiet = None
    if pref and pref.quiet_start and pref.quiet_end:
        quiet = {"start": pref.quiet_start, "end": pref.quiet_end}
    return {
        "categories": {c: bool(stored.get(c, True)) for c in templates.CATEGORIES},
        "quiet_hours": quiet,
        "language": language,
    }


async def with_category_on(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], category: str
) -> list[uuid.UUID]:
    """Those of `user_ids` who have not turned `category` off (a category is on until turned
    off), in their order: one query per thousand, not two per person."""
    off: set[uuid.UUID] = set()
    for start in range(0, len(user_ids), 1000):
        rows = await session.execute(
            sa.select(
                col(NotificationPreference.user_id), col(NotificationPreference.categories)
            ).where(col(NotificationPreference.user_id).in_(user_ids[start : start + 1000]))
        )
        off.update(
            user_id for user_id, categories in rows if not (categories or {}).get(category, True)
        )
    return [user_id for user_id in user_ids if user_id not in off]


async def set_preferences(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    categories: dict[str, bool],
    quiet_hours: tuple[str, str] | None,
    language: str | None,
) -> dict[str, Any]:
    if quiet_hours is not None and quiet_hours[0] == quiet_hours[1]:
        raise AppError(errors.INVALID_QUIET_HOURS)
    pref = await session.get(NotificationPreference, user_id)
    if pref is None:
        pref = NotificationPreference(user_id=user_id)
        session.add(pref)
    pref.categories = {c: bool(categories.get(c, True)) for c in templates.CATEGORIES}
    pref.quiet_start, pref.quiet_end = quiet_hours if quiet_hours else (None, None)
    if language is not None:
        pref.language = language
    pref.updated_at = clock.now()
    await session.flush()
    return await get_preferences(session, user_id)


# ---------------------------------------------------------------- personal data


def _dump(row: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    return row.model_dump(mode="json", exclude=exclude or set())


async def export_notifications(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    notes = (
        await session.execute(
            sa.select(Notification)
            .where(col(Notification.user_id) == user_id)
            .order_by(col(Notification.id))
        )
    ).scalars()
    pref = await session.get(NotificationPreference, user_id)
    return {
        "devices": [_dump(d) for d in await list_devices(session, user_id)],
        "preferences": _dump(pref) if pref else None,
        "inbox": [_dump(n, {"dedupe_key"}) for n in notes],
    }


async def erase_notifications(session: AsyncSession, user_id: uuid.UUID) -> list[Retained]:
    await remove_user_devices(session, user_id)
    note_ids = sa.select(col(Notification.id)).where(col(Notification.user_id) == user_id)
    await session.execute(sa.delete(Delivery).where(col(Delivery.notification_id).in_(note_ids)))
    await session.execute(sa.delete(Notification).where(col(Notification.user_id) == user_id))
    await session.execute(
        sa.delete(NotificationPreference).where(col(NotificationPreference.user_id) == user_id)
    )
    return []


# Subscriptions (at import; the app imports this module at start through the router and tasks).
identity.on_session_ended(remove_devices_of_session)
identity.on_all_sessions_ended(remove_user_devices)
personal_data.register("notifications", exporter=export_notifications, eraser=erase_notifications)
