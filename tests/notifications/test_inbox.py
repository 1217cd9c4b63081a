"""The inbox: every notification stored per recipient, paginated, read, read-all."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.notifications import service
from tests.notifications.helpers import account


async def _dossier_updates(db: AsyncSession, user_id: uuid.UUID, count: int) -> None:
    for i in range(count):
        await service.notify(db, [user_id], "dossier.status_changed",
                             {"dossier_id": f"d{i}", "dossier_code": f"HS-{i:03d}",
                              "status": "received"})
    await db.commit()


async def test_inbox_pages_newest_first_with_unread_count(client, db) -> None:
    an = await account(client, db, "0913000001")
    await _dossier_updates(db, an.id, 25)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/notifications", headers=an.headers,
                                 params=params)).json()
        assert page["unread_count"] == 25
        seen.extend(item["data"]["dossier_code"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"HS-{i:03d}" for i in reversed(range(25))]


async def test_citizen_reads_one_then_all(client, db) -> None:
    an = await account(client, db, "0913000002")
    await _dossier_updates(db, an.id, 3)
    items = (await client.get("/api/v1/notifications", headers=an.headers)).json()["items"]
    read = await client.post(f"/api/v1/notifications/{items[0]['id']}/read", headers=an.headers)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    again = await client.post(f"/api/v1/notifications/{items[0]['id']}/read", headers=an.headers)
    assert again.json()["read_at"] == read.json()["read_at"]  # idempotent
    unread = (await client.get("/api/v1/notifications", headers=an.headers,
                               params={"unread_only": "true"})).json()
    assert unread["unread_count"] == 2 and len(unread["items"]) == 2
    done = (await client.post("/api/v1/notifications/read-all", headers=an.headers)).json()
    assert done == {"marked_read": 2, "unread_count": 0}
    page = (await client.get("/api/v1/notifications", headers=an.headers)).json()
    assert page["unread_count"] == 0 and all(i["read_at"] for i in page["items"])


async def test_nobody_reads_another_citizens_notification(client, db) -> None:
    an = await account(client, db, "0913000003")
    binh = await account(client, db, "0913000004")
    await _dossier_updates(db, an.id, 1)
    note = (await client.get("/api/v1/notifications", headers=an.headers)).json()["items"][0]
    other = await client.post(f"/api/v1/notifications/{note['id']}/read", headers=binh.headers)
    assert other.status_code == 404 and other.json()["code"] == "notification.not_found"
    assert (await client.get("/api/v1/notifications", headers=binh.headers)).json()["items"] == []
    missing = await client.post(f"/api/v1/notifications/{uuid.uuid4()}/read", headers=an.headers)
    assert missing.status_code == 404


async def test_bad_cursor_and_limit_are_client_errors(client, db) -> None:
    an = await account(client, db, "0913000005")
    bad = await client.get("/api/v1/notifications", headers=an.headers,
                           params={"cursor": "!!not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["code"] == "notification.invalid_cursor"
    short = await client.get("/api/v1/notifications", headers=an.headers,
                             params={"cursor": "AAAA"})
    assert short.status_code == 400
    too_many = await client.get("/api/v1/notifications", headers=an.headers,
                                params={"limit": 1000})
    assert too_many.status_code == 422
    bad_id = await client.post("/api/v1/notifications/not-a-uuid/read", headers=an.headers)
    assert bad_id.status_code == 422


async def test_a_repeated_event_gives_one_inbox_row(client, db) -> None:
    an = await account(client, db, "0913000006")
    for _ in range(2):
        await service.notify(db, [an.id], "incident.status_changed",
                             {"incident_id": "i1", "status": "verified"},
                             dedupe_key="incident.status_changed:evt-1")
    await db.commit()
    page = (await client.get("/api/v1/notifications", headers=an.headers)).json()
    assert len(page["items"]) == 1
