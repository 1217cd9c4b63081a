"""Who gets which rendition of an incident's photos: an uploader their own original, everyone else
the blurred copy; hidden and redacted files honoured; staff read originals only with a reason,
audited; every staff read of an incident audited."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from app.core import clock
from app.core.audit import AuditEvent
from app.incidents import service as incidents
from app.media import public as media_public
from app.media import service as media_service
from tests.incidents.helpers import CENTRE, citizen, file_report, staff
from tests.support import media_samples as samples
from tests.support.flows import run_jobs, seed_wards

CAMERA_ORIGINAL = samples.encode(samples.scene(), ".jpg")  # faces and plate as taken
BLURRED = samples.encode(samples.scene(plate=False), ".jpg")
THUMB = samples.encode(samples.scene(160, 120, plate=False), ".jpg")


async def uploaded(client, headers, content: bytes) -> str:
    response = await client.post(
        "/api/v1/media", headers=headers, files={"file": ("anh.jpg", content, "image/jpeg")}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def get(client, url: str):
    parts = urlsplit(url)
    return await client.get(f"{parts.path}?{parts.query}")


async def camera_joins(db, incident_id: str) -> str:
    """A traffic camera's picture of the same flooding joins the citizen's report."""
    evidence = await media_service.store_system_evidence(
        db,
        original=CAMERA_ORIGINAL,
        width=640,
        height=480,
        versions=[
            media_service.Version("w1280", BLURRED, 640, 480),
            media_service.Version("w320", THUMB, 160, 120),
        ],
        faces=1,
        plates=1,
    )
    joined_id, joined = await incidents.join_or_open_from_camera(
        db,
        category="flooding",
        lat=CENTRE[0],
        lon=CENTRE[1],
        occurred_at=clock.now(),
        confidence=0.7,
        evidence_media_id=evidence.id,
        camera_id="cam-pdp-1",
    )
    await db.commit()
    assert joined and str(joined_id) == incident_id
    return str(evidence.id)


def urls(view: dict[str, Any]) -> list[str]:
    return [view[k] for k in ("url", "thumbnail_url", "poster_url") if view.get(k)]


async def scene_with_camera(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912610001")
    own_photo = samples.jpeg_with_gps()
    own = await uploaded(client, reporter, own_photo)
    report = await file_report(client, reporter, CENTRE, media_ids=[own])
    camera = await camera_joins(db, report["id"])
    await run_jobs()
    return reporter, report, own, own_photo, camera


async def test_reporter_never_gets_camera_original(client, db):
    reporter, report, own, own_photo, camera = await scene_with_camera(client, db)

    detail = (await client.get(f"/api/v1/incidents/{report['id']}", headers=reporter)).json()
    mine = (await client.get("/api/v1/me/incidents", headers=reporter)).json()["items"]

    for media in (detail["media"], mine[0]["media"]):
        views = {m["id"]: m for m in media}
        assert set(views) == {own, camera}
        # The camera's picture: the blurred copy only, never a link to what the camera took.
        assert not any("/original" in u for u in urls(views[camera]))
        assert (await get(client, views[camera]["url"])).content == BLURRED
        assert (await get(client, views[camera]["thumbnail_url"])).content == THUMB
        # Their own photo: the original they uploaded.
        assert (await get(client, views[own]["url"])).content == own_photo


async def test_a_follower_gets_blurred_copies_of_everyone_elses_files(client, db):
    _reporter, report, own, own_photo, camera = await scene_with_camera(client, db)
    neighbour = await citizen(client, db, "0912610002")
    assert (
        await client.post(f"/api/v1/incidents/{report['id']}/me-too", headers=neighbour)
    ).status_code == 200

    detail = (await client.get(f"/api/v1/incidents/{report['id']}", headers=neighbour)).json()
    mine = (await client.get("/api/v1/me/incidents", headers=neighbour)).json()["items"]

    for media in (detail["media"], mine[0]["media"]):
        assert {m["id"] for m in media} == {own, camera}
        for view in media:
            assert view["url"] and not any("/original" in u for u in urls(view))
            assert (await get(client, view["url"])).content not in (own_photo, CAMERA_ORIGINAL)


async def test_a_signed_link_to_a_camera_original_is_refused(client, db):
    _, _, _, _, camera = await scene_with_camera(client, db)

    # Even a correctly signed link (as the service used to hand out) does not serve it.
    forged = media_public.signed_url(uuid.UUID(camera), media_public.ORIGINAL)
    response = await get(client, forged)

    assert response.status_code == 404
    assert response.json()["code"] == "media.not_found"


async def test_hidden_and_redacted_files_are_honoured_for_the_reporter(client, db):
    reporter, report, own, _own_photo, camera = await scene_with_camera(client, db)
    officer = await staff(client, db, "0981610001", "TNG-PDP")
    base = f"/api/v1/staff/incidents/{report['id']}/media"
    assert (
        await client.post(f"{base}/{camera}", json={"action": "hide"}, headers=officer)
    ).status_code == 200
    assert (
        await client.post(f"{base}/{own}", json={"action": "redact"}, headers=officer)
    ).status_code == 200

    detail = (await client.get(f"/api/v1/incidents/{report['id']}", headers=reporter)).json()
    mine = (await client.get("/api/v1/me/incidents", headers=reporter)).json()["items"]

    for media in (detail["media"], mine[0]["media"]):
        # The hidden camera picture is not theirs: not shown. Their own redacted photo is
        # listed, so they know what became of it, without any link.
        [view] = media
        assert view["id"] == own and view["visibility"] == "redacted"
        assert urls(view) == []


async def test_staff_views_of_incidents_carry_no_link_to_an_original(client, db):
    _, report, own, own_photo, camera = await scene_with_camera(client, db)
    officer = await staff(client, db, "0981610002", "TNG-PDP")

    detail = (await client.get(f"/api/v1/staff/incidents/{report['id']}", headers=officer)).json()
    listed = (await client.get("/api/v1/staff/incidents", headers=officer)).json()["items"]

    for media in (detail["media"], listed[0]["media"]):
        assert {m["id"] for m in media} == {own, camera}
        for view in media:
            assert view["url"] and not any("/original" in u for u in urls(view))
            shown = (await get(client, view["url"])).content
            assert shown not in (own_photo, CAMERA_ORIGINAL)


async def test_staff_read_an_original_only_with_a_reason_and_it_is_audited(client, db):
    _, report, own, own_photo, camera = await scene_with_camera(client, db)
    officer = await staff(client, db, "0981610003", "TNG-PDP")
    other_ward = await staff(client, db, "0981610004", "TNG-GS")
    url = f"/api/v1/staff/incidents/{report['id']}/media/{camera}/original"

    missing = await client.get(url, headers=officer)
    blank = await client.get(url, params={"reason": "   "}, headers=officer)
    elsewhere = await client.get(url, params={"reason": "tò mò"}, headers=other_ward)
    anonymous = await client.get(url, params={"reason": "tò mò"})
    read = await client.get(url, params={"reason": "Xác minh biển số xe"}, headers=officer)
    own_read = await client.get(
        f"/api/v1/staff/incidents/{report['id']}/media/{own}/original",
        params={"reason": "Xác minh hiện trường"},
        headers=officer,
    )

    assert missing.status_code == blank.status_code == 422
    assert missing.json()["code"] == "request.validation_failed"
    assert elsewhere.status_code == 404 and anonymous.status_code == 401
    assert read.status_code == 200 and read.content == CAMERA_ORIGINAL
    assert read.headers["cache-control"] == "private, no-store"
    assert own_read.status_code == 200 and own_read.content == own_photo
    rows = (
        (
            await db.execute(
                sa.select(AuditEvent)
                .where(AuditEvent.action == "incident.media_original_read")
                .order_by(AuditEvent.at)
            )
        )
        .scalars()
        .all()
    )
    assert [(r.reason, r.details["media_id"]) for r in rows] == [
        ("Xác minh biển số xe", camera),
        ("Xác minh hiện trường", own),
    ]
    assert all(r.resource == f"incident:{report['id']}" for r in rows)


async def test_every_staff_read_of_an_incident_is_audited_reporter_or_not(client, db):
    await seed_wards(db)
    officer = await staff(client, db, "0981610005", "TNG-PDP")
    reporter = await citizen(client, db, "0912610005")
    cited = await file_report(client, reporter, CENTRE)
    # A camera's own incident elsewhere: no citizen reported it, its pictures may show people.
    camera_id, joined = await incidents.join_or_open_from_camera(
        db,
        category="accident",
        lat=CENTRE[0],
        lon=CENTRE[1],
        occurred_at=clock.now(),
        confidence=0.7,
        evidence_media_id=None,
        camera_id="cam-pdp-2",
    )
    await db.commit()
    assert not joined

    for incident_id in (cited["id"], str(camera_id)):
        response = await client.get(f"/api/v1/staff/incidents/{incident_id}", headers=officer)
        assert response.status_code == 200
    assert (await client.get("/api/v1/staff/incidents", headers=officer)).status_code == 200

    rows = (
        await db.execute(sa.select(AuditEvent.action, AuditEvent.resource, AuditEvent.subject_id))
    ).all()
    reads = {(a, r) for a, r, _ in rows}
    for incident_id in (cited["id"], str(camera_id)):
        assert ("incident.staff_read", f"incident:{incident_id}") in reads
        assert ("incident.staff_list", f"incident:{incident_id}") in reads
    subjects = {r: s for a, r, s in rows if a == "incident.staff_read"}
    assert subjects[f"incident:{cited['id']}"] is not None
    assert subjects[f"incident:{camera_id}"] is None
