"""Devices: register, move between accounts, delete; tokens go with logout and deletion."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.db import session_factory
from app.core.jobs import schedule_periodic
from app.notifications import service
from app.notifications.models import Device
from app.tokens import service as tokens
from tests.notifications.helpers import account, add_device, devices_of, sign_in
from tests.support.flows import run_jobs


async def test_citizen_registers_a_device_and_sees_it(client, db: AsyncSession) -> None:
    an = await account(client, db, "0912000001")
    body = await add_device(client, an, "tok-a", platform="ios")
    assert body["platform"] == "ios" and body["token"] == "tok-a"
    listed = (await client.get("/api/v1/devices", headers=an.headers)).json()["items"]
    assert [d["token"] for d in listed] == ["tok-a"]


async def test_registering_the_same_token_again_keeps_one_device(client, db) -> None:
    an = await account(client, db, "0912000002")
    first = await add_device(client, an, "tok-same")
    second = await add_device(client, an, "tok-same", platform="web")
    assert first["id"] == second["id"]
    devices = await devices_of(an.id)
    assert len(devices) == 1 and devices[0].platform == "web"


async def test_a_token_moves_to_the_account_that_registers_it_last(client, db) -> None:
    an = await account(client, db, "0912000003")
    binh = await account(client, db, "0912000004")
    await add_device(client, an, "tok-shared-phone")
    await add_device(client, binh, "tok-shared-phone")
    assert await devices_of(an.id) == []
    assert [d.token for d in await devices_of(binh.id)] == ["tok-shared-phone"]
    # The previous owner can no longer remove it: it is not theirs any more.
    gone = await client.delete("/api/v1/devices/tok-shared-phone", headers=an.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "device.not_found"


async def test_citizen_deletes_own_device(client, db) -> None:
    an = await account(client, db, "0912000005")
    await add_device(client, an, "tok-del")
    response = await client.delete("/api/v1/devices/tok-del", headers=an.headers)
    assert response.status_code == 204
    assert await devices_of(an.id) == []
    again = await client.delete("/api/v1/devices/tok-del", headers=an.headers)
    assert again.status_code == 404


async def test_device_registration_needs_sign_in_and_a_valid_body(client, db) -> None:
    an = await account(client, db, "0912000006")
    anonymous = await client.post("/api/v1/devices", json={"token": "x", "platform": "android"})
    assert anonymous.status_code == 401
    bad = await client.post(
        "/api/v1/devices", headers=an.headers, json={"token": "x", "platform": "symbian"}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "request.validation_failed"
    empty = await client.post(
        "/api/v1/devices", headers=an.headers, json={"token": "", "platform": "android"}
    )
    assert empty.status_code == 422


async def test_oldest_devices_are_dropped_beyond_the_limit(client, db, settings_env) -> None:
    settings_env.set(push_max_devices_per_user=2)
    an = await account(client, db, "0912000007")
    for token in ("tok-1", "tok-2", "tok-3"):
        await add_device(client, an, token)
    assert sorted(d.token for d in await devices_of(an.id)) == ["tok-2", "tok-3"]


async def test_logout_of_a_session_removes_only_its_tokens(client, db) -> None:
    """What identity calls at logout: the session's tokens go, other sessions' stay."""
    an = await account(client, db, "0912000008")
    other = await sign_in(db, an.user)
    await add_device(client, an, "tok-phone")
    response = await client.post(
        "/api/v1/devices",
        json={"token": "tok-tablet", "platform": "android"},
        headers=other.headers,
    )
    assert response.status_code == 200
    async with session_factory()() as session, session.begin():
        removed = await service.remove_devices_of_session(
            session, uuid.UUID(an.tokens["session_id"])
        )
    assert removed == 1
    assert [d.token for d in await devices_of(an.id)] == ["tok-tablet"]


async def test_logout_endpoint_removes_the_sessions_tokens(client, db) -> None:
    an = await account(client, db, "0912000009")
    await add_device(client, an, "tok-logout")
    response = await client.post("/api/v1/auth/logout", headers=an.headers)
    assert response.status_code == 204
    assert await devices_of(an.id) == []


async def test_revoking_a_session_from_the_sessions_list_removes_its_tokens(client, db) -> None:
    an = await account(client, db, "0912000031")
    other = await sign_in(db, an.user)
    await add_device(client, other, "tok-old-phone")
    await add_device(client, an, "tok-current")

    response = await client.delete(
        f"/api/v1/me/sessions/{other.tokens['session_id']}", headers=an.headers
    )

    assert response.status_code == 204
    assert [d.token for d in await devices_of(an.id)] == ["tok-current"]


async def test_a_stolen_refresh_token_replayed_removes_the_familys_tokens(client, db) -> None:
    an = await account(client, db, "0912000032")
    await add_device(client, an, "tok-family")
    first = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": an.tokens["refresh_token"]}
    )
    assert first.status_code == 200

    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": an.tokens["refresh_token"]}
    )

    assert replay.json()["code"] == "auth.refresh_token_reused"
    assert await devices_of(an.id) == []


async def test_password_reset_removes_every_token(client, db, sms_log) -> None:
    from tests.support.flows import last_code, request_code

    an = await account(client, db, "0912000033", with_password=True)
    await add_device(client, an, "tok-a")
    await add_device(client, await sign_in(db, an.user), "tok-b")
    await request_code(client, "0912000033", "reset_password")

    response = await client.post(
        "/api/v1/auth/password-reset",
        json={
            "phone": "0912000033",
            "otp": last_code(sms_log, "+84912000033"),
            "new_password": "mat-khau-moi-2026",
        },
    )

    assert response.status_code == 204
    assert await devices_of(an.id) == []


async def _run_device_purge() -> None:
    """The hourly job, as a worker schedules and runs it."""
    await schedule_periodic(session_factory())
    await run_jobs()


async def test_tokens_of_a_session_that_expired_are_purged_by_the_hourly_job(
    client, db, settings_env
) -> None:
    settings_env.set(refresh_token_ttl_days=30)
    an = await account(client, db, "0912000020")
    await add_device(client, an, "tok-expiring")
    clock.advance(timedelta(days=20))
    fresh_login = await sign_in(db, an.user)  # signed in again since, on another phone
    await add_device(client, fresh_login, "tok-current")
    await _run_device_purge()
    assert sorted(d.token for d in await devices_of(an.id)) == ["tok-current", "tok-expiring"]
    clock.advance(timedelta(days=11))  # the first session's 30 days are over
    await _run_device_purge()
    assert [d.token for d in await devices_of(an.id)] == ["tok-current"]


async def test_tokens_of_a_session_revoked_elsewhere_are_purged(client, db) -> None:
    an = await account(client, db, "0912000021")
    other = await account(client, db, "0912000022")
    await add_device(client, an, "tok-revoked")
    await add_device(client, other, "tok-kept")
    # Revoked without identity's logout path (which would have removed the token at once).
    async with session_factory()() as session, session.begin():
        await tokens.revoke_session(session, uuid.UUID(an.tokens["session_id"]), reason="admin")
    await _run_device_purge()
    assert await devices_of(an.id) == []
    assert [d.token for d in await devices_of(other.id)] == ["tok-kept"]


async def test_tokens_not_registered_again_for_270_days_are_purged(client, db) -> None:
    an = await account(client, db, "0912000023")
    await add_device(client, an, "tok-forgotten")
    async with session_factory()() as session, session.begin():
        await session.execute(
            sa.update(Device).values(auth_session_id=None, last_seen_at=clock.now())
        )
    clock.advance(timedelta(days=service.INACTIVE_DEVICE_DAYS - 1))
    await _run_device_purge()
    assert [d.token for d in await devices_of(an.id)] == ["tok-forgotten"]
    clock.advance(timedelta(days=2))
    await _run_device_purge()
    assert await devices_of(an.id) == []
