"""From inbox rows to pushes: preferences, quiet hours, devices, the backend, retries.

Runs inside worker jobs. A job's writes (delivery rows, removed tokens, retry jobs) commit with
the job itself; a worker killed mid-batch commits nothing and the batch runs again, so a push is
delivered at least once (collapse keys make a repeat replace, not add, on the device).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter as Counter_
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from operator import attrgetter
from typing import Any

import orjson
import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.config import get_settings
from app.core.jobs import enqueue
from app.core.logging import get_logger
from app.core.tables import table_of
from app.notifications.backends import Outcome, build_messages, get_backend
from app.notifications.config import get_notification_settings
from app.notifications.ids import new_ids
from app.notifications.models import (
    Delivery,
    Device,
    NewNotification,
    Notification,
    NotificationPreference,
)
from app.notifications.templates import CATEGORIES

log = get_logger("notifications.delivery")

PUSH_JOB = "notifications.push"
RETRY_JOB = "notifications.retry"

PUSHES = Counter("push_deliveries_total", "Push deliveries by outcome", ["backend", "outcome"])

REMOVE_DEVICE = ("unregistered", "invalid")
STORED_STATUS = {
    "sent": "sent",
    "retry": "retrying",
    "unregistered": "unregistered",
    "invalid": "invalid",
    "failed": "failed",
}


# ---------------------------------------------------------------- quiet hours


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(pref: NotificationPreference, at: datetime) -> bool:
    if not pref.quiet_start or not pref.quiet_end:
        return False
    start, end = parse_hhmm(pref.quiet_start), parse_hhmm(pref.quiet_end)
    local = at.astimezone(clock.LOCAL_TZ).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end  # overnight, e.g. 22:00-06:30


def quiet_hours_end(pref: NotificationPreference, at: datetime) -> datetime:
    """The next moment the quiet hours end (local time), as UTC."""
    assert pref.quiet_end is not None
    end = parse_hhmm(pref.quiet_end)
    local = at.astimezone(clock.LOCAL_TZ)
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return clock.as_utc(candidate)


# ---------------------------------------------------------------- retries


def retry_delay(attempt: int, retry_after: float | None) -> timedelta:
    """Exponential back-off with jitter, never sooner than FCM's Retry-After."""
    settings = get_notification_settings()
    ceiling = min(
        settings.push_retry_max_seconds, settings.push_retry_base_seconds * 2 ** max(0, attempt - 1)
    )
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None:
        # Retry-After is a floor; jitter on top keeps every client from coming back at once.
        delay = max(delay, retry_after + random.uniform(0, max(0.1, retry_after * 0.1)))
    return timedelta(seconds=delay)


# ---------------------------------------------------------------- the push job


Preferences = dict[uuid.UUID, NotificationPreference]


# Users named by a list of ids, or by a query selecting their ids (an announcement's range of
# its audience: the database joins, instead of 1,000 bound parameters compiled and parsed).
Users = Iterable[uuid.UUID] | sa.Select[uuid.UUID]


def _user_filters(column: Any, users: Users) -> list[sa.ColumnElement[bool]]:
    if isinstance(users, sa.Select):
        return [column.in_(users.order_by(None))]
    ids = list(set(users))
    return [column.in_(ids[start : start + 1000]) for start in range(0, len(ids), 1000)]


async def load_preferences(session: AsyncSession, users: Users) -> Preferences:
    """The preferences of those of these users who set any (the others have the defaults)."""
    out: dict[uuid.UUID, NotificationPreference] = {}
    for where in _user_filters(NotificationPreference.user_id, users):
        rows = await session.execute(sa.select(NotificationPreference).where(where))
        out.update({p.user_id: p for p in rows.scalars()})
    return out


# A device as the push path reads it: (id, user_id, token, platform), no ORM object.
DeviceRow = sa.Row[uuid.UUID, uuid.UUID, str, str]


async def _devices(session: AsyncSession, users: Users) -> dict[uuid.UUID, list[DeviceRow]]:
    """Each user's devices as plain rows (id, user_id, token, platform): no ORM objects."""
    out: dict[uuid.UUID, list[DeviceRow]] = defaultdict(list)
    columns = (col(Device.id), col(Device.user_id), col(Device.token), col(Device.platform))
    for where in _user_filters(Device.user_id, users):
        for device in await session.execute(sa.select(*columns).where(where)):
            out[device.user_id].append(device)
    return out


async def push_notifications(session: AsyncSession, notification_ids: Sequence[uuid.UUID]) -> None:
    """Push these inbox rows to their recipients' devices (those not pushed yet)."""
    if not notification_ids:
        return
    notes: list[Notification] = []
    for start in range(0, len(notification_ids), 1000):
        rows = await session.execute(
            sa.select(Notification).where(
                col(Notification.id).in_(notification_ids[start : start + 1000]),
                col(Notification.push_state).in_(("pending", "held")),
            )
        )
        notes.extend(rows.scalars())
    await push_loaded(session, notes)


async def push_loaded(
    session: AsyncSession,
    notes: Sequence[Notification] | Sequence[NewNotification],
    *,
    new_rows: bool = False,
    preferences: Preferences | None = None,
    users: sa.Select[uuid.UUID] | None = None,
) -> None:
    """Decide, send, then write. Every network call comes before the first write of the job's
    transaction, so no database write lock (SQLite) is held while FCM answers. With `new_rows`
    the inbox rows themselves are written here too (announcement batches); `preferences`, when
    the caller already read them for these users, saves reading them again; `users`, a query
    of the recipients' ids, reads their devices with a join instead of a list of ids (devices
    of anyone else it selects are ignored)."""
    if not notes:
        return
    now = clock.now()
    prefs = (
        preferences
        if preferences is not None
        else await load_preferences(session, (n.user_id for n in notes))
    )
    for note in notes:
        pref = prefs.get(note.user_id)
        if pref and note.category in CATEGORIES and pref.categories.get(note.category) is False:
            note.push_state = "muted"
        elif pref and not note.urgent and in_quiet_hours(pref, now):
            note.push_state = "held"
        else:
            note.push_state = "sent"
    ready = [n for n in notes if n.push_state == "sent"]
    devices = await _devices(session, users if users is not None else (n.user_id for n in ready))
    empty: list[DeviceRow] = []
    pairs = [(note, device) for note in ready for device in devices.get(note.user_id, empty)]
    outcomes = await _send(pairs, now) if pairs else []
    # Writes from here on.
    if new_rows:
        await insert_notes(session, notes)
    # (Otherwise the loaded rows' new push_state is flushed with the job's commit.)
    held: dict[datetime, list[uuid.UUID]] = defaultdict(list)
    for note in notes:
        if note.push_state == "held":
            held[quiet_hours_end(prefs[note.user_id], now)].append(note.id)
    for release, ids in held.items():
        # Held back, not dropped: the same job again once the quiet hours are over.
        await enqueue(
            session, PUSH_JOB, {"notification_ids": [str(i) for i in ids]}, delay=release - now
        )
    if pairs:
        await _record_first_attempt(session, pairs, outcomes, now)


NOTE_TABLE: sa.Table = table_of(Notification)
DELIVERY_TABLE: sa.Table = table_of(Delivery)
NOTE_COLUMNS = [c.name for c in NOTE_TABLE.columns]
DELIVERY_COLUMNS = [
    "id", "notification_id", "device_id", "platform", "status", "attempts", "message_id",
    "error_code", "error_message", "created_at", "updated_at", "next_attempt_at",
]  # fmt: skip


def _copies(conn: Any) -> bool:
    return bool(conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg")


async def bulk_insert(
    session: AsyncSession, table: sa.Table, columns: list[str], records: list[tuple[Any, ...]]
) -> None:
    """Many rows in the session's transaction: COPY on PostgreSQL (asyncpg), a fraction of what
    INSERT costs on both sides; a Core executemany elsewhere. No ORM object per row. JSON
    columns: text on PostgreSQL (see `insert_notes`), Python values elsewhere."""
    if not records:
        return
    conn = await session.connection()
    if not _copies(conn):
        for start in range(0, len(records), 1000):
            chunk = [dict(zip(columns, r, strict=True)) for r in records[start : start + 1000]]
            await session.execute(sa.insert(table), chunk)
        return
    raw = await conn.get_raw_connection()
    if getattr(raw.dbapi_connection, "_transaction", True) is None:
        # SQLAlchemy's asyncpg adapter opens the transaction at the first statement: make sure
        # the COPY runs inside it, not in autocommit.
        await conn.exec_driver_sql("SELECT 1")
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table.name, records=records, columns=columns
    )


_DATA_AT = NOTE_COLUMNS.index("data")
_NOTE_HEAD = attrgetter(*NOTE_COLUMNS[:_DATA_AT])
_NOTE_TAIL = attrgetter(*NOTE_COLUMNS[_DATA_AT + 1 :])


async def insert_notes(
    session: AsyncSession, notes: Sequence[Notification] | Sequence[NewNotification]
) -> None:
    """Inbox rows in bulk, each row's tuple built in one step (the data map as JSON text for
    COPY on PostgreSQL)."""
    if not notes:
        return
    head, tail = _NOTE_HEAD, _NOTE_TAIL
    if _copies(await session.connection()):
        dumps = orjson.dumps
        records = [(*head(n), dumps(n.data).decode(), *tail(n)) for n in notes]
    else:
        records = [(*head(n), n.data, *tail(n)) for n in notes]
    await bulk_insert(session, NOTE_TABLE, NOTE_COLUMNS, records)


async def _send(pairs: Sequence[tuple[Any, Any]], now: datetime | None = None) -> list[Outcome]:
    backend = get_backend()
    outcomes = await backend.send(build_messages(pairs, at=now))
    for status, count in Counter_(o.status for o in outcomes).items():
        PUSHES.labels(backend.name, status).inc(count)
    return outcomes


async def _record_first_attempt(
    session: AsyncSession,
    pairs: Sequence[tuple[Any, Any]],
    outcomes: Sequence[Outcome],
    now: datetime,
) -> None:
    rows: list[tuple[Any, ...]] = []
    dead_devices: list[uuid.UUID] = []
    retry_ids: list[uuid.UUID] = []
    retry_after: list[float | None] = []
    delay = timedelta(0)
    for (note, device), outcome, row_id in zip(pairs, outcomes, new_ids(len(pairs)), strict=True):
        next_at = None
        if outcome.status == "retry":
            wait = retry_delay(1, outcome.retry_after)
            delay = max(delay, wait)
            next_at = now + wait
            retry_ids.append(row_id)
            retry_after.append(outcome.retry_after)
        if outcome.status in REMOVE_DEVICE:
            dead_devices.append(device.id)
        rows.append(
            (
                row_id,
                note.id,
                device.id,
                device.platform,
                STORED_STATUS[outcome.status],
                1,
                outcome.message_id,
                outcome.error_code,
                outcome.error_message,
                now,
                now,
                next_at,
            )
        )
    await bulk_insert(session, DELIVERY_TABLE, DELIVERY_COLUMNS, rows)
    await _remove_devices(session, dead_devices)
    if retry_ids:
        await _enqueue_retry(session, retry_ids, delay)


async def _remove_devices(session: AsyncSession, device_ids: Sequence[uuid.UUID]) -> None:
    if device_ids:
        await session.execute(sa.delete(Device).where(col(Device.id).in_(list(device_ids))))
        log.info("push_tokens_removed", count=len(device_ids))


async def _enqueue_retry(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID], delay: timedelta
) -> None:
    # One job for the batch, at the latest delay: QUOTA_EXCEEDED and UNAVAILABLE are about the
    # service, not one token, so coming back earlier for part of the batch would not help.
    await enqueue(
        session,
        RETRY_JOB,
        {"delivery_ids": [str(i) for i in delivery_ids]},
        delay=delay,
        max_attempts=get_settings().job_max_attempts,
    )


async def retry_deliveries(session: AsyncSession, delivery_ids: Sequence[uuid.UUID]) -> None:
    """Send again the deliveries still waiting for a retry."""
    settings = get_notification_settings()
    rows = (
        await session.execute(
            sa.select(Delivery, Notification, Device)
            .join(Notification, col(Notification.id) == col(Delivery.notification_id))
            .outerjoin(Device, col(Device.id) == col(Delivery.device_id))
            .where(col(Delivery.id).in_(list(delivery_ids)), col(Delivery.status) == "retrying")
        )
    ).all()
    now = clock.now()
    live: list[tuple[Delivery, Notification, Device]] = []
    for delivery, note, device in rows:
        if device is None or device.user_id != note.user_id:
            # Token removed (logout, UNREGISTERED) or moved to another account meanwhile.
            delivery.status, delivery.updated_at, delivery.next_attempt_at = "cancelled", now, None
        else:
            live.append((delivery, note, device))
    if not live:
        return
    outcomes = await _send([(note, device) for _, note, device in live])
    dead: list[uuid.UUID] = []
    again: list[uuid.UUID] = []
    delay = timedelta(0)
    for (delivery, _, device), outcome in zip(live, outcomes, strict=True):
        delivery.attempts += 1
        delivery.updated_at = now
        delivery.message_id = outcome.message_id or delivery.message_id
        delivery.error_code, delivery.error_message = outcome.error_code, outcome.error_message
        delivery.next_attempt_at = None
        status = STORED_STATUS[outcome.status]
        if outcome.status == "retry":
            if delivery.attempts >= settings.push_max_attempts:
                status = "failed"
            else:
                wait = retry_delay(delivery.attempts, outcome.retry_after)
                delay = max(delay, wait)
                delivery.next_attempt_at = now + wait
                again.append(delivery.id)
        if outcome.status in REMOVE_DEVICE:
            dead.append(device.id)
        delivery.status = status
    await session.flush()
    await _remove_devices(session, dead)
    if again:
        await _enqueue_retry(session, again, delay)
