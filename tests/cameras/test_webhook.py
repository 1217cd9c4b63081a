"""The internal alert webhook: Standard Webhooks signatures, idempotency, refusals with codes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras.models import Camera, CameraAlert, CameraSnapshot
from app.cameras.service import decode_snapshot
from app.core import clock
from app.core import jobs as core_jobs
from app.core.errors import AppError
from app.core.jobs import Job
from tests.cameras.support import (
    ALERTS,
    OLD_SECRET,
    SECRET,
    alert_body,
    b64,
    jpeg,
    make_camera,
    send,
    signed_headers,
)
from tests.conftest import count


async def _jobs(db: AsyncSession, kind: str) -> list[Job]:
    rows = await db.execute(sa.select(Job).where(Job.kind == kind))
    return list(rows.scalars())


async def test_signed_alert_with_snapshot_is_stored_and_queued(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    camera = await make_camera(db)
    picture = jpeg()
    body = alert_body(
        snapshot=b64(picture),
        plate_text="20A-123.45",
        boxes=[{"label": "plate", "x": 0.5, "y": 0.6, "width": 0.1, "height": 0.05}],
    )
    response = await send(ioc, body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted"
    assert answer["camera_id"] == "TNG-CAM-0042" and answer["event_id"] == body["event_id"]

    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert str(alert.id) == answer["alert_id"]
    assert (alert.type, alert.confidence, alert.plate_text) == ("accident", 0.93, "20A-123.45")
    assert alert.status == "queued" and alert.snapshot_status == "received"
    assert alert.boxes[0]["label"] == "plate"
    original = await db.get(CameraSnapshot, (alert.id, "original"))
    assert original is not None and original.content == picture
    assert (original.width, original.height) == (640, 360)
    jobs = await _jobs(db, "camera.process_alert")
    assert [j.payload for j in jobs] == [{"alert_id": answer["alert_id"]}]
    await db.refresh(camera)
    assert camera.last_seen_at is not None


async def test_an_alert_whose_processing_job_cannot_be_queued_is_not_stored_either(
    ioc: httpx.AsyncClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alert, its picture and its job are written in the request's one transaction: the
    database failing on the job leaves no alert that nothing would ever process."""
    await make_camera(db)

    async def database_fails(*_args: Any, **_kwargs: Any) -> None:
        raise sa.exc.OperationalError("INSERT INTO jobs ...", {}, Exception("database is locked"))

    enqueue = core_jobs.enqueue
    monkeypatch.setattr(core_jobs, "enqueue", database_fails)
    response = await send(ioc, alert_body(snapshot=b64(jpeg())), msg_id="msg_no_job")

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "service.unavailable"
    assert (await count(db, CameraAlert), await count(db, CameraSnapshot)) == (0, 0)
    # The operations centre retries: now the alert is stored, once, with its job.
    monkeypatch.setattr(core_jobs, "enqueue", enqueue)
    again = await send(ioc, alert_body(snapshot=b64(jpeg())), msg_id="msg_no_job")
    assert again.status_code == 202, again.text
    assert (await count(db, CameraAlert), await count(db, CameraSnapshot)) == (1, 1)
    assert len(await _jobs(db, "camera.process_alert")) == 1


async def test_snapshots_are_stored_out_of_line_without_a_compression_attempt(
    db: AsyncSession, backend: str
) -> None:
    """JPEG does not compress: PostgreSQL's default (EXTENDED) tried pglz on every picture."""
    if backend != "postgresql":
        pytest.skip("a PostgreSQL storage setting; SQLite stores blobs as they come")
    storage = await db.scalar(
        sa.text(
            "SELECT attstorage::text FROM pg_attribute "
            "WHERE attrelid = 'camera_snapshots'::regclass AND attname = 'content'"
        )
    )
    assert storage == "e"  # EXTERNAL: out of line, uncompressed


async def test_redelivery_with_same_webhook_id_returns_first_answer_and_changes_nothing(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    body = alert_body()
    first = await send(ioc, body, msg_id="msg_redelivered")
    # A redelivery is signed anew (later timestamp) by the sender; even a different body under
    # the same id is the same message to us.
    again = await send(ioc, body, msg_id="msg_redelivered")
    changed = await send(ioc, {**body, "confidence": 0.1}, msg_id="msg_redelivered")
    assert first.status_code == again.status_code == changed.status_code == 202
    assert first.json() == again.json() == changed.json()
    assert await count(db, CameraAlert) == 1
    assert len(await _jobs(db, "camera.process_alert")) == 1


async def test_redelivery_is_answered_as_the_first_time_after_the_camera_was_disabled(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    camera = await make_camera(db)
    body = alert_body()
    first = await send(ioc, body, msg_id="msg_before_disabling")
    camera.status = "disabled"
    await db.commit()
    again = await send(ioc, body, msg_id="msg_before_disabling")
    assert again.status_code == 202 and again.json() == first.json()
    fresh = await send(ioc, alert_body(), msg_id="msg_after_disabling")
    assert fresh.json()["code"] == "camera_alert.camera_disabled"
    assert await count(db, CameraAlert) == 1


async def test_redelivery_is_answered_as_the_first_time_under_a_snapshot_limit_lowered_since(
    ioc: httpx.AsyncClient,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    camera_settings: object,
) -> None:
    await make_camera(db)
    body = alert_body(snapshot=b64(jpeg(400, 300)))
    first = await send(ioc, body, msg_id="msg_big_picture")
    assert first.status_code == 202
    monkeypatch.setattr(camera_settings, "camera_snapshot_max_bytes", 1_000)
    again = await send(ioc, body, msg_id="msg_big_picture")
    assert again.status_code == 202 and again.json() == first.json()
    other = await send(ioc, {**body, "event_id": "other"}, msg_id="msg_new_big_picture")
    assert other.json()["code"] == "camera_alert.snapshot_too_large"
    assert await count(db, CameraAlert) == 1


async def test_same_event_under_a_new_webhook_id_is_not_stored_twice(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    body = alert_body()
    first = await send(ioc, body)
    second = await send(ioc, body)
    assert second.status_code == 202 and second.json() == first.json()
    assert await count(db, CameraAlert) == 1


async def test_unsigned_tampered_old_and_future_alerts_are_refused_with_codes(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    raw = json.dumps(alert_body()).encode()

    unsigned = await ioc.post(ALERTS, content=raw, headers={"content-type": "application/json"})
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "camera_alert.unsigned"

    headers = signed_headers(raw)
    tampered = await ioc.post(ALERTS, content=raw.replace(b"0.93", b"0.99"), headers=headers)
    assert tampered.status_code == 401
    assert tampered.json()["code"] == "camera_alert.bad_signature"

    for at in (datetime.now(UTC) - timedelta(minutes=6), datetime.now(UTC) + timedelta(minutes=6)):
        response = await ioc.post(ALERTS, content=raw, headers=signed_headers(raw, at=at))
        assert response.status_code == 401
        assert response.json()["code"] == "camera_alert.timestamp_out_of_tolerance"

    wrong_key = await send(ioc, raw, secret=OLD_SECRET)
    assert wrong_key.status_code == 401
    assert wrong_key.json()["code"] == "camera_alert.bad_signature"
    assert await count(db, CameraAlert) == 0


@pytest.mark.parametrize(
    "signature",
    [
        "garbage",
        "v1,not-base64!!",
        "v2,AAAA",
        "v1,",
        ",,,",
        "v1,AAAA v1,BBBB",
    ],
)
async def test_malformed_signatures_are_refused_not_crashing(
    ioc: httpx.AsyncClient, db: AsyncSession, signature: str
) -> None:
    raw = json.dumps(alert_body()).encode()
    headers = {**signed_headers(raw), "webhook-signature": signature}
    response = await ioc.post(ALERTS, content=raw, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "camera_alert.bad_signature"


@pytest.mark.parametrize("stamp", ["soon", "nan", "inf", "1e400", "-1"])
async def test_malformed_timestamps_are_refused(
    ioc: httpx.AsyncClient, db: AsyncSession, stamp: str
) -> None:
    raw = json.dumps(alert_body()).encode()
    headers = {**signed_headers(raw), "webhook-timestamp": stamp}
    response = await ioc.post(ALERTS, content=raw, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] in (
        "camera_alert.bad_signature",
        "camera_alert.timestamp_out_of_tolerance",
    )


async def test_secrets_rotate_without_downtime(
    ioc: httpx.AsyncClient,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    camera_settings: object,
) -> None:
    await make_camera(db)
    monkeypatch.setattr(camera_settings, "camera_webhook_secrets", [SECRET, OLD_SECRET])
    assert (await send(ioc, alert_body(), secret=OLD_SECRET)).status_code == 202
    assert (await send(ioc, alert_body(), secret=SECRET)).status_code == 202
    # A sender in the middle of a rotation signs with both keys, one of them unknown to us.
    raw = json.dumps(alert_body()).encode()
    headers = signed_headers(raw)
    unknown = signed_headers(
        raw, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", msg_id=headers["webhook-id"]
    )
    headers["webhook-signature"] = f"{unknown['webhook-signature']} {headers['webhook-signature']}"
    assert (await ioc.post(ALERTS, content=raw, headers=headers)).status_code == 202
    # The old key retired: its signatures stop working.
    monkeypatch.setattr(camera_settings, "camera_webhook_secrets", [SECRET])
    retired = await send(ioc, alert_body(), secret=OLD_SECRET)
    assert retired.json()["code"] == "camera_alert.bad_signature"


async def test_unknown_and_disabled_cameras_are_refused(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db, "TNG-CAM-OFF", status="disabled")
    unknown = await send(ioc, alert_body("TNG-CAM-9999"))
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "camera_alert.unknown_camera"
    disabled = await send(ioc, alert_body("TNG-CAM-OFF"))
    assert disabled.status_code == 422
    assert disabled.json()["code"] == "camera_alert.camera_disabled"
    assert await count(db, CameraAlert) == 0


@pytest.mark.parametrize(
    "snapshot",
    [
        "not base64 at all!",
        b64(b"GIF89a not a jpeg"),
        b64(jpeg()[:-2000]),  # truncated upload
        b64(b"\xff\xd8\xff\xe0" + b"\x00\x02" + b"\xff\xd9"),  # markers only, no picture
    ],
)
async def test_broken_snapshots_are_refused(
    ioc: httpx.AsyncClient, db: AsyncSession, snapshot: str
) -> None:
    await make_camera(db)
    response = await send(ioc, alert_body(snapshot=snapshot))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "camera_alert.snapshot_invalid"
    assert await count(db, CameraAlert) == 0


async def test_oversized_snapshots_are_refused(
    ioc: httpx.AsyncClient,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    camera_settings: object,
) -> None:
    await make_camera(db)
    monkeypatch.setattr(camera_settings, "camera_snapshot_max_bytes", 20_000)
    response = await send(ioc, alert_body(snapshot=b64(jpeg(400, 300))))
    assert response.status_code == 413
    assert response.json()["code"] == "camera_alert.snapshot_too_large"
    monkeypatch.setattr(camera_settings, "camera_snapshot_max_bytes", 524_288)
    monkeypatch.setattr(camera_settings, "camera_snapshot_max_pixels", 100 * 100)
    bomb = await send(ioc, alert_body(snapshot=b64(jpeg(400, 300))))
    assert bomb.status_code == 413
    assert bomb.json()["code"] == "camera_alert.snapshot_too_large"


async def test_signed_but_invalid_bodies_get_validation_problems(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    for body in (
        alert_body(type="meteor"),
        alert_body(confidence=1.5),
        alert_body(occurred_at="2026-11-25T08:00:00"),
        {"camera_id": "x"},
    ):
        response = await send(ioc, body)
        assert response.status_code == 422
        assert response.json()["code"] == "request.validation_failed"
    malformed = await send(ioc, b"{not json")
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "request.malformed_json"


async def test_unconfigured_secrets_refuse_everything(
    ioc: httpx.AsyncClient,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    camera_settings: object,
) -> None:
    monkeypatch.setattr(camera_settings, "camera_webhook_secrets", [])
    response = await send(ioc, alert_body())
    assert response.status_code == 503
    assert response.json()["code"] == "camera_alert.not_configured"


async def test_callers_outside_the_allowed_networks_are_refused_before_the_signature(
    client: httpx.AsyncClient, db: AsyncSession, camera_settings: object, wards: None
) -> None:
    # `client` calls from 203.0.113.10, a public address.
    response = await send(client, alert_body())
    assert response.status_code == 403
    assert response.json()["code"] == "internal.network_forbidden"


async def test_alert_brings_an_offline_camera_back(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    camera = await make_camera(db)
    camera.status, camera.offline_since = "offline", clock.now()
    await db.commit()
    assert (await send(ioc, alert_body())).status_code == 202
    await db.refresh(camera)
    assert camera.status == "active" and camera.offline_since is None
    assert (await db.execute(sa.select(Camera.status))).scalar_one() == "active"


async def test_bodies_that_are_not_json_objects_get_the_problems_of_any_route(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    raw = json.dumps(alert_body()).encode()
    for content_type in ("text/plain", None):
        headers = signed_headers(raw)
        if content_type:
            headers["content-type"] = content_type
        else:
            del headers["content-type"]
        response = await ioc.post(ALERTS, content=raw, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "request.validation_failed"
    empty = await ioc.post(ALERTS, content=b"", headers=signed_headers(b""))
    assert empty.status_code == 422
    assert empty.json()["errors"][0]["field"] == "body"
    listed = await send(ioc, b"[]")
    assert listed.status_code == 422
    assert listed.json()["errors"][0]["field"] == "body"
    missing = await send(ioc, {"camera_id": "TNG-CAM-0042"})
    assert "body.event_id" in {e["field"] for e in missing.json()["errors"]}
    assert await count(db, CameraAlert) == 0


async def test_snapshots_in_the_url_safe_alphabet_without_padding_are_accepted(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    picture = jpeg()
    url_safe = base64.urlsafe_b64encode(picture).decode().rstrip("=")
    response = await send(ioc, alert_body(snapshot=url_safe))
    assert response.status_code == 202, response.text
    original = (await db.execute(sa.select(CameraSnapshot))).scalar_one()
    assert original.content == picture


def _snapshot_variants() -> dict[str, str]:
    picture = jpeg()
    standard, url_safe = base64.b64encode(picture).decode(), base64.urlsafe_b64encode(picture)
    return {
        "standard": standard,
        "standard, unpadded": standard.rstrip("="),
        "url-safe": url_safe.decode(),
        "url-safe, unpadded": url_safe.decode().rstrip("="),
    }


@pytest.mark.parametrize("variant", sorted(_snapshot_variants()))
def test_snapshot_base64_in_either_alphabet_with_or_without_padding_decodes(variant: str) -> None:
    data, size = decode_snapshot(_snapshot_variants()[variant])
    assert data == jpeg() and size == (640, 360)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text.replace("+", "-", 1),  # both alphabets at once
        lambda text: text[:100] + " " + text[100:],
        lambda text: text[:76] + "\n" + text[76:],
        lambda text: text[:100] + "é" + text[100:],
        lambda text: text[:100] + "\ud800" + text[100:],  # a lone surrogate
        lambda text: text[:100] + "=" + text[100:],
        lambda text: text.rstrip("=") + "A",  # one character past a whole group
        lambda text: text[:100] + '"' + text[100:],
        lambda text: text[:100] + "\\u0041" + text[100:],
    ],
)
def test_snapshot_base64_with_anything_else_is_refused_as_not_base64(mangle: Any) -> None:
    text = base64.b64encode(jpeg()).decode()
    assert "+" in text and "/" in text
    with pytest.raises(AppError) as refused:
        decode_snapshot(mangle(text))
    assert refused.value.error.code == "camera_alert.snapshot_invalid"
    assert refused.value.params["reason"] == "not base64"
