"""The acknowledgement of an alert: stored, and its processing enqueued (`jobs.enqueue`), in the
request's transaction. Everything slow happens in the worker (`service.process_alert`).

One read (an earlier answer to this `webhook-id`, which a redelivery gets back, and the camera),
then the alert's conflict-tolerant insert: a redelivery racing its first delivery, or the same
event under a new `webhook-id`, inserts nothing and gets the first answer. Only an inserted alert
gets its original picture, its processing job and the camera's last-seen time (when due).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.cameras import errors, metrics, service
from app.cameras.dialect import insert
from app.cameras.models import DISABLED, OFFLINE, Camera, CameraAlert, CameraSnapshot
from app.cameras.schemas import CameraAlertIn
from app.cameras.webhooks import WebhookMeta
from app.core import clock, jobs
from app.core.db import after_commit, new_id
from app.core.errors import AppError
from app.core.tables import table_of

_first = (
    sa.select(col(CameraAlert.response))
    .where(col(CameraAlert.webhook_id) == sa.bindparam("webhook_id"))
    .limit(1)
    .scalar_subquery()
)
# One round trip for both look-ups: the first answer to this webhook-id (a redelivery) and the
# camera (left-joined: it may be unknown).
_LOOKUP = (
    sa.select(_first.label("first"), col(Camera.id), col(Camera.status), col(Camera.last_seen_at))
    .select_from(sa.select(sa.literal(1).label("one")).subquery())
    .outerjoin(Camera, col(Camera.code) == sa.bindparam("code"))
)
_ALERTS = table_of(CameraAlert)
_INSERT_SNAPSHOT = sa.insert(table_of(CameraSnapshot))
# After a conflict: the answer of the alert that won (same webhook-id, or same camera and event).
_FIRST_ANSWER = (
    sa.select(col(CameraAlert.response))
    .where(
        sa.or_(
            col(CameraAlert.webhook_id) == sa.bindparam("webhook_id"),
            sa.and_(
                col(CameraAlert.camera_id) == sa.bindparam("camera_id"),
                col(CameraAlert.event_id) == sa.bindparam("event_id"),
            ),
        )
    )
    .limit(1)
)


async def accept_alert(
    session: AsyncSession, meta: WebhookMeta, alert: CameraAlertIn, *, source: str = "ioc"
) -> dict[str, Any]:
    """Store the alert and enqueue its processing; a redelivery gets the first answer back."""
    answer, outcome = await _accept(session, meta, alert, source)
    after_commit(session, metrics.count_alert, source, alert.type.value, outcome)
    return answer


async def _accept(
    session: AsyncSession, meta: WebhookMeta, alert: CameraAlertIn, source: str
) -> tuple[dict[str, Any], str]:
    # Core on the request's connection: the ORM's execution machinery is not needed here.
    conn = await session.connection()
    found = (await conn.execute(_LOOKUP, {"webhook_id": meta.id, "code": alert.camera_id})).one()
    if found.first is not None:  # answered as the first time, even under a limit lowered since
        return dict(found.first), metrics.REDELIVERY
    if found.status is None:
        raise AppError(errors.CAMERA_UNKNOWN, params={"camera_id": alert.camera_id})
    if found.status == DISABLED:
        raise AppError(errors.CAMERA_DISABLED, params={"camera_id": alert.camera_id})
    snapshot = service.decode_snapshot(alert.snapshot) if alert.snapshot else None
    now, alert_id = clock.now(), new_id()
    answer = {
        "alert_id": str(alert_id),
        "camera_id": alert.camera_id,
        "event_id": alert.event_id,
        "status": "accepted",
        "received_at": now.isoformat(),
    }
    # The statements are the same each time and the values are parameters: compiled once.
    inserted = (
        await conn.execute(
            insert(session, _ALERTS).on_conflict_do_nothing().returning(_ALERTS.c.id),
            {
                "id": alert_id,
                "camera_id": found.id,
                "webhook_id": meta.id,
                "event_id": alert.event_id,
                "source": source,
                "type": alert.type.value,
                "confidence": alert.confidence,
                "occurred_at": alert.occurred_at.astimezone(UTC),
                "received_at": now,
                "plate_text": alert.plate_text,
                "boxes": [b.model_dump() for b in alert.boxes],
                "snapshot_status": "received" if snapshot else "none",
                "response": answer,
            },
        )
    ).first()
    if inserted is None:
        first = (
            await conn.execute(
                _FIRST_ANSWER,
                {
                    "webhook_id": meta.id,
                    "camera_id": found.id,
                    "event_id": alert.event_id,
                },
            )
        ).scalar_one()
        return dict(first), metrics.REDELIVERY
    if snapshot is not None:
        data, (width, height) = snapshot
        await conn.execute(
            _INSERT_SNAPSHOT,
            {
                "alert_id": alert_id,
                "variant": "original",
                "content": data,
                "width": width,
                "height": height,
                "created_at": now,
            },
        )
    await jobs.enqueue(session, service.PROCESS_JOB, {"alert_id": str(alert_id)})
    last_seen = found.last_seen_at
    if found.status == OFFLINE or last_seen is None or last_seen < now - service.SEEN_RESOLUTION:
        await service.mark_seen(session, found.id, now)  # checked again in its WHERE, for races
    return answer, metrics.ACCEPTED
