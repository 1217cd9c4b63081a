"""Photos and videos of incident reports: blurred public versions made by the worker, originals
only for the reporter and staff, signed expiring links, moderation. (Formats judged by their
bytes on upload: tests/media/test_formats.py.)"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from app.core import clock
from tests.incidents.helpers import CENTRE, act, citizen, file_report, staff
from tests.support import media_samples as samples
from tests.support.flows import run_jobs, seed_wards


async def upload(client, headers, content: bytes, filename: str, content_type: str):
    return await client.post(
        "/api/v1/media", headers=headers, files={"file": (filename, content, content_type)}
    )


async def uploaded(
    client, headers, content: bytes, filename: str = "anh.jpg", content_type: str = "image/jpeg"
) -> str:
    response = await upload(client, headers, content, filename, content_type)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def fetch(client, url: str) -> bytes:
    parts = urlsplit(url)
    response = await client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.text
    return response.content


async def nearby_media(client) -> list[dict]:
    items = (
        await client.get("/api/v1/incidents/nearby", params={"lat": CENTRE[0], "lon": CENTRE[1]})
    ).json()["items"]
    return [m for item in items for m in item["media"]]


async def test_the_public_sees_a_blurred_photo_without_exif_and_the_reporter_the_original(
    client, db
):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912600001")
    officer = await staff(client, db, "0981600001", "TNG-PDP")
    original = samples.jpeg_with_gps()
    media_id = await uploaded(client, reporter, original)

    body = await file_report(client, reporter, CENTRE, media_ids=[media_id])
    assert body["media"][0]["ready"] is False and body["media"][0]["processing"] == "pending"
    await run_jobs()
    await act(client, officer, body["id"], "verify")

    [public] = await nearby_media(client)
    assert public["ready"] is True and public["kind"] == "photo"
    # The EXIF orientation (90° clockwise) was applied: the picture is upright, 640 x 480.
    assert (public["width"], public["height"]) == (640, 480)
    shown = await fetch(client, public["url"])
    assert b"Exif" not in shown and b"PhoneMaker" not in shown
    picture = samples.decode(shown)
    assert picture.shape[:2] == (480, 640)
    x, y, w, h = samples.PLATE_BOX
    plate_before = samples.sharpness(samples.scene()[y : y + h, x : x + w])
    assert samples.sharpness(picture[y : y + h, x : x + w]) < plate_before * 0.05
    cx, cy = samples.FACE_CENTRE
    face_before = samples.sharpness(samples.scene()[cy - 60 : cy + 60, cx - 60 : cx + 60])
    assert samples.sharpness(picture[cy - 60 : cy + 60, cx - 60 : cx + 60]) < face_before * 0.2
    thumb = samples.decode(await fetch(client, public["thumbnail_url"]))
    assert max(thumb.shape[:2]) == 320

    mine = (await client.get(f"/api/v1/incidents/{body['id']}", headers=reporter)).json()
    assert await fetch(client, mine["media"][0]["url"]) == original


async def test_a_video_report_gets_a_probe_a_poster_and_a_blurred_public_copy(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912600002")
    officer = await staff(client, db, "0981600002", "TNG-PDP")
    clip = samples.video(seconds=2, fps=10)
    media_id = await uploaded(client, reporter, clip, "clip.mp4", "video/mp4")

    body = await file_report(client, reporter, CENTRE, media_ids=[media_id])
    await run_jobs()
    await act(client, officer, body["id"], "verify")

    [public] = await nearby_media(client)
    assert public["kind"] == "video" and public["ready"]
    assert (public["width"], public["height"], public["duration_s"]) == (320, 240, 2.0)
    poster = samples.decode(await fetch(client, public["poster_url"]))
    assert poster.shape[:2] == (240, 320)
    copy = await fetch(client, public["url"])
    assert copy[4:8] == b"ftyp" and copy != clip
    # Players seek with byte ranges.
    parts = urlsplit(public["url"])
    ranged = await client.get(f"{parts.path}?{parts.query}", headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == copy[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(copy)}"


async def test_photos_of_another_citizen_or_documents_cannot_be_attached(client, db):
    reporter = await citizen(client, db, "0912600003")
    other = await citizen(client, db, "0912600004")
    theirs = await uploaded(
        client, other, samples.encode(samples.scene(), ".png"), "a.png", "image/png"
    )
    pdf = await uploaded(
        client,
        reporter,
        b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n",
        "a.pdf",
        "application/pdf",
    )
    mine = await uploaded(client, reporter, samples.encode(samples.scene(), ".jpg"))

    for ids in ([theirs], [pdf]):
        refused = await file_report(client, reporter, CENTRE, media_ids=ids, expect=422)
        assert refused["code"] == "incident.media_invalid"
        assert refused["media_ids"] == ids
    await file_report(client, reporter, CENTRE, media_ids=[mine])
    reused = await file_report(
        client, reporter, CENTRE, category="accident", media_ids=[mine], expect=422
    )
    assert reused["code"] == "incident.media_invalid"


async def test_staff_hide_show_and_redact_media(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912600005")
    officer = await staff(client, db, "0981600005", "TNG-PDP")
    other_ward = await staff(client, db, "0981600006", "TNG-GS")
    media_id = await uploaded(client, reporter, samples.encode(samples.scene(), ".jpg"))
    body = await file_report(client, reporter, CENTRE, media_ids=[media_id])
    await run_jobs()
    await act(client, officer, body["id"], "verify")
    [shown] = await nearby_media(client)
    url = f"/api/v1/staff/incidents/{body['id']}/media/{media_id}"

    assert (await client.post(url, json={"action": "hide"}, headers=other_ward)).status_code == 404
    hidden = await client.post(url, json={"action": "hide"}, headers=officer)
    assert hidden.status_code == 200, hidden.text
    assert await nearby_media(client) == []
    assert (await client.post(url, json={"action": "show"}, headers=officer)).status_code == 200
    assert len(await nearby_media(client)) == 1

    redacted = await client.post(
        url, json={"action": "redact", "note": "Lộ biển số"}, headers=officer
    )
    assert redacted.json()["media"][0]["visibility"] == "redacted"
    assert await nearby_media(client) == []
    parts = urlsplit(shown["url"])
    gone = await client.get(f"{parts.path}?{parts.query}")  # the link had not expired
    assert gone.status_code == 404
    again = await client.post(url, json={"action": "show"}, headers=officer)
    assert again.status_code == 409 and again.json()["code"] == "incident.invalid_media_action"
    staff_view = (await client.get(f"/api/v1/staff/incidents/{body['id']}", headers=officer)).json()
    assert [e["action"] for e in staff_view["timeline"]][-4:] == [
        "verify",
        "media_hide",
        "media_show",
        "media_redact",
    ]
    # The original is still there for staff, through the audited endpoint only.
    assert staff_view["media"][0]["url"] is None
    kept = await client.get(
        f"{url}/original", params={"reason": "Xác minh biển số"}, headers=officer
    )
    assert kept.status_code == 200 and kept.content[:3] == b"\xff\xd8\xff"


async def test_signed_links_expire_and_cannot_be_altered(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912600007")
    officer = await staff(client, db, "0981600007", "TNG-PDP")
    media_id = await uploaded(client, reporter, samples.encode(samples.scene(), ".jpg"))
    body = await file_report(client, reporter, CENTRE, media_ids=[media_id])
    await run_jobs()
    await act(client, officer, body["id"], "verify")
    [public] = await nearby_media(client)
    parts = urlsplit(public["url"])

    original = parts.path.replace("/w1280", "/original")
    tampered = await client.get(f"{original}?{parts.query}")
    clock.advance(timedelta(hours=3))
    expired = await client.get(f"{parts.path}?{parts.query}")

    assert tampered.status_code == expired.status_code == 403
    assert expired.json()["code"] == "media.link_invalid"


async def test_a_photo_that_does_not_decode_is_marked_failed_and_never_public(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912600008")
    officer = await staff(client, db, "0981600008", "TNG-PDP")
    # Right signature and end marker, a plausible header, garbage inside.
    fake = (
        b"\xff\xd8\xff\xc0\x00\x11\x08\x01\x00\x01\x00\x03\x01\x22\x00\x02\x11\x01\x03\x11"
        b"\x01" + b"\x13" * 500 + b"\xff\xd9"
    )
    media_id = await uploaded(client, reporter, fake)
    body = await file_report(client, reporter, CENTRE, media_ids=[media_id])
    await run_jobs()
    await act(client, officer, body["id"], "verify")

    mine = (await client.get(f"/api/v1/incidents/{body['id']}", headers=reporter)).json()
    assert mine["media"][0]["processing"] == "failed"
    assert mine["media"][0]["error_code"] == "media.corrupt"
    assert await nearby_media(client) == []


async def test_erasing_an_account_removes_its_photos_and_their_public_versions(client, db):
    import sqlalchemy as sa

    from app.media.models import MediaVariant
    from app.media.storage import get_storage

    me = await citizen(client, db, "0912600013")
    media_id = await uploaded(client, me, samples.encode(samples.scene(), ".jpg"))
    await file_report(client, me, CENTRE, media_ids=[media_id])
    await run_jobs()
    keys = (await db.execute(sa.select(MediaVariant.storage_key))).scalars().all()
    assert len(keys) == 2 and all([await get_storage().exists(k) for k in keys])

    response = await client.request(
        "DELETE", "/api/v1/me", headers=me, json={"password": "mot-mat-khau-dai-2026"}
    )

    assert response.status_code == 200, response.text
    assert [await get_storage().exists(k) for k in keys] == [False, False]
    assert (await db.execute(sa.select(sa.func.count()).select_from(MediaVariant))).scalar() == 0


async def test_the_feed_shows_each_file_as_the_public_page_of_its_incident_does(client, db):
    """The feed reads media in its own single statement: it must agree with the detail page,
    page by page, for processed photos and videos, a failed file, a hidden one and a pending
    one."""
    await seed_wards(db)
    reporter = await citizen(client, db, "0912600011")
    officer = await staff(client, db, "0981600011", "TNG-PDP")
    broken = (
        b"\xff\xd8\xff\xc0\x00\x11\x08\x01\x00\x01\x00\x03\x01\x22\x00\x02\x11\x01\x03"
        b"\x11\x01" + b"\x13" * 500 + b"\xff\xd9"
    )
    files = [
        await uploaded(client, reporter, samples.encode(samples.scene(), ".jpg")),
        await uploaded(client, reporter, samples.video(seconds=1), "clip.mp4", "video/mp4"),
        await uploaded(client, reporter, broken),
        await uploaded(
            client, reporter, samples.encode(samples.scene(), ".png"), "anh.png", "image/png"
        ),
    ]
    many = await file_report(client, reporter, CENTRE, media_ids=files)
    await run_jobs()
    hidden = f"/api/v1/staff/incidents/{many['id']}/media/{files[3]}"
    assert (await client.post(hidden, json={"action": "hide"}, headers=officer)).status_code == 200
    late = await uploaded(client, reporter, samples.encode(samples.scene(), ".jpg"))
    pending = await file_report(
        client, reporter, CENTRE, category="accident", media_ids=[late], confirm_new=True
    )
    for incident in (many, pending):
        await act(client, officer, incident["id"], "verify")

    pages, cursor = [], None
    while True:  # one incident a page: the media rows of one never spill into the next
        params = {
            "lat": CENTRE[0],
            "lon": CENTRE[1],
            "limit": 1,
            **({"cursor": cursor} if cursor else {}),
        }
        page = (await client.get("/api/v1/incidents/nearby", params=params)).json()
        pages += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert [item["id"] for item in pages] == [pending["id"], many["id"]]
    for item in pages:
        detail = (await client.get(f"/api/v1/incidents/{item['id']}")).json()
        assert item["media"] == detail["media"]
    assert pages[0]["media"] == []
    assert [(m["id"], m["kind"]) for m in pages[1]["media"]] == [
        (files[0], "photo"),
        (files[1], "video"),
    ]
    assert all(m["url"] and m["thumbnail_url"] for m in pages[1]["media"])
