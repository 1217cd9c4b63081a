"""Ward and city announcements: preview, schedule, fan-out in batch jobs, delivery report.

Fan-out never runs as one giant job: the fan-out job only cuts the audience (ordered by account
id) into ranges of ANNOUNCEMENT_BATCH_SIZE citizens and enqueues one batch job per range; batch
jobs write their citizens' inbox rows and push to their devices, and any number of workers
share them (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.admin_units import service as admin_units
from app.core import audit, clock
from app.core.audit import AuditContext
from app.core.errors import AppError
from app.core.jobs import enqueue
from app.identity.roles import Role
from app.identity.service import Account
from app.notifications import errors, recipients, schemas, templates
from app.notifications.backends import build_message, encode
from app.notifications.config import get_notification_settings
from app.notifications.delivery import load_preferences, push_loaded
from app.notifications.models import Announcement, Delivery, Device, Notification
from app.notifications.service import build_notifications

FANOUT_JOB = "notifications.announcement.fanout"
BATCH_JOB = "notifications.announcement.batch"
KIND = "announcement"


def _params(ann: Announcement) -> templates.AnnouncementParams:
    return templates.AnnouncementParams(
        announcement_id=str(ann.id),
        title_vi=ann.title_vi,
        body_vi=ann.body_vi,
        title_en=ann.title_en,
        body_en=ann.body_en,
    )


async def _target(
    session: AsyncSession, staff: Account, body: schemas.AnnouncementIn
) -> str | None:
    """The ward an author may address (None for the city); raises when out of their scope."""
    if staff.role == Role.CITY_ADMIN:
        if body.scope == "city":
            return None
        if not body.ward_code:
            raise AppError(errors.ANNOUNCEMENT_WARD_REQUIRED)
        return (await admin_units.get_ward(session, body.ward_code)).code
    if body.scope == "city" or (body.ward_code and body.ward_code != staff.ward_code):
        raise AppError(errors.ANNOUNCEMENT_SCOPE_FORBIDDEN)
    if not staff.ward_code:
        raise AppError(errors.ANNOUNCEMENT_SCOPE_FORBIDDEN)
    return staff.ward_code


def _draft(staff: Account, body: schemas.AnnouncementIn, ward_code: str | None) -> Announcement:
    return Announcement(
        author_id=staff.id,
        scope="ward" if ward_code else "city",
        ward_code=ward_code,
        title_vi=body.title_vi,
        body_vi=body.body_vi,
        title_en=body.title_en,
        body_en=body.body_en,
        urgent=body.urgent,
        scheduled_at=clock.as_utc(body.scheduled_at) if body.scheduled_at else clock.now(),
    )


async def preview(
    session: AsyncSession, staff: Account, body: schemas.AnnouncementIn
) -> dict[str, Any]:
    ward_code = await _target(session, staff, body)
    ann = _draft(staff, body, ward_code)
    ann.id = uuid.UUID(int=0)
    params = _params(ann)
    template = templates.get(KIND)
    audience = recipients.audience(ann.scope, ward_code).subquery()
    count = (await session.execute(sa.select(sa.func.count()).select_from(audience))).scalar_one()
    devices = (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(Device)
            .where(col(Device.user_id).in_(sa.select(audience.c.id)))
        )
    ).scalar_one()
    sample = Notification(
        id=uuid.UUID(int=0),
        user_id=uuid.UUID(int=0),
        kind=KIND,
        category=template.category,
        urgent=ann.urgent,
        title=body.title_vi,
        body=body.body_vi,
        deep_link=template.deep_link(params),
        collapse_key=template.collapse_key(params),
        ttl_seconds=template.ttl_seconds,
        data={
            "kind": KIND,
            "notification_id": str(uuid.UUID(int=0)),
            "category": template.category,
            "deep_link": template.deep_link(params),
            "urgent": "true" if ann.urgent else "false",
            **template.data(params),
        },
    )
    device = Device(token="<device-token>", user_id=uuid.UUID(int=0), platform="android")  # noqa: S106
    return {
        "vi": template.render(params, "vi").__dict__,
        "en": template.render(params, "en").__dict__,
        "recipients": count,
        "devices": devices,
        "push_example": encode(build_message(sample, device)),
    }


async def create(
    session: AsyncSession, staff: Account, body: schemas.AnnouncementIn, ctx: AuditContext
) -> Announcement:
    ward_code = await _target(session, staff, body)
    ann = _draft(staff, body, ward_code)
    now = clock.now()
    if ann.scheduled_at < now - timedelta(minutes=1):
        raise AppError(errors.ANNOUNCEMENT_SCHEDULE_IN_PAST)
    session.add(ann)
    await session.flush()
    await enqueue(
        session,
        FANOUT_JOB,
        {"announcement_id": str(ann.id)},
        delay=max(timedelta(0), ann.scheduled_at - now),
        dedupe_key=f"{FANOUT_JOB}:{ann.id}",
    )
    await audit.record(
        session,
        ctx,
        "notifications.announcement_created",
        resource=f"announcement:{ann.id}",
        details={"scope": ann.scope, "ward_code": ward_code},
    )
    return ann


def _visible(staff: Account) -> sa.ColumnElement[bool]:
    if staff.role == Role.CITY_ADMIN:
        return sa.true()
    return col(Announcement.ward_code) == staff.ward_code


async def get_for_staff(session: AsyncSession, staff: Account, ann_id: uuid.UUID) -> Announcement:
    ann = (
        await session.execute(
            sa.select(Announcement).where(col(Announcement.id) == ann_id, _visible(staff))
        )
    ).scalar_one_or_none()
    if ann is None:
        raise AppError(errors.ANNOUNCEMENT_NOT_FOUND)  # another ward's: no existence leak
    return ann


async def list_for_staff(session: AsyncSession, staff: Account, limit: int) -> list[Announcement]:
    rows = await session.execute(
        sa.select(Announcement)
        .where(_visible(staff))
        .order_by(col(Announcement.created_at).desc())
        .limit(limit)
    )
    return list(rows.scalars())


async def cancel(
    session: AsyncSession, staff: Account, ann_id: uuid.UUID, ctx: AuditContext
) -> Announcement:
    ann = await get_for_staff(session, staff, ann_id)
    if ann.status != "scheduled":
        raise AppError(errors.ANNOUNCEMENT_NOT_CANCELLABLE)
    ann.status = "cancelled"
    await session.flush()
    await audit.record(
        session, ctx, "notifications.announcement_cancelled", resource=f"announcement:{ann.id}"
    )
    return ann


async def reports(
    session: AsyncSession, ann_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Delivery reports of several announcements in two queries, whatever their number."""
    ids = list(ann_ids)
    if not ids:
        return {}
    held_or_muted = sa.case((col(Notification.push_state).in_(("held", "muted")), 1), else_=0)
    notes = await session.execute(
        sa.select(
            col(Notification.announcement_id),
            sa.func.count(),
            sa.func.count(col(Notification.read_at)),
            sa.func.sum(held_or_muted),
        )
        .where(col(Notification.announcement_id).in_(ids))
        .group_by(col(Notification.announcement_id))
    )
    by_note = {ann_id: (total, opened, held) for ann_id, total, opened, held in notes}
    rows = await session.execute(
        sa.select(col(Notification.announcement_id), col(Delivery.status), sa.func.count())
        .join(Notification, col(Notification.id) == col(Delivery.notification_id))
        .where(col(Notification.announcement_id).in_(ids))
        .group_by(col(Notification.announcement_id), col(Delivery.status))
    )
    by_status: dict[uuid.UUID | None, dict[str, int]] = {ann_id: {} for ann_id in ids}
    for ann_id, status, count in rows:
        by_status[ann_id][status] = count
    out: dict[uuid.UUID, dict[str, int]] = {}
    for ann_id in ids:
        total, opened, held = by_note.get(ann_id, (0, 0, 0))
        statuses = by_status[ann_id]
        out[ann_id] = {
            "recipients": total,
            "opened": opened,
            "held_or_muted": int(held or 0),
            "devices_targeted": sum(statuses.values()),
            "delivered": statuses.get("sent", 0),
            "pending": statuses.get("retrying", 0),
            "failed": sum(v for k, v in statuses.items() if k not in ("sent", "retrying")),
        }
    return out


async def report(session: AsyncSession, ann_id: uuid.UUID) -> dict[str, int]:
    return (await reports(session, [ann_id]))[ann_id]


async def view(session: AsyncSession, ann: Announcement) -> dict[str, Any]:
    return (await views(session, [ann]))[0]


async def views(session: AsyncSession, anns: Sequence[Announcement]) -> list[dict[str, Any]]:
    """Announcements with their delivery reports: two queries for the reports of a whole page."""
    by_id = await reports(session, [a.id for a in anns])
    return [{**ann.model_dump(), "report": by_id[ann.id]} for ann in anns]


# ---------------------------------------------------------------- worker side


async def fan_out(session: AsyncSession, ann_id: uuid.UUID) -> None:
    ann = await session.get(Announcement, ann_id, with_for_update=True)
    if ann is None or ann.status != "scheduled":
        return  # cancelled, or already fanned out
    size = get_notification_settings().announcement_batch_size
    # The ranges' upper bounds in one statement: every size-th citizen in id order, and the
    # last (the database numbers the audience; no page of ids comes over the wire).
    audience = recipients.audience(ann.scope, ann.ward_code).order_by(None).subquery()
    numbered = sa.select(
        audience.c.id,
        sa.func.row_number().over(order_by=audience.c.id).label("n"),
        sa.func.count().over().label("total"),
    ).subquery()
    bounds = (
        await session.execute(
            sa.select(numbered.c.id, numbered.c.total)
            .where(sa.or_(numbered.c.n % size == 0, numbered.c.n == numbered.c.total))
            .order_by(numbered.c.n)
        )
    ).all()
    total = bounds[0].total if bounds else 0
    uptos = [row.id for row in bounds]
    # Each range starts after the previous one's bound (the first from the beginning); an
    # empty audience has no range at all.
    starts: list[uuid.UUID | None] = [None, *uptos][: len(uptos)]
    ranges = list(zip(starts, uptos, strict=True))
    for start, upto in ranges:
        await enqueue(
            session,
            BATCH_JOB,
            {
                "announcement_id": str(ann.id),
                "after": str(start) if start else None,
                "upto": str(upto),
            },
        )
    ann.status = "sending" if ranges else "sent"
    ann.started_at = clock.now()
    ann.recipients = total
    ann.batches_total = len(ranges)
    await session.flush()


async def send_batch(
    session: AsyncSession, ann_id: uuid.UUID, after: uuid.UUID | None, upto: uuid.UUID
) -> None:
    ann = await session.get(Announcement, ann_id)
    if ann is None:
        return
    query = recipients.audience(ann.scope, ann.ward_code, after=after, upto=upto)
    user_ids = list((await session.execute(query)).scalars())
    if user_ids:
        # Read once for both the language of each inbox row and quiet hours / muted categories;
        # preferences and devices are joined to the range's query, not sent 1,000 ids.
        prefs = await load_preferences(session, query)
        notes = await build_notifications(
            session,
            user_ids,
            KIND,
            _params(ann),
            urgent=ann.urgent,
            announcement_id=ann.id,
            preferences=prefs,
            already=await _told(session, ann.id, after, upto),
        )
        await push_loaded(session, notes, new_rows=True, preferences=prefs, users=query)
    # Atomic increment: batches finish on several workers at once; the last one marks it sent.
    done = Announcement.batches_done + 1
    await session.execute(
        sa.update(Announcement)
        .where(col(Announcement.id) == ann.id)
        .values(
            batches_done=done,
            status=sa.case(
                (done >= col(Announcement.batches_total), "sent"), else_=col(Announcement.status)
            ),
        )
    )


async def _told(
    session: AsyncSession, ann_id: uuid.UUID, after: uuid.UUID | None, upto: uuid.UUID
) -> set[uuid.UUID]:
    """Recipients in this range who have the announcement already (a batch run again after
    another run of it committed): a range scan of one index, usually empty."""
    query = sa.select(col(Notification.user_id)).where(
        col(Notification.announcement_id) == ann_id, col(Notification.user_id) <= upto
    )
    if after is not None:
        query = query.where(col(Notification.user_id) > after)
    return set((await session.execute(query)).scalars())
