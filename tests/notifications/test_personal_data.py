"""The citizen's export includes their devices, preferences and inbox; deletion erases them."""

from __future__ import annotations

from app.notifications import service
from tests.notifications.helpers import account, add_device, devices_of, inbox_rows, sign_in
from tests.support.flows import PASSWORD


async def test_export_then_account_deletion_erases_inbox_and_every_token(client, db) -> None:
    an = await account(client, db, "0918000001", with_password=True)
    await add_device(client, an, "tok-export")
    await add_device(client, await sign_in(db, an.user), "tok-other-session", platform="web")
    await client.put("/api/v1/notification-preferences", headers=an.headers,
                     json={"quiet_hours": {"start": "21:00", "end": "07:00"}})
    await service.notify(db, [an.user.id], "incident.status_changed",
                         {"incident_id": "i-1", "status": "resolved"})
    await db.commit()
    exported = (await client.get("/api/v1/me/export", headers=an.headers)).json()
    mine = exported["notifications"]
    assert sorted(d["token"] for d in mine["devices"]) == ["tok-export", "tok-other-session"]
    assert mine["preferences"]["quiet_start"] == "21:00"
    assert [n["kind"] for n in mine["inbox"]] == ["incident.status_changed"]
    user_id = an.user.id
    deleted = await client.request("DELETE", "/api/v1/me", headers=an.headers,
                                   json={"password": PASSWORD})
    assert deleted.status_code == 200
    assert "notifications" in deleted.json()["erased"]
    assert await inbox_rows(user_id) == []
    assert await devices_of(user_id) == []
