"""Job handlers: pushes, retries, announcement fan-out, and the events of other domains.

Producers emit these jobs through the outbox in their own transaction (`app.core.jobs.enqueue`):

- `dossier.status_changed` — {"user_id", "dossier_id", "status", "dossier_code"?,
  "procedure_name"?, "procedure_name_en"?, "appointment_date"?, "event_id"?}
- `incident.status_changed` — {"user_ids": [...] (reporter and subscribers), "incident_id",
  "status", "incident_title"?, "event_id"?}
- `camera.alert` — {"incident_id", "alert_type", "ward_code", "camera_name"?, "staff_ids"?,
  "event_id"?}; without `staff_ids` every active ward_staff/ward_admin of the ward is told.
- `traffic.warning` — {"user_ids": [...], "incident_id", "alert_type", "place"?, "event_id"?}

`event_id` (the producer's id of the event) makes a repeated event a no-op per recipient.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.jobs import job_handler, periodic
from app.core.logging import get_logger
from app.notifications import announcements, delivery, recipients, service

log = get_logger("notifications.tasks")


def _uuids(values: Any) -> list[uuid.UUID]:
    return [uuid.UUID(str(v)) for v in values or []]


def _dedupe(kind: str, payload: dict[str, Any]) -> str | None:
    event_id = payload.get("event_id")
    return f"{kind}:{event_id}" if event_id else None


@job_handler(delivery.PUSH_JOB)
async def push(session: AsyncSession, payload: dict[str, Any]) -> None:
    await delivery.push_notifications(session, _uuids(payload["notification_ids"]))


@job_handler(delivery.RETRY_JOB)
async def retry(session: AsyncSession, payload: dict[str, Any]) -> None:
    await delivery.retry_deliveries(session, _uuids(payload["delivery_ids"]))


@job_handler(announcements.FANOUT_JOB)
async def announcement_fanout(session: AsyncSession, payload: dict[str, Any]) -> None:
    await announcements.fan_out(session, uuid.UUID(payload["announcement_id"]))


@job_handler(announcements.BATCH_JOB, claimed_alone=True)
async def announcement_batch(session: AsyncSession, payload: dict[str, Any]) -> None:
    after = payload.get("after")
    await announcements.send_batch(
        session,
        uuid.UUID(payload["announcement_id"]),
        uuid.UUID(after) if after else None,
        uuid.UUID(payload["upto"]),
    )


async def _event(
    session: AsyncSession, kind: str, user_ids: list[uuid.UUID], payload: dict[str, Any]
) -> None:
    targets = await recipients.active_users(session, user_ids)
    await service.notify(session, targets, kind, payload, dedupe_key=_dedupe(kind, payload))


@job_handler("dossier.status_changed")
async def dossier_status_changed(session: AsyncSession, payload: dict[str, Any]) -> None:
    user = payload.get("user_id") or payload.get("citizen_id")
    await _event(session, "dossier.status_changed", _uuids([user] if user else []), payload)


@job_handler("incident.status_changed")
async def incident_status_changed(session: AsyncSession, payload: dict[str, Any]) -> None:
    users = list(payload.get("user_ids") or payload.get("recipient_ids") or [])
    if payload.get("reporter_id"):
        users.append(payload["reporter_id"])
    await _event(session, "incident.status_changed", _uuids(users), payload)


@job_handler("camera.alert")
async def camera_alert(session: AsyncSession, payload: dict[str, Any]) -> None:
    staff = _uuids(payload.get("staff_ids"))
    if not staff and payload.get("ward_code"):
        staff = await recipients.ward_staff_on_duty(session, payload["ward_code"])
    await _event(session, "camera.alert", staff, payload)


@job_handler("traffic.warning")
async def traffic_warning(session: AsyncSession, payload: dict[str, Any]) -> None:
    await _event(session, "traffic.warning", _uuids(payload.get("user_ids")), payload)


@periodic("notifications.purge_devices", every=timedelta(hours=1))
async def purge_devices(session: AsyncSession, _payload: dict[str, Any]) -> None:
    """Push tokens of ended sign-ins and of installs FCM has expired (logout, password reset
    and account deletion remove theirs at once; this catches sessions that simply ran out)."""
    signed_out = await service.remove_signed_out_devices(session)
    inactive = await service.remove_inactive_devices(session)
    log.info("push_devices_purged", signed_out=signed_out, inactive=inactive)
