"""Duty shifts of ward staff: declared by the staff member, ended by themselves or by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock, personal_data
from tests.notifications.helpers import account
from tests.support.flows import seed_wards

DUTY = "/api/v1/staff/duty"


async def test_ward_staff_go_on_duty_for_a_shift_that_ends_by_itself(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await seed_wards(db)
    officer = await account(client, db, "0918000001", "ward_staff", "TNG-PDP")
    colleague = await account(client, db, "0918000002", "ward_admin", "TNG-PDP")
    elsewhere = await account(client, db, "0918000003", "ward_staff", "TNG-GS")
    assert (await client.get(DUTY, headers=officer.headers)).json()["on_duty"] is False

    started = await client.put(DUTY, json={"hours": 8}, headers=officer.headers)
    assert started.status_code == 200, started.text
    shift = started.json()
    assert shift["on_duty"] is True and shift["ward_code"] == "TNG-PDP"
    until = datetime.fromisoformat(shift["until"])
    assert abs(until - (clock.now() + timedelta(hours=8))) < timedelta(seconds=5)
    await client.put(DUTY, json={}, headers=elsewhere.headers)  # another ward's shift
    seen = (await client.get(DUTY, headers=colleague.headers)).json()
    assert seen["on_duty"] is False
    assert [(s["user_id"], s["full_name"]) for s in seen["ward_on_duty"]] == [
        (str(officer.id), officer.user.full_name)
    ]

    shortened = await client.put(DUTY, json={"hours": 0.1}, headers=officer.headers)
    assert shortened.json()["until"] < shift["until"]
    clock.advance(timedelta(minutes=7))  # past the 6-minute shift
    ended = (await client.get(DUTY, headers=officer.headers)).json()
    assert ended["on_duty"] is False and ended["until"] is None and ended["ward_on_duty"] == []

    assert (await client.put(DUTY, json={}, headers=officer.headers)).json()["on_duty"] is True
    exported = await personal_data.export_all(db, officer.id)
    assert [d["ward_code"] for d in exported["staff_duty"]] == ["TNG-PDP"]
    assert (await client.delete(DUTY, headers=officer.headers)).status_code == 204
    assert (await client.get(DUTY, headers=officer.headers)).json()["on_duty"] is False


async def test_only_ward_staff_take_shifts_of_at_most_a_day(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await seed_wards(db)
    citizen = await account(client, db, "0918000011")
    city_admin = await account(client, db, "0918000012", "city_admin")
    officer = await account(client, db, "0918000013", "ward_staff", "TNG-PDP")

    assert (await client.put(DUTY, json={}, headers=citizen.headers)).status_code == 403
    refused = await client.put(DUTY, json={}, headers=city_admin.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "identity.not_ward_staff"
    for hours in (0, -1, 25, "lâu"):
        too = await client.put(DUTY, json={"hours": hours}, headers=officer.headers)
        assert too.status_code == 422, hours
    assert (await client.get(DUTY, headers=officer.headers)).json()["on_duty"] is False
