"""The worker's part: pictures checked and blurred, the incident joined or opened, staff told."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras import imaging, service
from app.cameras.models import CameraAlert, CameraSnapshot
from app.core import clock
from app.core.audit import AuditEvent
from app.core.jobs import DEAD, Job
from app.incidents import renditions
from app.incidents import service as incidents
from app.incidents.config import get_incident_settings
from app.incidents.models import Incident
from app.media import service as media_service
from app.notifications.models import Notification
from tests.cameras.faces import drawn_face
from tests.cameras.support import alert_body, b64, jpeg, make_camera, send, staff_with_phone
from tests.notifications.contracts import assert_valid_push
from tests.notifications.helpers import account, sign_in
from tests.support.flows import run_jobs

PLATE = {"label": "plate", "x": 0.5, "y": 0.6, "width": 0.2, "height": 0.1}


def pushes(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def region(image: np.ndarray, box: dict) -> np.ndarray:
    h, w = image.shape[:2]
    return image[
        int(box["y"] * h) : int((box["y"] + box["height"]) * h),
        int(box["x"] * w) : int((box["x"] + box["width"]) * w),
    ]


async def test_accident_opens_an_incident_for_ward_staff_with_blurred_pictures_and_a_push(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession, push_log: Path
) -> None:
    await make_camera(db)
    staff = await staff_with_phone(client, db, "0911000001", "staff-phone-token")
    other_ward = await account(client, db, "0911000002", "ward_staff", "TNG-GS")
    picture = jpeg(640, 360)
    response = await send(
        ioc, alert_body(snapshot=b64(picture), boxes=[PLATE], plate_text="20A-123.45")
    )
    assert response.status_code == 202
    alert_id = response.json()["alert_id"]

    await run_jobs()

    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert alert.status == "processed" and alert.snapshot_status == "processed"
    assert alert.plates_blurred >= 1
    incident = (await db.execute(sa.select(Incident))).scalar_one()
    assert str(incident.id) == alert.incident_id and alert.incident_joined is False
    assert (incident.source, incident.status, incident.category) == ("camera", "new", "accident")
    assert incident.camera_id == "TNG-CAM-0042"

    # Staff of the ward see the incident awaiting verification, and its camera evidence.
    queue = await client.get("/api/v1/staff/incidents", headers=staff.headers)
    assert queue.status_code == 200
    assert [i["id"] for i in queue.json()["items"]] == [str(incident.id)]
    evidence = await client.get(
        f"/api/v1/staff/camera-alerts?incident_id={incident.id}", headers=staff.headers
    )
    assert [a["id"] for a in evidence.json()["items"]] == [alert_id]
    thumb = await client.get(
        f"/api/v1/staff/camera-alerts/{alert_id}/snapshot/thumbnail", headers=staff.headers
    )
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    thumbnail = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert thumbnail.shape[:2] == (180, 320)
    public = await client.get(
        f"/api/v1/staff/camera-alerts/{alert_id}/snapshot/public", headers=staff.headers
    )
    blurred = cv2.imdecode(np.frombuffer(public.content, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR)
    assert blurred.shape == original.shape
    # The plate region lost its detail; the rest of the picture kept it.
    assert sharpness(region(blurred, PLATE)) < sharpness(region(original, PLATE)) / 20
    elsewhere = {"x": 0.0, "y": 0.0, "width": 0.2, "height": 0.2}
    assert sharpness(region(blurred, elsewhere)) > sharpness(region(original, elsewhere)) / 3
    # Another ward's staff do not even learn the alert exists.
    hidden = await client.get(
        f"/api/v1/staff/camera-alerts/{alert_id}/snapshot/thumbnail", headers=other_ward.headers
    )
    assert hidden.status_code == 404

    # The push to the ward's staff, and only to them.
    inbox = list((await db.execute(sa.select(Notification))).scalars())
    assert [(n.user_id, n.kind) for n in inbox] == [(staff.id, "camera.alert")]
    sent = pushes(push_log)
    assert len(sent) == 1 and sent[0]["message"]["token"] == "staff-phone-token"
    assert assert_valid_push(sent[0]["message"]) == "camera.alert"
    assert sent[0]["message"]["data"]["incident_id"] == str(incident.id)


async def test_a_second_camera_alert_nearby_joins_the_open_incident(
    ioc: httpx.AsyncClient, db: AsyncSession, push_log: Path
) -> None:
    await make_camera(db)
    await make_camera(db, "TNG-CAM-0043", lat=21.5944, lon=105.8484)  # ~30 m away
    assert (await send(ioc, alert_body())).status_code == 202
    await run_jobs()
    assert (await send(ioc, alert_body("TNG-CAM-0043", confidence=0.97))).status_code == 202
    await run_jobs()
    alerts = list(
        (await db.execute(sa.select(CameraAlert).order_by(CameraAlert.received_at))).scalars()
    )
    assert len({a.incident_id for a in alerts}) == 1
    assert [a.incident_joined for a in alerts] == [False, True]
    assert await db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 1


async def test_redelivered_alert_is_processed_once(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession, push_log: Path
) -> None:
    await make_camera(db)
    await account(client, db, "0911000003", "ward_staff", "TNG-PDP")
    body = alert_body(snapshot=b64(jpeg()))
    for _ in range(3):
        assert (await send(ioc, body, msg_id="msg_same")).status_code == 202
        await run_jobs()
    assert await db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 1
    assert await db.scalar(sa.select(sa.func.count()).select_from(Notification)) == 1
    assert await db.scalar(sa.select(sa.func.count()).select_from(CameraSnapshot)) == 3


async def test_a_snapshot_opencv_cannot_decode_still_makes_an_incident(
    ioc: httpx.AsyncClient, db: AsyncSession, push_log: Path
) -> None:
    await make_camera(db)
    broken = bytearray(jpeg(320, 240))
    # Structurally complete (it passes intake), but a sample precision no decoder supports.
    frame = broken.index(b"\xff\xc0")
    broken[frame + 4] = 7
    assert cv2.imdecode(np.frombuffer(bytes(broken), np.uint8), cv2.IMREAD_COLOR) is None
    assert (await send(ioc, alert_body(snapshot=b64(bytes(broken))))).status_code == 202
    await run_jobs()
    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert alert.status == "processed"
    assert alert.snapshot_status == "corrupt"
    assert alert.incident_id is not None
    variants = set((await db.execute(sa.select(CameraSnapshot.variant))).scalars())
    assert variants == {"original"}


async def test_camera_alerts_go_to_the_staff_on_duty_or_to_all_while_nobody_is(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession, push_log: Path
) -> None:
    await make_camera(db)
    on_duty = await staff_with_phone(client, db, "0911000021", "on-duty-phone")
    await staff_with_phone(client, db, "0911000022", "off-duty-phone")
    shift = await client.put("/api/v1/staff/duty", json={"hours": 0.1}, headers=on_duty.headers)
    assert shift.status_code == 200

    assert (await send(ioc, alert_body(event_id="ioc-duty-1"))).status_code == 202
    await run_jobs()
    assert [m["message"]["token"] for m in pushes(push_log)] == ["on-duty-phone"]

    clock.advance(timedelta(minutes=7))  # the shift has ended: nobody is on duty
    assert (
        await send(
            ioc,
            alert_body(event_id="ioc-duty-2", occurred_at=clock.now().isoformat(), type="crowd"),
        )
    ).status_code == 202
    await run_jobs()
    later = [m["message"]["token"] for m in pushes(push_log)][1:]
    assert sorted(later) == ["off-duty-phone", "on-duty-phone"]


async def test_a_crowd_reaches_the_ward_staff_without_an_incident(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession, push_log: Path
) -> None:
    await make_camera(db)
    await staff_with_phone(
        client, db, "0911000005", "staff-crowd-token", platform="ios", locale="en"
    )
    assert (await send(ioc, alert_body(type="crowd", confidence=0.9))).status_code == 202
    await run_jobs()
    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert alert.status == "processed" and alert.incident_id is None and alert.staff_notified
    assert await db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0
    sent = pushes(push_log)
    assert len(sent) == 1 and assert_valid_push(sent[0]["message"]) == "camera.event"
    assert sent[0]["message"]["data"]["alert_id"] == str(alert.id)
    dead = (await db.execute(sa.select(Job).where(Job.status == DEAD))).scalars().all()
    assert dead == []


async def test_an_alert_from_outside_the_service_area_reaches_the_ward_without_an_incident(
    ioc: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: AsyncSession,
    push_log: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A camera registered before the service area was narrowed: the incidents domain refuses
    its place, so its accident is an event for the ward's staff, not a job failing until dead."""
    await make_camera(db)
    await staff_with_phone(client, db, "0911000006", "staff-outside-token")
    elsewhere = [(106.0, 22.0), (106.1, 22.0), (106.1, 22.1), (106.0, 22.1)]  # (lon, lat)
    monkeypatch.setattr(get_incident_settings(), "incident_service_area", elsewhere)

    assert (await send(ioc, alert_body(snapshot=b64(jpeg())))).status_code == 202
    await run_jobs()

    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert alert.status == "processed" and alert.incident_id is None and alert.staff_notified
    assert alert.snapshot_status == "processed" and alert.evidence_media_id is None
    assert await db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0
    sent = pushes(push_log)
    assert [assert_valid_push(m["message"]) for m in sent] == ["camera.event"]
    failed = await db.scalar(
        sa.select(sa.func.count()).select_from(Job).where(Job.last_error.is_not(None))
    )
    assert failed == 0


async def test_originals_need_a_reason_are_audited_and_expire(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    staff = await account(client, db, "0911000004", "ward_staff", "TNG-PDP")
    response = await send(ioc, alert_body(snapshot=b64(jpeg()), plate_text="20A-999.99"))
    alert_id = response.json()["alert_id"]
    await run_jobs()
    url = f"/api/v1/staff/camera-alerts/{alert_id}/snapshot/original"
    assert (await client.get(url, headers=staff.headers)).status_code == 422
    seen = await client.get(url, params={"reason": "verifying the accident"}, headers=staff.headers)
    assert seen.status_code == 200
    audit = (
        await db.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "cameras.original_snapshot_read")
        )
    ).scalar_one()
    assert (audit.actor_id, audit.reason) == (staff.id, "verifying the accident")

    clock.advance(timedelta(days=31))
    staff = await sign_in(db, staff.user)  # a month later: a new sign-in
    await service.run_offline_check(db)
    await db.commit()
    db.expire_all()
    variants = set((await db.execute(sa.select(CameraSnapshot.variant))).scalars())
    assert variants == {"public", "thumbnail"}
    assert (await db.execute(sa.select(CameraAlert.plate_text))).scalar_one() is None
    gone = await client.get(url, params={"reason": "again"}, headers=staff.headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == "camera_alert.snapshot_not_available"


def test_faces_found_by_opencv_are_blurred_even_when_the_sender_marked_none() -> None:
    ok, encoded = cv2.imencode(".jpg", drawn_face(280), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    result = imaging.process(encoded.tobytes(), [], 24_000_000)
    assert result.faces == 1
    original = cv2.imdecode(encoded, cv2.IMREAD_COLOR).astype(int)
    public = cv2.imdecode(np.frombuffer(result.public_jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    eyes = (slice(180, 220), slice(250, 390))  # rows, columns around the eyes
    corner = (slice(0, 60), slice(0, 100))
    assert np.abs(public[eyes] - original[eyes]).mean() > 10  # the eyes are smeared away
    assert np.abs(public[corner] - original[corner]).mean() < 3  # the rest is untouched


def _path(url: str) -> str:
    """A signed media URL without the public base (the test client has its own)."""
    return url[url.index("/api/v1/media/signed/") :]


async def test_the_blurred_snapshot_is_the_incidents_evidence_original_for_staff_only(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    staff = await account(client, db, "0911000006", "ward_staff", "TNG-PDP")
    picture = jpeg(640, 360, seed=5)
    assert (await send(ioc, alert_body(snapshot=b64(picture), boxes=[PLATE]))).status_code == 202
    await run_jobs()
    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    blurred = (await db.get(CameraSnapshot, (alert.id, "public"))).content
    media = await media_service.get(db, alert.evidence_media_id)
    assert media is not None and media.owner_id is None and media.purpose == "evidence"
    # Ready at once: the camera's pictures are the public versions, nothing is processed again.
    assert (
        await db.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.kind == "media.process")
        )
        == 0
    )

    detail = await client.get(f"/api/v1/staff/incidents/{alert.incident_id}", headers=staff.headers)
    assert detail.status_code == 200
    [shown] = detail.json()["media"]
    assert shown["id"] == str(media.id) and shown["ready"] is True
    # Staff views link the blurred copy; the original is read through the audited endpoint.
    assert (await client.get(_path(shown["url"]))).content == blurred != picture
    original_url = f"/api/v1/staff/incidents/{alert.incident_id}/media/{media.id}/original"
    original = await client.get(
        original_url, params={"reason": "Xác minh cảnh báo"}, headers=staff.headers
    )
    assert original.status_code == 200 and original.content == picture  # staff: as received
    thumb = await client.get(_path(shown["thumbnail_url"]))
    assert thumb.content == (await db.get(CameraSnapshot, (alert.id, "thumbnail"))).content

    # What the public would see of it: the blurred copy, never the original.
    views = await incidents.media_views_by_incident(
        db, [uuid.UUID(alert.incident_id)], renditions.PUBLIC
    )
    [public] = views[uuid.UUID(alert.incident_id)]
    assert "/original" not in public["url"]
    assert (await client.get(_path(public["url"]))).content == blurred != picture

    # The unblurred original goes when the alert's original goes; the blurred copies stay.
    clock.advance(timedelta(days=31))
    await service.run_offline_check(db)
    await db.commit()
    staff = await sign_in(db, staff.user)  # a month later: a new sign-in, new links
    detail = await client.get(f"/api/v1/staff/incidents/{alert.incident_id}", headers=staff.headers)
    [shown] = detail.json()["media"]
    gone = await client.get(
        original_url, params={"reason": "Xác minh cảnh báo"}, headers=staff.headers
    )
    assert gone.status_code == 404
    assert (await client.get(_path(shown["thumbnail_url"]))).status_code == 200
    views = await incidents.media_views_by_incident(
        db, [uuid.UUID(alert.incident_id)], renditions.PUBLIC
    )
    assert (
        await client.get(_path(views[uuid.UUID(alert.incident_id)][0]["url"]))
    ).content == blurred
