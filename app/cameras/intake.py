"""The acknowledgement of an alert: stored and its job enqueued in one short transaction, run on
the database driver's own connection (`app.core.db.driver_connection`), not through a session.

This is the hottest write of the service (a burst of alerts from every camera at once, each with
a 100 KB picture), and the ORM session's machinery cost several times the statements themselves
(measured in process on SQLite: 6.8 ms CPU per acknowledgement through the session, 1.5 ms with
the same statements on the driver connection; on SQLite each session statement was also several
thread hops of aiosqlite). So the statements are compiled once per dialect by SQLAlchemy and run
with each value through its column type's own bind processor (`app.core.db.Direct` does the
compiling), so that the rows are exactly what the ORM would write:

- SQLite: one read (an earlier answer to this `webhook-id`, which a redelivery gets back, and the
  camera), then one transaction holding the process's write lock (`app.core.writelock.writing`)
  from its first statement to its commit: the alert (conflict-tolerant: a redelivery racing its
  first delivery, or the same event under a new `webhook-id`, inserts nothing and gets the first
  answer), its original picture, its processing job, and the camera's last-seen time when due.
- PostgreSQL: all of it as one statement, one round trip (`_in_one`: data-modifying common table
  expressions; the alert is inserted only from a known, enabled camera, the later rows only if
  it was). When nothing was inserted, a second read tells a redelivery (its first answer) from a
  refused camera. Measured in process (`--ack-cpu`, three runs each way, alternated): 0.90, 1.39,
  1.19 ms of CPU per acknowledgement with the separate read, 0.84, 1.04, 0.80 ms without.

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

from app.cameras import errors, metrics
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
# SQLite: one round trip for both look-ups: the first answer to this webhook-id (a redelivery)
# and the camera (left-joined: it may be unknown).
LOOKUP = Direct(
    sa.select(_first.label("first"), Camera.id, Camera.status, Camera.last_seen_at)
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


def _seen(camera_id: Any) -> sa.Update:
    """The camera's last-seen time (and back from offline), when due: checked in its WHERE."""
    return sa.update(Camera).where(
        Camera.id == camera_id,
        sa.or_(Camera.status == OFFLINE, Camera.last_seen_at.is_(None),
               Camera.last_seen_at < sa.bindparam("stale_before",
                                                  type_=Camera.__table__.c.last_seen_at.type)),
    ).values(
        last_seen_at=sa.case((Camera.last_seen_at > _seen_at, Camera.last_seen_at),
                             else_=_seen_at),
        status=sa.case((Camera.status == OFFLINE, "active"), else_=Camera.status),
        offline_since=sa.case((Camera.status == OFFLINE, None), else_=Camera.offline_since),
    )


SEEN = _seen(sa.bindparam("camera_id"))


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
        # PostgreSQL: the look-up and the whole transaction as one statement, one round trip
        # (data-modifying common table expressions), with or without a picture.
        self.in_one = {snapshot: Direct(_in_one(snapshot), writes=True)
                       for snapshot in (False, True)} if dialect.name == "postgresql" else {}


def _typed(table: sa.Table, prefix: str) -> dict[str, Any]:
    return {c.name: sa.bindparam(f"{prefix}{c.name}", type_=c.type) for c in table.columns}


def _in_one(snapshot: bool) -> sa.Select[Any]:
    """PostgreSQL: find the camera by `code`; INSERT the alert unless the camera is unknown or
    disabled (nothing either on a conflict: a redelivery); only when it was inserted, its
    original picture, its job and the camera's last-seen time when due. Answers one row: the
    number of alerts inserted (0 or 1), and the camera's id and status (NULL: unknown).
    Parameters: `code`, the columns prefixed `alert_` (but camera_id), `snapshot_` (but
    alert_id), `job_`, and SEEN's `at` and `stale_before`."""
    alerts, cameras = CameraAlert.__table__, Camera.__table__
    cam = (sa.select(cameras.c.id, cameras.c.status)
           .where(cameras.c.code == sa.bindparam("code")).cte("cam"))
    values = {**_typed(alerts, "alert_"), "camera_id": cam.c.id}
    alert = (insert_for("postgresql", alerts)
             .from_select(list(values), sa.select(*values.values())
                          .where(cam.c.status != DISABLED))
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
    ctes.append(_seen(sa.select(cam.c.id).scalar_subquery())
                .where(sa.exists(sa.select(alert.c.id))).cte("seen"))
    inserted = sa.select(sa.func.count()).select_from(alert).scalar_subquery()
    return (sa.select(inserted.label("inserted"), cam.c.id.label("camera_id"), cam.c.status)
            .select_from(_one.outerjoin(cam, sa.true())).add_cte(*ctes))


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
    writes = _compiled()
    if writes.dialect == "postgresql":
        answer, outcome = await _accept_in_one(writes, meta, alert, source)
    else:
        answer, outcome = await _accept(writes, meta, alert, source)
    metrics.count_alert(source, alert.type.value, outcome)
    return answer


async def _accept(writes: _Writes, meta: WebhookMeta, alert: CameraAlertIn,
                  source: str) -> tuple[dict[str, Any], str]:
    """SQLite: a read, then one transaction (see the module docstring)."""
    found = await LOOKUP.fetch_one({"webhook_id": meta.id, "code": alert.camera_id})
    assert found is not None  # a row of the one-row subquery, whatever the camera
    if found["first"] is not None:
        return dict(found["first"]), metrics.REDELIVERY
    _refuse_camera(alert, found["status"])
    intake = _Intake(writes, meta, alert, source, decode_snapshot(alert.snapshot)
                     if alert.snapshot else None)
    statements = [(writes.alert, {**intake.alert, "camera_id": found["id"]})]
    if intake.snapshot is not None:
        statements.append((writes.snapshot, {**intake.snapshot, "alert_id": intake.alert_id}))
    statements.append((writes.job, intake.job))
    last_seen: datetime | None = found["last_seen_at"]
    if found["status"] == OFFLINE or last_seen is None or last_seen < intake.stale_before:
        # Checks again in its WHERE, for races.
        statements.append((writes.seen, {"camera_id": found["id"], "at": intake.now,
                                         "stale_before": intake.stale_before}))
    if await _run(writes, statements):
        return intake.answer, metrics.ACCEPTED
    if (first := await _first_answer(meta, found["id"], alert)) is None:  # pragma: no cover
        raise RuntimeError("alert insert conflicted but no alert found")
    return first, metrics.REDELIVERY


async def _accept_in_one(writes: _Writes, meta: WebhookMeta, alert: CameraAlertIn,
                         source: str) -> tuple[dict[str, Any], str]:
    """PostgreSQL: one statement (`_in_one`); the rarer outcomes (a redelivery, a refused
    camera) are told apart afterwards."""
    try:
        snapshot = decode_snapshot(alert.snapshot) if alert.snapshot else None
    except AppError:
        # A redelivery is answered as the first time, even under a limit lowered since.
        if (first := await _first_answer(meta, None, alert)) is not None:
            return first, metrics.REDELIVERY
        raise
    intake = _Intake(writes, meta, alert, source, snapshot)
    params: dict[str, Any] = {"code": alert.camera_id, "at": intake.now,
                              "stale_before": intake.stale_before}
    for prefix, values in (("alert_", intake.alert), ("snapshot_", intake.snapshot or {}),
                           ("job_", intake.job)):
        params.update({prefix + name: value for name, value in values.items()})
    found = await writes.in_one[snapshot is not None].fetch_one(params)
    assert found is not None  # a row of the one-row subquery, whatever the camera
    if found["inserted"] == 1:
        return intake.answer, metrics.ACCEPTED
    if (first := await _first_answer(meta, found["camera_id"], alert)) is not None:
        return first, metrics.REDELIVERY
    _refuse_camera(alert, found["status"])
    raise RuntimeError("alert insert conflicted but no alert found")  # pragma: no cover


def _refuse_camera(alert: CameraAlertIn, status: str | None) -> None:
    if status is None:
        raise AppError(errors.CAMERA_UNKNOWN, params={"camera_id": alert.camera_id})
    if status == DISABLED:
        raise AppError(errors.CAMERA_DISABLED, params={"camera_id": alert.camera_id})


class _Intake:
    """The rows of one accepted alert, and its answer (stored with it for redeliveries)."""

    def __init__(self, writes: _Writes, meta: WebhookMeta, alert: CameraAlertIn, source: str,
                 snapshot: tuple[bytes, tuple[int, int]] | None) -> None:
        self.now = now = clock.now()
        self.stale_before = now - SEEN_RESOLUTION
        self.alert_id = alert_id = new_id()
        self.answer = {"alert_id": str(alert_id), "camera_id": alert.camera_id,
                       "event_id": alert.event_id, "status": "accepted",
                       "received_at": now.isoformat()}
        self.alert = {  # camera_id: the caller's
            "id": alert_id, "webhook_id": meta.id, "event_id": alert.event_id,
            "source": source, "type": alert.type.value, "confidence": alert.confidence,
            "occurred_at": alert.occurred_at.astimezone(UTC), "received_at": now,
            "plate_text": alert.plate_text, "boxes": [b.model_dump() for b in alert.boxes],
            "status": "queued", "snapshot_status": "received" if snapshot else "none",
            "faces_blurred": 0, "plates_blurred": 0, "incident_id": None,
            "incident_joined": None, "evidence_media_id": None, "staff_notified": False,
            "citizens_warned": 0, "processed_at": None, "response": self.answer,
        }
        self.snapshot: dict[str, Any] | None = None  # alert_id: the caller's
        if snapshot is not None:
            data, (width, height) = snapshot
            self.snapshot = {"variant": "original", "content": data, "width": width,
                             "height": height, "created_at": now}
        self.job = {**writes.job_defaults, "id": new_id(), "payload": {"alert_id": str(alert_id)},
                    "run_after": now, "created_at": now,
                    "max_attempts": get_settings().job_max_attempts}


async def _first_answer(meta: WebhookMeta, camera_id: uuid.UUID | None,
                        alert: CameraAlertIn) -> dict[str, Any] | None:
    """The answer of the alert stored first under this webhook-id (or this camera's event)."""
    first = await FIRST_ANSWER.fetch_one({"webhook_id": meta.id, "camera_id": camera_id,
                                          "event_id": alert.event_id})
    return None if first is None else dict(first["response"])


async def _run(writes: _Writes, statements: list[tuple[Any, dict[str, Any]]]) -> bool:
    """SQLite: the statements in one transaction; False (and nothing written) when the first,
    the alert's conflict-tolerant insert, inserted nothing."""
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
