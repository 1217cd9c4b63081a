"""The acknowledgement of an alert: stored and its job enqueued in one short transaction, run on
the database driver's own connection (`app.core.db.driver_connection`), not through a session.

This is the hottest write of the service (a burst of alerts from every camera at once, each with
a 100 KB picture), and the ORM session's machinery cost several times the statements themselves
(measured in process on SQLite: 6.8 ms CPU per acknowledgement through the session, 1.5 ms with
the same statements on the driver connection; on SQLite each session statement was also several
thread hops of aiosqlite). So the statements are compiled once per dialect by SQLAlchemy and run
with each value through its column type's own bind processor (`app.core.db.Direct` does the
compiling), so that the rows are exactly what the ORM would write:

1. one read: an earlier answer to this `webhook-id` (a redelivery gets it back) and the camera;
2. one transaction: the alert (conflict-tolerant: a redelivery racing its first delivery, or the
   same event under a new `webhook-id`, inserts nothing and gets the first answer), its original
   picture, its processing job, and the camera's last-seen time when it is due. On SQLite the
   transaction holds the process's write lock (`app.core.writelock.writing`) from its first
   statement to its commit; on PostgreSQL it is one statement (data-modifying common table
   expressions: the later rows are written only if the alert was), so one round trip.

Measured in process, CPU per acknowledgement of an alert with a 104 KB picture, whole request
(`scripts/bench/camera.py --ack-cpu`-style, on a busy shared machine): SQLite 13.7 -> 4.6 ms,
PostgreSQL 14.1 -> 4.0 ms (GET /healthz: 0.3 ms).

The job row is the one `app.core.jobs.enqueue` makes (the Job model's defaults, whatever columns
the table grows), so the worker cannot tell the two apart.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app.cameras import errors
from app.cameras.dialect import insert_for
from app.cameras.models import DISABLED, OFFLINE, Camera, CameraAlert, CameraSnapshot
from app.cameras.schemas import CameraAlertIn
from app.cameras.service import PROCESS_JOB, SEEN_RESOLUTION, decode_snapshot
from app.cameras.webhooks import WebhookMeta
from app.core import clock, writelock
from app.core.config import get_settings
from app.core.db import Direct, driver_connection, get_engine, new_id
from app.core.errors import AppError
from app.core.jobs import Job

_first = (sa.select(CameraAlert.response)
          .where(CameraAlert.webhook_id == sa.bindparam("webhook_id"))
          .limit(1).scalar_subquery())
_one = sa.select(sa.literal(1).label("one")).subquery()
# One round trip for both look-ups: the first answer to this webhook-id (a redelivery) and the
# camera (left-joined: it may be unknown).
LOOKUP = Direct(
    sa.select(_first.label("first"), Camera.id, Camera.code, Camera.status, Camera.last_seen_at)
    .select_from(_one).outerjoin(Camera, Camera.code == sa.bindparam("code"))
)
# After a conflict: the answer of the alert that won (same webhook-id, or same camera and event).
FIRST_ANSWER = Direct(
    sa.select(CameraAlert.response).where(sa.or_(
        CameraAlert.webhook_id == sa.bindparam("webhook_id"),
        sa.and_(CameraAlert.camera_id == sa.bindparam("camera_id"),
                CameraAlert.event_id == sa.bindparam("event_id")),
    )).limit(1)
)
_seen_at = sa.bindparam("at", type_=Camera.__table__.c.last_seen_at.type)
SEEN = sa.update(Camera).where(
    Camera.id == sa.bindparam("camera_id"),
    sa.or_(Camera.status == OFFLINE, Camera.last_seen_at.is_(None),
           Camera.last_seen_at < sa.bindparam("stale_before",
                                              type_=Camera.__table__.c.last_seen_at.type)),
).values(
    last_seen_at=sa.case((Camera.last_seen_at > _seen_at, Camera.last_seen_at), else_=_seen_at),
    status=sa.case((Camera.status == OFFLINE, "active"), else_=Camera.status),
    offline_since=sa.case((Camera.status == OFFLINE, None), else_=Camera.offline_since),
)


class _Writes:
    """The intake's write statements, compiled for one dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect.name
        alert = insert_for(dialect.name, CameraAlert.__table__).on_conflict_do_nothing()
        self.alert = Direct(alert, writes=True).compiled_for(dialect)
        snapshot = sa.insert(CameraSnapshot.__table__)
        self.snapshot = Direct(snapshot, writes=True).compiled_for(dialect)
        self.job = Direct(sa.insert(Job.__table__), writes=True).compiled_for(dialect)
        self.seen = Direct(SEEN, writes=True).compiled_for(dialect)
        # The Job model's defaults for every column, as `enqueue` would write them.
        template = Job(kind=PROCESS_JOB, payload={})
        self.job_defaults = {c.name: getattr(template, c.name) for c in Job.__table__.columns}
        # PostgreSQL: the whole transaction as one statement, one round trip (data-modifying
        # common table expressions), by what it has to write.
        self.combined = {
            (snapshot, seen): Direct(_combined(snapshot, seen), writes=True).compiled_for(dialect)
            for snapshot in (False, True) for seen in (False, True)
        } if dialect.name == "postgresql" else {}


def _typed(table: sa.Table, prefix: str) -> dict[str, Any]:
    return {c.name: sa.bindparam(f"{prefix}{c.name}", type_=c.type) for c in table.columns}


def _combined(snapshot: bool, seen: bool) -> sa.Select[Any]:
    """INSERT the alert (nothing on a conflict); only when it was inserted, its original
    picture, its job and the camera's last-seen time; the number of alerts inserted (0 or 1).
    Parameters are the columns prefixed `alert_`, `snapshot_`, `job_` (and SEEN's)."""
    alerts = CameraAlert.__table__
    alert = (insert_for("postgresql", alerts).values(_typed(alerts, "alert_"))
             .on_conflict_do_nothing().returning(alerts.c.id).cte("alert"))
    ctes = []
    for table, prefix, wanted in ((CameraSnapshot.__table__, "snapshot_", snapshot),
                                  (Job.__table__, "job_", True)):
        if not wanted:
            continue
        values = _typed(table, prefix)
        if table is CameraSnapshot.__table__:
            values["alert_id"] = alert.c.id
        ctes.append(sa.insert(table).from_select(list(values), sa.select(*values.values())
                                                 .select_from(alert)).cte(f"{prefix}row"))
    if seen:
        ctes.append(SEEN.where(sa.exists(sa.select(alert.c.id))).cte("seen"))
    return sa.select(sa.func.count()).select_from(alert).add_cte(*ctes)


_writes: dict[str, _Writes] = {}


def _compiled() -> _Writes:
    dialect = get_engine().dialect
    found = _writes.get(dialect.name)
    if found is None:
        found = _writes[dialect.name] = _Writes(dialect)
    return found


def _args(compiled: Any, params: dict[str, Any]) -> list[Any]:
    return Direct.bind_args(compiled.binds, params)


async def accept_alert(meta: WebhookMeta, alert: CameraAlertIn, *,
                       source: str = "ioc") -> dict[str, Any]:
    """Store the alert and enqueue its processing; a redelivery gets the first answer back."""
    found = await LOOKUP.fetch_one({"webhook_id": meta.id, "code": alert.camera_id})
    assert found is not None  # a row of the one-row subquery, whatever the camera
    if found["first"] is not None:
        return dict(found["first"])
    if found["id"] is None:
        raise AppError(errors.CAMERA_UNKNOWN, params={"camera_id": alert.camera_id})
    if found["status"] == DISABLED:
        raise AppError(errors.CAMERA_DISABLED, params={"camera_id": alert.camera_id})
    snapshot = decode_snapshot(alert.snapshot) if alert.snapshot else None

    writes = _compiled()
    now = clock.now()
    alert_id = new_id()
    camera_id: uuid.UUID = found["id"]
    answer = {"alert_id": str(alert_id), "camera_id": found["code"],
              "event_id": alert.event_id, "status": "accepted", "received_at": now.isoformat()}
    statements = [(writes.alert, {
        "id": alert_id, "webhook_id": meta.id, "camera_id": camera_id,
        "event_id": alert.event_id, "source": source, "type": alert.type.value,
        "confidence": alert.confidence, "occurred_at": alert.occurred_at.astimezone(UTC),
        "received_at": now, "plate_text": alert.plate_text,
        "boxes": [b.model_dump() for b in alert.boxes], "status": "queued",
        "snapshot_status": "received" if snapshot else "none", "faces_blurred": 0,
        "plates_blurred": 0, "incident_id": None, "incident_joined": None,
        "evidence_media_id": None, "staff_notified": False, "citizens_warned": 0,
        "processed_at": None, "response": answer,
    })]
    if snapshot is not None:
        data, (width, height) = snapshot
        statements.append((writes.snapshot, {
            "alert_id": alert_id, "variant": "original", "content": data, "width": width,
            "height": height, "created_at": now}))
    statements.append((writes.job, {
        **writes.job_defaults, "id": new_id(), "payload": {"alert_id": str(alert_id)},
        "run_after": now, "created_at": now, "max_attempts": get_settings().job_max_attempts}))
    last_seen: datetime | None = found["last_seen_at"]
    if found["status"] == OFFLINE or last_seen is None or last_seen < now - SEEN_RESOLUTION:
        # Checks again in its WHERE, for races.
        statements.append((writes.seen, {"camera_id": camera_id, "at": now,
                                         "stale_before": now - SEEN_RESOLUTION}))
    if await _run(writes, statements):
        return answer
    first = await FIRST_ANSWER.fetch_one({"webhook_id": meta.id, "camera_id": camera_id,
                                          "event_id": alert.event_id})
    if first is None:  # pragma: no cover - the winner's row must be visible now
        raise RuntimeError("alert insert conflicted but no alert found")
    return dict(first["response"])


async def _run(writes: _Writes, statements: list[tuple[Any, dict[str, Any]]]) -> bool:
    """Run the statements in one transaction; False (and nothing written) when the first, the
    alert's conflict-tolerant insert, inserted nothing."""
    if writes.dialect == "postgresql":
        return await _run_combined(writes, statements)
    (alert_sql, alert_args), *rest = [(c.sql, _args(c, p)) for c, p in statements]
    async with writelock.writing(writes.dialect), driver_connection() as conn:
        # The sqlite3 module opens the transaction before the first INSERT.
        cursor = await conn.execute(alert_sql, alert_args)
        if cursor.rowcount != 1:
            await conn.rollback()
            return False
        for sql, args in rest:
            await conn.execute(sql, args)
        await conn.commit()
    return True


async def _run_combined(writes: _Writes, statements: list[tuple[Any, dict[str, Any]]]) -> bool:
    """PostgreSQL: the same writes as one statement (atomic by itself), one round trip."""
    params: dict[str, Any] = {}
    snapshot = seen = False
    for compiled, values in statements:
        if compiled is writes.seen:
            seen = True
            params.update(values)
            continue
        prefix = ("alert_" if compiled is writes.alert else "job_" if compiled is writes.job
                  else "snapshot_")
        snapshot = snapshot or compiled is writes.snapshot
        params.update({prefix + name: value for name, value in values.items()})
    combined = writes.combined[(snapshot, seen)]
    async with driver_connection() as conn:
        inserted = await conn.fetchval(combined.sql, *_args(combined, params))
    return inserted == 1
