from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from app.core import clock
from app.core.audit import AuditEvent
from app.incidents import service
from app.incidents.models import Incident
from tests.conftest import count
from tests.incidents.helpers import (
    CENTRE,
    COUNTRYSIDE,
    GIA_SANG,
    act,
    citizen,
    file_report,
    north,
    staff,
    status_jobs,
)
from tests.support.flows import seed_wards


async def test_ward_staff_verify_start_and_resolve_with_public_notes(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912400001")
    follower = await citizen(client, db, "0912400002")
    officer = await staff(client, db, "0981400001", "TNG-PDP")
    body = await file_report(client, reporter, CENTRE)
    await client.post(f"/api/v1/incidents/{body['id']}/me-too", headers=follower)

    await act(client, officer, body["id"], "verify", note="Đã xác minh tại hiện trường")
    await act(client, officer, body["id"], "start", note="Đội thoát nước đang xử lý")
    done = await act(client, officer, body["id"], "resolve", note="Đã thông cống")

    assert done["status"] == "resolved" and done["resolved_at"] and done["verified_at"]
    public = (await client.get(f"/api/v1/incidents/{body['id']}")).json()
    assert [(e["action"], e["to_status"], e["public_note"]) for e in public["timeline"]] == [
        ("reported", "new", None),
        ("verify", "verified", "Đã xác minh tại hiện trường"),
        ("start", "in_progress", "Đội thoát nước đang xử lý"),
        ("resolve", "resolved", "Đã thông cống"),
    ]
    jobs = await status_jobs(db)
    assert [j.payload["to_status"] for j in jobs] == ["new", "verified", "in_progress", "resolved"]
    reporter_id = (await client.get("/api/v1/me", headers=reporter)).json()["id"]
    follower_id = (await client.get("/api/v1/me", headers=follower)).json()["id"]
    assert jobs[1].payload["recipient_ids"] == [reporter_id, follower_id]
    assert jobs[1].payload["public_note"] == "Đã xác minh tại hiện trường"


async def test_an_action_out_of_order_is_a_conflict_and_changes_nothing(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912400003")
    officer = await staff(client, db, "0981400002", "TNG-PDP")
    body = await file_report(client, reporter, CENTRE)

    refused = await act(client, officer, body["id"], "resolve", expect=409)

    assert refused["code"] == "incident.invalid_transition"
    assert refused["allowed"] == ["verify", "reject_spam", "reject_duplicate", "note"]
    assert len(await status_jobs(db)) == 1  # only the report's own


async def test_staff_of_another_ward_get_404_everywhere(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912400004")
    other = await staff(client, db, "0981400003", "TNG-GS")
    body = await file_report(client, reporter, CENTRE)
    url = f"/api/v1/staff/incidents/{body['id']}"

    assert (await client.get(url, headers=other)).status_code == 404
    refused = await act(client, other, body["id"], "verify", expect=404)
    listed = (await client.get("/api/v1/staff/incidents", headers=other)).json()

    assert refused["code"] == "incident.not_found"
    assert listed["items"] == []


async def test_citizens_cannot_use_staff_endpoints(client, db):
    reporter = await citizen(client, db, "0912400005")
    body = await file_report(client, reporter, CENTRE)

    assert (await client.get("/api/v1/staff/incidents", headers=reporter)).status_code == 403
    await act(client, reporter, body["id"], "verify", expect=403)


async def test_city_admin_sees_every_ward_and_the_province_queue(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912400006")
    admin = await staff(client, db, "0981400004", None, role="city_admin")
    officer = await staff(client, db, "0981400005", "TNG-PDP")
    a = await file_report(client, reporter, CENTRE)
    b = await file_report(client, reporter, GIA_SANG)
    c = await file_report(client, reporter, COUNTRYSIDE)

    everything = (await client.get("/api/v1/staff/incidents", headers=admin)).json()
    ward_only = (await client.get("/api/v1/staff/incidents", headers=officer)).json()

    assert [i["id"] for i in everything["items"]] == [c["id"], b["id"], a["id"]]
    assert [i["id"] for i in ward_only["items"]] == [a["id"]]


async def test_staff_list_filters_and_pages_without_gaps(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912400007")
    officer = await staff(client, db, "0981400006", "TNG-PDP")
    ids = []
    for i in range(5):
        ids.append(
            (await file_report(client, reporter, north(CENTRE, 300 * i), confirm_new=True))["id"]
        )
    await act(client, officer, ids[0], "verify")

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/staff/incidents", params=params, headers=officer)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    verified = (
        await client.get("/api/v1/staff/incidents", params={"status": "verified"}, headers=officer)
    ).json()

    assert seen == list(reversed(ids))
    assert [i["id"] for i in verified["items"]] == [ids[0]]
    bad = await client.get(
        "/api/v1/staff/incidents", params={"cursor": "nonsense"}, headers=officer
    )
    assert bad.status_code == 422 and bad.json()["code"] == "incident.invalid_cursor"


async def test_staff_see_the_reporter_of_an_anonymous_report_and_the_read_is_audited(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912400008")
    officer = await staff(client, db, "0981400007", "TNG-PDP")
    body = await file_report(client, reporter, CENTRE, anonymous=True)
    await act(client, officer, body["id"], "verify")

    seen = (await client.get(f"/api/v1/staff/incidents/{body['id']}", headers=officer)).json()
    public = (await client.get(f"/api/v1/incidents/{body['id']}")).json()

    reporter_id = (await client.get("/api/v1/me", headers=reporter)).json()["id"]
    assert seen["reporter_id"] == reporter_id and seen["reporter"] == "Nguyễn Văn A."
    assert public["reporter"] is None and "reporter_id" not in public
    reads = (
        (await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "incident.staff_read")))
        .scalars()
        .all()
    )
    assert [str(r.subject_id) for r in reads] == [reporter_id]


async def test_rejecting_a_duplicate_moves_its_followers_to_the_original(client, db):
    await seed_wards(db)
    first = await citizen(client, db, "0912400009")
    second = await citizen(client, db, "0912400010")
    officer = await staff(client, db, "0981400008", "TNG-PDP")
    original = await file_report(client, first, CENTRE)
    twin = await file_report(client, second, north(CENTRE, 30), confirm_new=True)

    bad = await act(client, officer, twin["id"], "reject_duplicate", expect=422)
    self_ref = await act(
        client, officer, twin["id"], "reject_duplicate", expect=422, duplicate_of=twin["id"]
    )
    rejected = await act(
        client,
        officer,
        twin["id"],
        "reject_duplicate",
        duplicate_of=original["id"],
        note="Trùng với phản ánh trước",
    )

    assert bad["code"] == self_ref["code"] == "incident.duplicate_target_invalid"
    assert rejected["status"] == "rejected_duplicate"
    assert rejected["duplicate_of_id"] == original["id"]
    assert [j.payload["action"] for j in await status_jobs(db)][-1] == "reject_duplicate"
    mine = (await client.get("/api/v1/me/incidents", headers=second)).json()
    relations = {i["id"]: i["relation"] for i in mine["items"]}
    assert relations == {original["id"]: "subscriber", twin["id"]: "reporter"}
    row = await db.get(Incident, uuid.UUID(original["id"]))
    await db.refresh(row)
    assert row.me_too_count == 1


async def test_spam_is_rejected_and_stays_out_of_public_view(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912400011")
    officer = await staff(client, db, "0981400009", "TNG-PDP")
    body = await file_report(client, reporter, CENTRE)

    await act(client, officer, body["id"], "reject_spam")

    assert (await client.get(f"/api/v1/incidents/{body['id']}")).status_code == 404
    me_too = await client.post(f"/api/v1/incidents/{body['id']}/me-too", headers=reporter)
    assert me_too.status_code == 404


async def test_camera_alert_opens_a_report_then_joins_it(db):
    now = clock.now()
    incident_id, joined = await service.join_or_open_from_camera(
        db,
        category="accident",
        lat=CENTRE[0],
        lon=CENTRE[1],
        occurred_at=now,
        confidence=0.91,
        evidence_media_id=None,
        camera_id="cam-hvt-01",
    )
    again_id, again_joined = await service.join_or_open_from_camera(
        db,
        category="accident",
        lat=north(CENTRE, 40)[0],
        lon=CENTRE[1],
        occurred_at=now + timedelta(minutes=2),
        confidence=0.8,
        evidence_media_id=None,
        camera_id="cam-hvt-02",
    )
    await db.commit()

    assert (joined, again_joined) == (False, True)
    assert again_id == incident_id
    row = await db.get(Incident, incident_id)
    assert (row.source, row.camera_id, row.status, row.ward_code) == (
        "camera",
        "cam-hvt-01",
        "new",
        "TNG-PDP",
    )
    assert await count(db, Incident) == 1
    timeline = await service.public_timeline(db, incident_id)
    assert [e.action for e in timeline] == ["reported", "camera_alert"]
    assert timeline[1].details["camera_id"] == "cam-hvt-02"
