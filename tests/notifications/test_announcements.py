"""Announcements: ward staff to their ward, city admins to the city; preview, schedule, report,
fan-out in batch jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from app.core import clock
from app.core.jobs import Job, enqueue
from app.notifications.announcements import BATCH_JOB
from app.notifications.models import Device
from tests.notifications.contracts import assert_valid_push
from tests.notifications.helpers import (
    account,
    add_device,
    deliveries,
    devices_of,
    fresh,
    inbox_rows,
    pushes,
    sign_in,
)
from tests.support.flows import run_jobs
from tests.support.statements import statements

BODY = {
    "title_vi": "Cắt điện",
    "body_vi": "Cắt điện từ 8h đến 11h ngày 28/11.",
    "title_en": "Power cut",
    "body_en": "No power from 8 to 11am on 28 Nov.",
}


async def _ward_with_citizens(client, db, ward: str, prefix: str, count: int) -> list:
    people = []
    for i in range(count):
        person = await account(client, db, f"09{prefix}{i:05d}", ward=ward)
        await add_device(client, person, f"{ward}-{i}")
        people.append(person)
    return people


async def test_ward_staff_announce_to_their_ward_only(client, db, push_log, wards) -> None:
    staff = await account(client, db, "0917000001", role="ward_staff", ward="TNG-PDP")
    mine = await _ward_with_citizens(client, db, "TNG-PDP", "171", 3)
    others = await _ward_with_citizens(client, db, "TNG-GS", "172", 2)
    created = await client.post("/api/v1/staff/announcements", headers=staff.headers, json=BODY)
    assert created.status_code == 201, created.text
    assert created.json()["scope"] == "ward" and created.json()["ward_code"] == "TNG-PDP"
    await run_jobs()
    sent = pushes(push_log)
    assert sorted(m["token"] for m in sent) == ["TNG-PDP-0", "TNG-PDP-1", "TNG-PDP-2"]
    assert {assert_valid_push(m) for m in sent} == {"announcement"}
    for person in mine:
        [note] = await inbox_rows(person.id)
        assert note.title == "Cắt điện" and note.kind == "announcement"
    for person in others:
        assert await inbox_rows(person.id) == []
    report = (
        await client.get(
            f"/api/v1/staff/announcements/{created.json()['id']}", headers=staff.headers
        )
    ).json()
    assert report["status"] == "sent"
    assert report["report"] == {
        "recipients": 3,
        "devices_targeted": 3,
        "delivered": 3,
        "failed": 0,
        "pending": 0,
        "held_or_muted": 0,
        "opened": 0,
    }
    # A citizen opens it: the report counts it.
    note = (await client.get("/api/v1/notifications", headers=mine[0].headers)).json()["items"][0]
    await client.post(f"/api/v1/notifications/{note['id']}/read", headers=mine[0].headers)
    again = (
        await client.get(
            f"/api/v1/staff/announcements/{created.json()['id']}", headers=staff.headers
        )
    ).json()
    assert again["report"]["opened"] == 1


async def test_an_announcement_to_a_ward_without_citizens_is_sent_to_nobody(
    client, db, push_log, wards
) -> None:
    staff = await account(client, db, "0917000009", role="ward_staff", ward="TNG-PDP")
    created = await client.post("/api/v1/staff/announcements", headers=staff.headers, json=BODY)
    assert created.status_code == 201, created.text

    await run_jobs()

    report = (
        await client.get(
            f"/api/v1/staff/announcements/{created.json()['id']}", headers=staff.headers
        )
    ).json()
    assert report["status"] == "sent" and report["report"]["recipients"] == 0
    assert pushes(push_log) == []
    failed = await db.scalar(
        sa.select(sa.func.count()).select_from(Job).where(Job.last_error.is_not(None))
    )
    assert failed == 0


async def test_ward_staff_cannot_address_another_ward_or_the_city(client, db, wards) -> None:
    staff = await account(client, db, "0917000002", role="ward_admin", ward="TNG-PDP")
    other = await client.post(
        "/api/v1/staff/announcements", headers=staff.headers, json={**BODY, "ward_code": "TNG-GS"}
    )
    assert other.status_code == 403 and other.json()["code"] == "announcement.scope_forbidden"
    city = await client.post(
        "/api/v1/staff/announcements", headers=staff.headers, json={**BODY, "scope": "city"}
    )
    assert city.status_code == 403
    citizen = await account(client, db, "0917000003", ward="TNG-PDP")
    refused = await client.post("/api/v1/staff/announcements", headers=citizen.headers, json=BODY)
    assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"


async def test_staff_of_another_ward_cannot_see_the_announcement(client, db, wards) -> None:
    staff = await account(client, db, "0917000004", role="ward_staff", ward="TNG-PDP")
    stranger = await account(client, db, "0917000005", role="ward_staff", ward="TNG-GS")
    created = (
        await client.post("/api/v1/staff/announcements", headers=staff.headers, json=BODY)
    ).json()
    hidden = await client.get(
        f"/api/v1/staff/announcements/{created['id']}", headers=stranger.headers
    )
    assert hidden.status_code == 404 and hidden.json()["code"] == "announcement.not_found"
    listed = (await client.get("/api/v1/staff/announcements", headers=stranger.headers)).json()
    assert listed["items"] == []


async def test_city_admin_announces_to_every_citizen_in_english_where_chosen(
    client, db, push_log, wards, settings_env
) -> None:
    settings_env.set(announcement_batch_size=2)
    admin = await account(client, db, "0917000006", role="city_admin")
    people = [
        *await _ward_with_citizens(client, db, "TNG-PDP", "173", 3),
        *await _ward_with_citizens(client, db, "TNG-GS", "174", 2),
    ]
    await client.put(
        "/api/v1/notification-preferences", headers=people[0].headers, json={"language": "en"}
    )
    ward_staff = await account(client, db, "0917000007", role="ward_staff", ward="TNG-PDP")
    created = await client.post(
        "/api/v1/staff/announcements", headers=admin.headers, json={**BODY, "scope": "city"}
    )
    assert created.status_code == 201, created.text
    await run_jobs()
    # Five citizens in batches of two: three batch jobs, shared by whichever workers are free.
    batches = await fresh(sa.select(Job).where(Job.kind == BATCH_JOB))
    assert len(batches) == 3 and {b.status for b in batches} == {"done"}
    sent = {m["token"]: m for m in pushes(push_log)}
    assert len(sent) == 5
    assert sent["TNG-PDP-0"]["notification"]["title"] == "Power cut"
    assert sent["TNG-GS-1"]["notification"]["title"] == "Cắt điện"
    assert await inbox_rows(ward_staff.id) == []  # staff are not the audience
    report = (
        await client.get(
            f"/api/v1/staff/announcements/{created.json()['id']}", headers=admin.headers
        )
    ).json()
    assert report["status"] == "sent" and report["report"]["recipients"] == 5


async def test_scheduled_announcement_waits_and_can_be_cancelled(
    client, db, push_log, wards
) -> None:
    staff = await account(client, db, "0917000008", role="ward_staff", ward="TNG-QT")
    await _ward_with_citizens(client, db, "TNG-QT", "175", 1)
    later = (clock.now() + timedelta(hours=2)).isoformat()
    first = (
        await client.post(
            "/api/v1/staff/announcements",
            headers=staff.headers,
            json={**BODY, "scheduled_at": later},
        )
    ).json()
    second = (
        await client.post(
            "/api/v1/staff/announcements",
            headers=staff.headers,
            json={**BODY, "title_vi": "Lịch tiêm chủng", "scheduled_at": later},
        )
    ).json()
    assert first["status"] == "scheduled"
    await run_jobs()
    assert pushes(push_log) == []
    cancelled = await client.post(
        f"/api/v1/staff/announcements/{second['id']}/cancel", headers=staff.headers
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    clock.advance(timedelta(hours=2, minutes=1))
    await run_jobs()
    assert [m["notification"]["title"] for m in pushes(push_log)] == ["Cắt điện"]
    staff = await sign_in(db, staff.user)  # two hours on, the old access token has expired
    too_late = await client.post(
        f"/api/v1/staff/announcements/{first['id']}/cancel", headers=staff.headers
    )
    assert too_late.status_code == 409
    assert too_late.json()["code"] == "announcement.not_cancellable"


async def test_schedule_in_the_past_is_refused(client, db, wards) -> None:
    staff = await account(client, db, "0917000009", role="ward_staff", ward="TNG-QT")
    past = (clock.now() - timedelta(hours=1)).isoformat()
    response = await client.post(
        "/api/v1/staff/announcements", headers=staff.headers, json={**BODY, "scheduled_at": past}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "announcement.schedule_in_past"


async def test_preview_shows_texts_audience_and_the_push(client, db, wards) -> None:
    staff = await account(client, db, "0917000010", role="ward_staff", ward="TNG-TL")
    await _ward_with_citizens(client, db, "TNG-TL", "176", 2)
    preview = await client.post(
        "/api/v1/staff/announcements/preview",
        headers=staff.headers,
        json={**BODY, "title_en": None, "body_en": None},
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["recipients"] == 2 and body["devices"] == 2
    assert body["en"] == {"title": "Cắt điện", "body": BODY["body_vi"]}  # falls back to vi
    assert_valid_push(body["push_example"])
    listed = (await client.get("/api/v1/staff/announcements", headers=staff.headers)).json()
    assert listed["items"] == []  # a preview sends and stores nothing


async def test_city_admin_ward_announcement_needs_an_existing_ward(client, db, wards) -> None:
    admin = await account(client, db, "0917000011", role="city_admin")
    missing = await client.post("/api/v1/staff/announcements", headers=admin.headers, json=BODY)
    assert missing.status_code == 422
    assert missing.json()["code"] == "announcement.ward_required"
    unknown = await client.post(
        "/api/v1/staff/announcements", headers=admin.headers, json={**BODY, "ward_code": "NOWHERE"}
    )
    assert unknown.status_code == 404


async def test_listing_announcements_costs_the_same_queries_for_one_or_many(
    client, db, push_log, wards
) -> None:
    staff = await account(client, db, "0917100001", role="ward_staff", ward="TNG-PDP")
    citizens = await _ward_with_citizens(client, db, "TNG-PDP", "173", 2)
    url = "/api/v1/staff/announcements"
    first = (await client.post(url, headers=staff.headers, json=BODY)).json()
    await run_jobs()
    with statements() as one:
        listed = (await client.get(url, headers=staff.headers)).json()["items"]
    assert [a["id"] for a in listed] == [first["id"]]
    more = [(await client.post(url, headers=staff.headers, json=BODY)).json() for _ in range(3)]
    await run_jobs()
    # A citizen opens the second announcement only.
    inbox = (await client.get("/api/v1/notifications", headers=citizens[0].headers)).json()
    opened = next(n for n in inbox["items"] if n["data"]["announcement_id"] == more[0]["id"])
    await client.post(f"/api/v1/notifications/{opened['id']}/read", headers=citizens[0].headers)
    with statements() as four:
        listed = (await client.get(url, headers=staff.headers)).json()["items"]
    assert len(four) == len(one)
    reports = {a["id"]: a["report"] for a in listed}
    assert set(reports) == {first["id"], *(a["id"] for a in more)}
    for ann_id, report in reports.items():
        assert report["recipients"] == 2 and report["delivered"] == 2
        assert report["opened"] == (1 if ann_id == more[0]["id"] else 0)


async def test_announcement_batches_honour_each_citizens_preferences(
    client, db, push_log, wards
) -> None:
    staff = await account(client, db, "0917200001", role="ward_staff", ward="TNG-PDP")
    plain, muted, sleepy, english = await _ward_with_citizens(client, db, "TNG-PDP", "174", 4)
    prefs = "/api/v1/notification-preferences"
    await client.put(
        prefs, headers=muted.headers, json={"categories": {"ward_announcements": False}}
    )
    await client.put(
        prefs, headers=sleepy.headers, json={"quiet_hours": {"start": "22:00", "end": "06:30"}}
    )
    await client.put(prefs, headers=english.headers, json={"language": "en"})
    # 23:15 in Thái Nguyên.
    now = clock.now()
    late = datetime(now.year, now.month, now.day, 16, 15, tzinfo=UTC)
    clock.advance(late - now if late > now else late + timedelta(days=1) - now)
    staff = await sign_in(db, staff.user)  # the earlier access token has expired meanwhile
    created = await client.post("/api/v1/staff/announcements", headers=staff.headers, json=BODY)
    assert created.status_code == 201, created.text
    await run_jobs()
    assert sorted(m["token"] for m in pushes(push_log)) == ["TNG-PDP-0", "TNG-PDP-3"]
    by_token = {m["token"]: m for m in pushes(push_log)}
    assert by_token["TNG-PDP-3"]["notification"]["title"] == "Power cut"
    assert by_token["TNG-PDP-0"]["notification"]["title"] == "Cắt điện"
    for person in (plain, muted, sleepy, english):
        assert len(await inbox_rows(person.id)) == 1  # the inbox is the record, pushed or not
    report = (
        await client.get(
            f"/api/v1/staff/announcements/{created.json()['id']}", headers=staff.headers
        )
    ).json()["report"]
    assert report["recipients"] == 4 and report["held_or_muted"] == 2
    clock.advance(timedelta(hours=7, minutes=30))  # 06:45: the quiet hours are over
    await run_jobs()
    assert sorted(m["token"] for m in pushes(push_log)) == ["TNG-PDP-0", "TNG-PDP-2", "TNG-PDP-3"]


async def test_an_announcement_keeps_each_devices_fate_and_drops_dead_tokens(
    client, db, fake_fcm, wards
) -> None:
    staff = await account(client, db, "0917300001", role="ward_staff", ward="TNG-PDP")
    alive, gone, busy = await _ward_with_citizens(client, db, "TNG-PDP", "176", 3)
    await add_device(client, alive, "TNG-PDP-0-tablet", platform="ios")
    await fake_fcm.rule(token="TNG-PDP-1", errors=["UNREGISTERED"], sticky=True)
    await fake_fcm.rule(token="TNG-PDP-2", errors=["UNAVAILABLE"], retry_after=30)
    token_of = {d.id: d.token for d in await fresh(sa.select(Device))}
    created = await client.post("/api/v1/staff/announcements", headers=staff.headers, json=BODY)
    assert created.status_code == 201, created.text
    await run_jobs()
    fates = {(token_of[r.device_id], r.status, r.error_code) for r in await deliveries()}
    assert fates == {
        ("TNG-PDP-0", "sent", None),
        ("TNG-PDP-0-tablet", "sent", None),
        ("TNG-PDP-1", "unregistered", "UNREGISTERED"),
        ("TNG-PDP-2", "retrying", "UNAVAILABLE"),
    }
    assert await devices_of(gone.id) == []  # the dead token is removed
    url = f"/api/v1/staff/announcements/{created.json()['id']}"
    report = (await client.get(url, headers=staff.headers)).json()["report"]
    assert report == {
        "recipients": 3,
        "devices_targeted": 4,
        "delivered": 2,
        "failed": 1,
        "pending": 1,
        "held_or_muted": 0,
        "opened": 0,
    }
    clock.advance(timedelta(minutes=5))  # past Retry-After: the retry job delivers
    await run_jobs()
    report = (await client.get(url, headers=staff.headers)).json()["report"]
    assert report["delivered"] == 3 and report["pending"] == 0
    assert len(await fake_fcm.messages(token="TNG-PDP-2")) == 1
    assert {len(await inbox_rows(p.id)) for p in (alive, gone, busy)} == {1}


async def test_a_batch_run_twice_tells_nobody_twice(client, db, push_log, wards) -> None:
    staff = await account(client, db, "0917400001", role="ward_staff", ward="TNG-PDP")
    people = await _ward_with_citizens(client, db, "TNG-PDP", "177", 3)
    created = await client.post("/api/v1/staff/announcements", headers=staff.headers, json=BODY)
    assert created.status_code == 201, created.text
    await run_jobs()
    assert len(pushes(push_log)) == 3
    # The same range again (as a batch whose first run committed would be).
    [batch] = await fresh(sa.select(Job).where(Job.kind == BATCH_JOB))
    await enqueue(db, BATCH_JOB, batch.payload)
    await db.commit()
    await run_jobs()
    assert len(pushes(push_log)) == 3
    for person in people:
        assert len(await inbox_rows(person.id)) == 1
    url = f"/api/v1/staff/announcements/{created.json()['id']}"
    report = (await client.get(url, headers=staff.headers)).json()["report"]
    assert report["recipients"] == 3 and report["delivered"] == 3
