"""Camera registry and alert processing: the rules. Services flush, never commit.

The intake of alerts (the acknowledgement, on the request path) is `app.cameras.intake`.
Everything slow happens in the worker (`process_alert`).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

import pybase64
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.admin_units import service as admin_units
from app.cameras import errors, imaging, integrations, metrics
from app.cameras.dialect import insert
from app.cameras.models import (
    ACTIVE,
    DISABLED,
    OFFLINE,
    Camera,
    CameraAlert,
    CameraSnapshot,
)
from app.cameras.schemas import CameraCreate, CameraUpdate
from app.core import clock, jobs
from app.core.config import get_settings
from app.core.db import after_commit
from app.core.errors import AppError
from app.core.logging import get_logger
from app.core.tables import rows_matched

log = get_logger("cameras")

PROCESS_JOB = "camera.process_alert"
OFFLINE_CHECK_JOB = "camera.offline_check"


# ---------------------------------------------------------------- registry


def _check_location(lat: float, lon: float) -> None:
    """Its alerts become incidents for the city's staff: it must stand where they serve."""
    if not integrations.within_service_area(lat, lon):
        raise AppError(errors.CAMERA_OUTSIDE_SERVICE_AREA, extra={"lat": lat, "lon": lon})


async def create_camera(session: AsyncSession, data: CameraCreate) -> Camera:
    await admin_units.get_ward(session, data.ward_code)
    _check_location(data.lat, data.lon)
    if await camera_by_code(session, data.code) is not None:
        raise AppError(errors.CAMERA_CODE_TAKEN, params={"code": data.code})
    camera = Camera(**data.model_dump())
    session.add(camera)
    await session.flush()
    await schedule_offline_check(session)
    return camera


async def camera_by_code(session: AsyncSession, code: str) -> Camera | None:
    query = sa.select(Camera).where(col(Camera.code) == code)
    return (await session.execute(query)).scalar_one_or_none()


async def get_camera(session: AsyncSession, camera_id: uuid.UUID) -> Camera:
    camera = await session.get(Camera, camera_id)
    if camera is None:
        raise AppError(errors.CAMERA_NOT_FOUND)
    return camera


async def list_cameras(
    session: AsyncSession, *, ward_code: str | None = None, status: str | None = None
) -> list[Camera]:
    query = sa.select(Camera).order_by(Camera.code)
    if ward_code is not None:
        query = query.where(col(Camera.ward_code) == ward_code)
    if status is not None:
        query = query.where(col(Camera.status) == status)
    return list((await session.execute(query)).scalars())


async def update_camera(session: AsyncSession, camera_id: uuid.UUID, data: CameraUpdate) -> Camera:
    camera = await get_camera(session, camera_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("ward_code"):
        await admin_units.get_ward(session, changes["ward_code"])
    for field in ("name", "lat", "lon", "ward_code"):
        if field in changes and changes[field] is None:
            del changes[field]  # required fields cannot be cleared
    if "status" in changes:
        status = changes.pop("status")
        if status == DISABLED:
            camera.status, camera.offline_since = DISABLED, None
        elif status == ACTIVE and camera.status == DISABLED:
            # Re-enabled: silent until it speaks again, so not flagged offline at once.
            camera.status, camera.last_seen_at = ACTIVE, clock.now()
    if "lat" in changes or "lon" in changes:
        _check_location(changes.get("lat", camera.lat), changes.get("lon", camera.lon))
    for field, value in changes.items():
        setattr(camera, field, value)
    camera.updated_at = clock.now()
    await session.flush()
    return camera


# ---------------------------------------------------------------- intake


def _base64(text: str) -> bytes:
    """Decode the standard or the URL-safe alphabet (not both at once), padding optional.

    pybase64 (SIMD), on the hottest request of the service: 6 us for the benchmark's 104 KB
    picture, where pydantic-core took 71 us (and the standard library about 300 us). Like the
    standard library it accepts non-zero bits after the last full byte; anything else outside
    the alphabet is refused."""
    padded = text + "=" * (-len(text) % 4)
    try:
        return pybase64.b64decode(padded, validate=True)
    except ValueError:  # binascii.Error and a non-ASCII text are ValueErrors
        if "+" in text or "/" in text:
            raise
        return pybase64.b64decode(padded, altchars=b"-_", validate=True)


def decode_snapshot(text: str) -> tuple[bytes, tuple[int, int]]:
    """Base64 → JPEG bytes, checked for size and structure (cheap: no pixel decoding)."""
    settings = get_settings()
    limit = settings.camera_snapshot_max_bytes
    if len(text) > (limit + 2) // 3 * 4 + 4:
        raise AppError(
            errors.SNAPSHOT_TOO_LARGE,
            params={"limit": limit, "max_pixels": settings.camera_snapshot_max_pixels},
        )
    try:
        data = _base64(text)
    except ValueError:
        raise AppError(errors.SNAPSHOT_INVALID, params={"reason": "not base64"}) from None
    if len(data) > limit:
        raise AppError(
            errors.SNAPSHOT_TOO_LARGE,
            params={"limit": limit, "max_pixels": settings.camera_snapshot_max_pixels},
        )
    try:
        size = imaging.inspect_jpeg(data)
    except imaging.SnapshotError as exc:
        raise AppError(
            errors.SNAPSHOT_INVALID, params={"reason": exc.reason}, extra={"reason": exc.reason}
        ) from None
    if size[0] * size[1] > settings.camera_snapshot_max_pixels:
        raise AppError(
            errors.SNAPSHOT_TOO_LARGE,
            params={"limit": limit, "max_pixels": settings.camera_snapshot_max_pixels},
        )
    return data, size


async def heartbeat(session: AsyncSession, code: str) -> Camera:
    camera = await camera_by_code(session, code)
    if camera is None:
        raise AppError(errors.CAMERA_UNKNOWN, params={"camera_id": code})
    if camera.status != DISABLED:
        await mark_seen(session, camera.id, clock.now())
        await session.refresh(camera)
    return camera


# Last-seen is written at most this often per camera: a busy camera's alerts must not queue
# behind each other's lock on its row.
SEEN_RESOLUTION = timedelta(seconds=5)


async def mark_seen(session: AsyncSession, camera_id: uuid.UUID, at: datetime) -> None:
    """The camera spoke: remember when, and bring it back from offline."""
    await session.execute(
        sa.update(Camera)
        .where(
            col(Camera.id) == camera_id,
            sa.or_(
                col(Camera.status) == OFFLINE,
                col(Camera.last_seen_at).is_(None),
                col(Camera.last_seen_at) < at - SEEN_RESOLUTION,
            ),
        )
        .values(
            last_seen_at=sa.case(
                (col(Camera.last_seen_at) > at, col(Camera.last_seen_at)), else_=at
            ),
            status=sa.case((col(Camera.status) == OFFLINE, ACTIVE), else_=col(Camera.status)),
            offline_since=sa.case(
                (col(Camera.status) == OFFLINE, None), else_=col(Camera.offline_since)
            ),
        )
    )


# ---------------------------------------------------------------- processing (worker)


async def process_alert(session: AsyncSession, alert_id: uuid.UUID) -> None:
    """Pictures, the incident, the ward's staff, nearby citizens. Runs in the worker, in the job's
    transaction: all of it commits together or the job is retried from the start.

    The pictures are made first, in a thread and with nothing written yet (on SQLite the
    database's write lock is taken only by the short write part that follows)."""
    # One round trip for both (the FK cascades: an alert never outlives its camera).
    found = (
        await session.execute(
            sa.select(CameraAlert, Camera)
            .join(Camera, col(Camera.id) == col(CameraAlert.camera_id))
            .where(col(CameraAlert.id) == alert_id)
        )
    ).one_or_none()
    if found is None or found.CameraAlert.status == "processed":
        return
    alert, camera = found.CameraAlert, found.Camera
    made = await _pictures(session, alert)
    evidence = None
    if (
        made is not None
        and isinstance(made[1], imaging.Processed)
        and (integrations.opens_incident(alert, camera))
    ):
        evidence = await integrations.save_evidence(made[0], made[1])
    await _store_pictures(session, alert, made)
    link = await integrations.join_or_open_incident(
        session, alert=alert, camera=camera, evidence=evidence
    )
    if link is not None:
        alert.incident_id, alert.incident_joined = str(link.incident_id), link.joined
        await integrations.alert_ward_staff(
            session, alert=alert, camera=camera, incident_id=link.incident_id
        )
        alert.staff_notified = True
        alert.citizens_warned = await integrations.warn_nearby_citizens(
            session, alert=alert, camera=camera, incident_id=link.incident_id
        )
    else:
        await integrations.alert_ward_staff_without_incident(session, alert=alert, camera=camera)
        alert.staff_notified = True
    alert.status, alert.processed_at = "processed", clock.now()
    await session.flush()
    delay = (alert.processed_at - alert.received_at).total_seconds()
    after_commit(session, metrics.PROCESSING_DELAY.labels(alert.type).observe, delay)
    log.info(
        "camera_alert_processed",
        alert_id=str(alert.id),
        camera=camera.code,
        type=alert.type,
        incident_id=alert.incident_id,
        snapshot=alert.snapshot_status,
    )


async def _pictures(
    session: AsyncSession, alert: CameraAlert
) -> tuple[bytes, imaging.Processed | imaging.SnapshotError] | None:
    """The original and its blurred pictures (None without one), made by OpenCV in a thread so
    that the worker's other jobs go on meanwhile."""
    if alert.snapshot_status == "none":
        return None
    original = (
        await session.execute(
            sa.select(col(CameraSnapshot.content)).where(
                col(CameraSnapshot.alert_id) == alert.id, col(CameraSnapshot.variant) == "original"
            )
        )
    ).scalar_one_or_none()
    if original is None:
        return None
    try:
        made = await asyncio.to_thread(
            imaging.process, original, alert.boxes, get_settings().camera_snapshot_max_pixels
        )
    except imaging.SnapshotError as exc:  # an answer, not a failure of the job
        return original, exc
    return original, made


async def _store_pictures(
    session: AsyncSession,
    alert: CameraAlert,
    made: tuple[bytes, imaging.Processed | imaging.SnapshotError] | None,
) -> None:
    """Blurred public copy and thumbnail of the snapshot, or the snapshot marked corrupt."""
    if made is None:
        return
    result = made[1]
    if isinstance(result, imaging.SnapshotError):
        alert.snapshot_status = "corrupt"
        log.warning("camera_snapshot_corrupt", alert_id=str(alert.id), reason=result.reason)
        return
    rows = [
        {
            "alert_id": alert.id,
            "variant": variant,
            "content": content,
            "width": width,
            "height": height,
            "created_at": clock.now(),
        }
        for variant, content, (width, height) in (
            ("public", result.public_jpeg, result.public_size),
            ("thumbnail", result.thumbnail_jpeg, result.thumbnail_size),
        )
    ]
    statement = insert(session, CameraSnapshot).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CameraSnapshot.alert_id, CameraSnapshot.variant],
            set_={
                "content": statement.excluded.content,
                "width": statement.excluded.width,
                "height": statement.excluded.height,
            },
        )
    )
    alert.snapshot_status = "processed"
    alert.faces_blurred, alert.plates_blurred = result.faces, result.plates


async def get_alert(session: AsyncSession, alert_id: uuid.UUID) -> tuple[CameraAlert, Camera]:
    alert = await session.get(CameraAlert, alert_id)
    if alert is None:
        raise AppError(errors.ALERT_NOT_FOUND)
    camera = await session.get(Camera, alert.camera_id)
    assert camera is not None
    return alert, camera


async def list_alerts(
    session: AsyncSession,
    *,
    ward_code: str | None,
    incident_id: str | None = None,
    limit: int = 50,
) -> list[CameraAlert]:
    query = sa.select(CameraAlert).order_by(col(CameraAlert.received_at).desc()).limit(limit)
    if incident_id is not None:
        query = query.where(col(CameraAlert.incident_id) == incident_id)
    if ward_code is not None:
        query = query.join(Camera, col(Camera.id) == col(CameraAlert.camera_id)).where(
            col(Camera.ward_code) == ward_code
        )
    return list((await session.execute(query)).scalars())


async def snapshot(session: AsyncSession, alert_id: uuid.UUID, variant: str) -> CameraSnapshot:
    row = await session.get(CameraSnapshot, (alert_id, variant))
    if row is None:
        raise AppError(errors.SNAPSHOT_NOT_AVAILABLE)
    return row


# ---------------------------------------------------------------- offline cameras


async def schedule_offline_check(session: AsyncSession) -> None:
    """Make sure the next periodic check exists (one job per time slot, whoever asks: each
    check, each new camera, and every start of the service, so a check that died does not end
    the chain)."""
    settings = get_settings()
    interval = settings.camera_offline_check_interval_seconds
    now = clock.now()
    slot = math.floor(now.timestamp() / interval) + 1
    run_after = datetime.fromtimestamp(slot * interval, tz=UTC)
    await jobs.enqueue(
        session,
        OFFLINE_CHECK_JOB,
        {},
        delay=run_after - now,
        dedupe_key=f"{OFFLINE_CHECK_JOB}:{slot}",
    )


async def flag_offline_cameras(session: AsyncSession) -> list[Camera]:
    """Cameras silent longer than CAMERA_OFFLINE_AFTER_SECONDS become offline, once, and their
    ward's staff are told. A camera never heard from counts from its registration."""
    cutoff = clock.now() - timedelta(seconds=get_settings().camera_offline_after_seconds)
    silent = sa.func.coalesce(Camera.last_seen_at, Camera.created_at) < cutoff
    cameras = list(
        (
            await session.execute(
                sa.select(Camera).where(col(Camera.status) == ACTIVE, silent).with_for_update()
            )
        ).scalars()
    )
    now = clock.now()
    for camera in cameras:
        camera.status, camera.offline_since, camera.updated_at = OFFLINE, now, now
        await integrations.camera_offline(session, camera=camera)
    await session.flush()
    return cameras


async def purge_originals(session: AsyncSession) -> int:
    """Unblurred pictures and plate texts are personal data kept only for
    CAMERA_ORIGINAL_RETENTION_DAYS (staff verify alerts long before); blurred copies stay."""
    cutoff = clock.now() - timedelta(days=get_settings().camera_original_retention_days)
    old = sa.select(col(CameraAlert.id)).where(
        col(CameraAlert.received_at) < cutoff, col(CameraAlert.status) == "processed"
    )
    result = await session.execute(
        sa.delete(CameraSnapshot).where(
            col(CameraSnapshot.variant) == "original", col(CameraSnapshot.alert_id).in_(old)
        )
    )
    await session.execute(
        sa.update(CameraAlert)
        .where(col(CameraAlert.id).in_(old), col(CameraAlert.plate_text).is_not(None))
        .values(plate_text=None)
    )
    evidence = (
        await session.execute(
            sa.select(col(CameraAlert.evidence_media_id)).where(
                col(CameraAlert.id).in_(old), col(CameraAlert.evidence_media_id).is_not(None)
            )
        )
    ).scalars()
    await integrations.withdraw_evidence(session, [m for m in evidence if m is not None])
    return rows_matched(result)


async def run_offline_check(session: AsyncSession) -> list[Camera]:
    """The periodic job: offline cameras, expired originals, and the next run."""
    flagged = await flag_offline_cameras(session)
    await purge_originals(session)
    remaining = (
        await session.execute(
            sa.select(sa.func.count()).select_from(Camera).where(col(Camera.status) != DISABLED)
        )
    ).scalar_one()
    if remaining:
        await schedule_offline_check(session)
    return flagged
