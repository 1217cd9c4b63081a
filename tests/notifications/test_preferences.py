"""Preferences: categories, quiet hours (held back, not dropped), language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core import clock
from app.notifications import service
from tests.notifications.helpers import account, add_device, inbox_rows, pushes
from tests.support.flows import run_jobs


async def test_defaults_follow_the_account(client, db) -> None:
    an = await account(client, db, "0914000001", locale="en")
    prefs = (await client.get("/api/v1/notification-preferences", headers=an.headers)).json()
    assert prefs == {
        "categories": {"dossier_updates": True, "incident_updates": True,
                       "ward_announcements": True, "traffic_alerts": True},
        "quiet_hours": None,
        "language": "en",
    }


async def test_citizen_replaces_preferences(client, db) -> None:
    an = await account(client, db, "0914000002")
    body = {"categories": {"traffic_alerts": False}, "quiet_hours": {"start": "22:00",
                                                                     "end": "06:30"},
            "language": "en"}
    saved = await client.put("/api/v1/notification-preferences", headers=an.headers, json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["categories"]["traffic_alerts"] is False
    assert saved.json()["categories"]["dossier_updates"] is True
    assert saved.json()["quiet_hours"] == {"start": "22:00", "end": "06:30"}
    got = (await client.get("/api/v1/notification-preferences", headers=an.headers)).json()
    assert got == saved.json()


async def test_bad_preferences_are_refused_with_a_code(client, db) -> None:
    an = await account(client, db, "0914000003")
    same = await client.put("/api/v1/notification-preferences", headers=an.headers,
                            json={"quiet_hours": {"start": "22:00", "end": "22:00"}})
    assert same.status_code == 422 and same.json()["code"] == "notification.invalid_quiet_hours"
    bad_time = await client.put("/api/v1/notification-preferences", headers=an.headers,
                                json={"quiet_hours": {"start": "25:00", "end": "06:00"}})
    assert bad_time.status_code == 422
    unknown = await client.put("/api/v1/notification-preferences", headers=an.headers,
                               json={"categories": {"spam": True}})
    assert unknown.status_code == 422
    language = await client.put("/api/v1/notification-preferences", headers=an.headers,
                                json={"language": "fr"})
    assert language.status_code == 422


async def test_switched_off_category_keeps_the_inbox_but_sends_no_push(
    client, db, push_log
) -> None:
    an = await account(client, db, "0914000004")
    await add_device(client, an, "tok-muted")
    await client.put("/api/v1/notification-preferences", headers=an.headers,
                     json={"categories": {"dossier_updates": False}})
    await service.notify(db, [an.id], "dossier.status_changed",
                         {"dossier_id": "d1", "status": "approved"})
    await db.commit()
    await run_jobs()
    assert pushes(push_log) == []
    rows = await inbox_rows(an.id)
    assert len(rows) == 1 and rows[0].push_state == "muted"


def _at_local(hour: int, minute: int = 0) -> None:
    """Move the clock so that it is hour:minute in Thái Nguyên (UTC+7) today or tomorrow."""
    now = clock.now()
    target = datetime(now.year, now.month, now.day, (hour - 7) % 24, minute, tzinfo=UTC)
    if target <= now:
        target += timedelta(days=1)
    clock.advance(target - now)


async def test_quiet_hours_hold_routine_pushes_until_morning(client, db, push_log) -> None:
    an = await account(client, db, "0914000005")
    await add_device(client, an, "tok-sleepy")
    await client.put("/api/v1/notification-preferences", headers=an.headers,
                     json={"quiet_hours": {"start": "22:00", "end": "06:30"}})
    _at_local(23, 15)
    await service.notify(db, [an.id], "dossier.status_changed",
                         {"dossier_id": "d2", "status": "received"})
    await service.notify(db, [an.id], "traffic.warning",
                         {"incident_id": "i9", "alert_type": "flooding", "place": "Cầu Gia Bẩy"})
    await db.commit()
    await run_jobs()
    # The urgent flood warning goes at once; the dossier update waits, but is in the inbox.
    assert [m["data"]["kind"] for m in pushes(push_log)] == ["traffic.warning"]
    assert len(await inbox_rows(an.id)) == 2
    _at_local(6, 0)
    await run_jobs()
    assert len(pushes(push_log)) == 1  # still quiet at 06:00
    _at_local(6, 31)
    await run_jobs()
    assert [m["data"]["kind"] for m in pushes(push_log)] == ["traffic.warning",
                                                             "dossier.status_changed"]


async def test_language_preference_chooses_the_text(client, db, push_log) -> None:
    an = await account(client, db, "0914000006")
    await add_device(client, an, "tok-en")
    await client.put("/api/v1/notification-preferences", headers=an.headers,
                     json={"language": "en"})
    await service.notify(db, [an.id], "dossier.status_changed",
                         {"dossier_id": "d3", "dossier_code": "HS-9", "status": "approved"})
    await db.commit()
    await run_jobs()
    [message] = pushes(push_log)
    assert message["notification"]["title"] == "Dossier update HS-9"
    assert message["notification"]["body"] == "Your dossier HS-9 has been approved."
