"""The one module of the cameras domain that reaches into other domains.

- incidents: `join_or_open_from_camera` (join an open incident of the same kind nearby, or open
  one marked as coming from a camera and awaiting staff verification);
- notifications: its event jobs through the outbox (`camera.alert` for the ward's on-duty staff,
  `traffic.warning` for citizens nearby, `camera.offline`), and its devices and preferences for
  the position a device reports.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.cameras import grid, imaging, notices
from app.cameras.dialect import insert
from app.cameras.models import Camera, CameraAlert, DevicePosition, WarningSent
from app.core import clock
from app.core.config import get_settings
from app.core.jobs import enqueue
from app.core.tables import rows_matched
from app.incidents import service as incidents
from app.media import service as media
from app.notifications import recipients
from app.notifications import service as notifications

# Alert types → incident categories (app.incidents.categories). Fire and smoke open (or join) a
# `fire` incident, so that a fire above its threshold warns citizens nearby like an accident.
# A crowd is no incident: it reaches the ward's staff as a `camera.event` notice, without an
# incident (and so without a citizen warning, whose deep link is an incident).
INCIDENT_CATEGORY = {
    "accident": "accident",
    "congestion": "traffic_jam",
    "flooding": "flooding",
    "wrong_way": "traffic_violation",
    "red_light": "traffic_violation",
    "fire": "fire",
    "smoke": "fire",
}
STAFF_ALERT = "camera.alert"  # a template of the notifications domain
CAMERA_OFFLINE_JOB = notices.KIND
CAMERA_EVENT_JOB = notices.EVENT_KIND
# A device position older than this is not "near" anything any more.
POSITION_FRESH_FOR = timedelta(hours=6)
TRAFFIC_ALERTS = "traffic_alerts"  # the citizens' notification category of warnings
# Citizens per warning job: a crowded place becomes several jobs, so that no job's payload or
# its statements' lists of ids grow with the crowd (PostgreSQL takes at most 32,767 parameters).
WARNING_BATCH = 1000


@dataclass(frozen=True)
class Evidence:
    """An alert's blurred pictures, and their files saved as a media item not yet recorded."""

    pictures: imaging.Processed
    saved: media.SavedEvidence


async def save_evidence(original: bytes, pictures: imaging.Processed) -> Evidence:
    """Write the files of the alert's evidence (before the job's transaction writes anything)."""
    saved = await media.save_system_evidence(
        original=original,
        width=pictures.width,
        height=pictures.height,
        versions=[
            # The names the incidents domain shows: w1280 to the public, w320 as thumbnail.
            media.Version("w1280", pictures.public_jpeg, *pictures.public_size),
            media.Version("w320", pictures.thumbnail_jpeg, *pictures.thumbnail_size),
        ],
        faces=pictures.faces,
        plates=pictures.plates,
    )
    return Evidence(pictures=pictures, saved=saved)


def within_service_area(lat: float, lon: float) -> bool:
    return incidents.within_service_area(lat, lon)


def opens_incident(alert: CameraAlert, camera: Camera) -> bool:
    """An incident of the alert's kind, where the incidents domain takes them. A camera outside
    the service area (registered before the area was narrowed) still reaches its ward's staff,
    as an event without an incident, rather than failing its job until it is dead."""
    return alert.type in INCIDENT_CATEGORY and within_service_area(camera.lat, camera.lon)


@dataclass(frozen=True)
class IncidentLink:
    incident_id: uuid.UUID
    joined: bool


async def join_or_open_incident(
    session: AsyncSession, *, alert: CameraAlert, camera: Camera, evidence: Evidence | None
) -> IncidentLink | None:
    """The alert's incident; its picture becomes the incident's evidence: a media item of the
    system (no owner account) whose public versions are the blurred ones, the original being
    for staff only (and withdrawn with the alert's original, see `withdraw_evidence`)."""
    if not opens_incident(alert, camera):
        return None
    category = INCIDENT_CATEGORY[alert.type]
    media_id = None
    if evidence is not None:
        media_id = (await media.record_system_evidence(session, evidence.saved)).id
        alert.evidence_media_id = media_id
    incident_id, joined = await incidents.join_or_open_from_camera(
        session,
        category=category,
        lat=camera.lat,
        lon=camera.lon,
        occurred_at=alert.occurred_at,
        confidence=alert.confidence,
        evidence_media_id=media_id,
        camera_id=camera.code,
    )
    return IncidentLink(incident_id=incident_id, joined=joined)


async def withdraw_evidence(session: AsyncSession, media_ids: list[uuid.UUID]) -> None:
    """The unblurred originals kept as incident evidence go when the alerts' originals go."""
    if media_ids:
        await media.withdraw_original(session, media_ids)


async def alert_ward_staff(
    session: AsyncSession, *, alert: CameraAlert, camera: Camera, incident_id: uuid.UUID
) -> None:
    """A push (and inbox entry) to the active staff of the camera's ward, written in the
    processing job's own transaction: a separate `camera.alert` job per alert cost the worker as
    much again as the alert's own database work (claim, lease, transaction). The event id keeps
    a retried job from telling anyone twice."""
    payload = {
        "incident_id": str(incident_id),
        "alert_type": alert.type,
        "ward_code": camera.ward_code,
        "camera_name": camera.name,
        "event_id": f"camera-alert:{alert.id}",
    }
    staff = await recipients.ward_staff_on_duty(session, camera.ward_code)
    await notifications.notify(
        session, staff, STAFF_ALERT, payload, dedupe_key=f"{STAFF_ALERT}:{payload['event_id']}"
    )


async def alert_ward_staff_without_incident(
    session: AsyncSession, *, alert: CameraAlert, camera: Camera
) -> None:
    await enqueue(
        session,
        CAMERA_EVENT_JOB,
        {
            "alert_id": str(alert.id),
            "alert_type": alert.type,
            "camera_code": camera.code,
            "camera_name": camera.name,
            "ward_code": camera.ward_code,
            "event_id": f"camera-event:{alert.id}",
        },
    )


async def tell_ward_camera_event(session: AsyncSession, payload: dict[str, Any]) -> None:
    staff = await recipients.ward_staff_on_duty(session, payload["ward_code"])
    await notifications.notify(
        session,
        staff,
        notices.EVENT_KIND,
        payload,
        dedupe_key=f"{notices.EVENT_KIND}:{payload['event_id']}",
    )


async def camera_offline(session: AsyncSession, *, camera: Camera) -> None:
    """Queue the notice; `tell_ward_camera_offline` sends it from the worker."""
    since = camera.offline_since.isoformat() if camera.offline_since else ""
    await enqueue(
        session,
        CAMERA_OFFLINE_JOB,
        {
            "camera_id": str(camera.id),
            "camera_code": camera.code,
            "camera_name": camera.name,
            "ward_code": camera.ward_code,
            "offline_since": since,
            "event_id": f"{camera.id}:{since}",
        },
    )


async def tell_ward_camera_offline(session: AsyncSession, payload: dict[str, Any]) -> None:
    """The camera's ward's staff on duty (all of them while nobody is): one inbox entry (and
    push) each, even if retried."""
    staff = await recipients.ward_staff_on_duty(session, payload["ward_code"])
    await notifications.notify(
        session, staff, notices.KIND, payload, dedupe_key=f"{notices.KIND}:{payload['event_id']}"
    )


def should_warn(alert: CameraAlert) -> bool:
    threshold = get_settings().camera_warning_thresholds.get(alert.type)
    return threshold is not None and alert.confidence >= threshold


def _interval_start() -> datetime:
    return clock.now() - timedelta(minutes=get_settings().camera_warning_interval_minutes)


async def _warned_lately(session: AsyncSession, cell: str) -> bool:
    """A read ahead of `_claim_place`, which alone decides (atomically)."""
    last = await session.scalar(
        sa.select(col(WarningSent.last_sent_at)).where(col(WarningSent.cell) == cell)
    )
    return last is not None and last >= _interval_start()


async def _claim_place(session: AsyncSession, cell: str, alert_id: uuid.UUID) -> bool:
    """Atomically take the right to warn this place now: true at most once per interval, even
    with several workers processing alerts of the same place at once."""
    now, cutoff = clock.now(), _interval_start()
    statement = insert(session, WarningSent).values(
        cell=cell, last_sent_at=now, last_alert_id=alert_id
    )
    statement = statement.on_conflict_do_update(
        index_elements=[WarningSent.cell],
        set_={"last_sent_at": now, "last_alert_id": alert_id},
        where=WarningSent.last_sent_at < cutoff,
    )
    return rows_matched(await session.execute(statement)) == 1


async def warn_nearby_citizens(
    session: AsyncSession, *, alert: CameraAlert, camera: Camera, incident_id: uuid.UUID
) -> int:
    """Warn citizens whose devices last reported a cell near the camera; returns how many."""
    if not should_warn(alert):
        return 0
    cell = grid.cell_of(camera.lat, camera.lon)
    if await _warned_lately(session, cell):
        return 0  # the usual case during a burst at one place: no look at who is near
    cells = grid.cells_around(cell, get_settings().camera_warning_cell_rings)
    fresh = clock.now() - POSITION_FRESH_FOR
    nearby = list(
        (
            await session.execute(
                sa.select(col(DevicePosition.user_id))
                .distinct()
                .where(
                    col(DevicePosition.cell).in_(cells), col(DevicePosition.reported_at) >= fresh
                )
                .order_by(col(DevicePosition.user_id))
            )
        ).scalars()
    )
    # Someone who turned traffic alerts off since reporting is not asked again.
    users = await notifications.with_category_on(session, nearby, TRAFFIC_ALERTS)
    if not users or not await _claim_place(session, cell, alert.id):
        return 0
    for start in range(0, len(users), WARNING_BATCH):
        await enqueue(
            session,
            "traffic.warning",
            {
                "user_ids": [str(u) for u in users[start : start + WARNING_BATCH]],
                "incident_id": str(incident_id),
                "alert_type": alert.type,
                "place": camera.name,
                "event_id": f"camera-warning:{alert.id}",
            },
        )
    return len(users)


async def device_belongs_to(session: AsyncSession, user_id: uuid.UUID, token: str) -> bool:
    return any(d.token == token for d in await notifications.list_devices(session, user_id))


async def traffic_alerts_on(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return bool(await notifications.with_category_on(session, [user_id], TRAFFIC_ALERTS))
