from __future__ import annotations

from datetime import timedelta

from app.core import clock
from app.core.audit import AuditEvent
from tests.support.flows import (
    PASSWORD,
    bearer,
    last_code,
    login,
    register,
    request_code,
)


async def test_login_returns_short_lived_access_token_and_refresh_token(client, sms_log, db):
    await register(client, sms_log, "0912100001")

    tokens = await login(client, "0912100001")

    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("rt_")
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 200


async def test_access_token_expires_after_fifteen_minutes(client, sms_log, db):
    tokens = await register(client, sms_log, "0912100002")
    clock.advance(timedelta(minutes=15, seconds=1))

    response = await client.get("/api/v1/me", headers=bearer(tokens))

    assert response.status_code == 401
    assert response.json()["code"] == "auth.token_invalid"


async def test_wrong_password_and_unknown_phone_get_the_same_answer(client, sms_log, db):
    await register(client, sms_log, "0912100003")

    wrong = await client.post(
        "/api/v1/auth/login", json={"phone": "0912100003", "password": "sai-mat-khau-1"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"phone": "0912100099", "password": "sai-mat-khau-1"}
    )

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "auth.invalid_credentials"


async def test_repeated_failures_lock_with_growing_but_bounded_delay(client, sms_log, db):
    await register(client, sms_log, "0912100004")
    bad = {"phone": "0912100004", "password": "sai-mat-khau-1"}
    for _ in range(5):
        assert (await client.post("/api/v1/auth/login", json=bad)).status_code == 401

    locked = await client.post(
        "/api/v1/auth/login", json={"phone": "0912100004", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "auth.account_locked"
    first_wait = int(locked.headers["retry-after"])
    assert 0 < first_wait <= 30

    # Each further failure after the lock lifts doubles the wait, never beyond 15 minutes.
    waits = []
    for _ in range(8):
        clock.advance(timedelta(minutes=16))
        await client.post("/api/v1/auth/login", json=bad)
        response = await client.post("/api/v1/auth/login", json=bad)
        waits.append(int(response.headers["retry-after"]))
    assert waits == sorted(waits)
    assert max(waits) <= 900

    clock.advance(timedelta(minutes=16))
    assert (
        await client.post("/api/v1/auth/login", json={"phone": "0912100004", "password": PASSWORD})
    ).status_code == 200


async def test_password_reset_lifts_a_lock_and_ends_every_session(client, sms_log, db):
    first = await register(client, sms_log, "0912100005")
    second = await login(client, "0912100005")
    for _ in range(6):
        await client.post(
            "/api/v1/auth/login", json={"phone": "0912100005", "password": "sai-mat-khau-1"}
        )
    clock.advance(timedelta(seconds=61))
    await request_code(client, "0912100005", "reset_password")

    reset = await client.post(
        "/api/v1/auth/password-reset",
        json={
            "phone": "0912100005",
            "otp": last_code(sms_log, "+84912100005"),
            "new_password": "mat-khau-moi-2026",
        },
    )

    assert reset.status_code == 204
    for tokens in (first, second):
        assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 401
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert (
        await client.post(
            "/api/v1/auth/login", json={"phone": "0912100005", "password": "mat-khau-moi-2026"}
        )
    ).status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(client, sms_log, db):
    tokens = await register(client, sms_log, "0912100006")

    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["session_id"] == tokens["session_id"]

    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert replay.status_code == 401
    assert replay.json()["code"] == "auth.refresh_token_reused"

    # The thief's replay killed the family: the legitimate newest tokens die with it.
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    ).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(new))).status_code == 401


async def test_unknown_refresh_token_is_refused(client, db):
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "rt_nope"})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.refresh_token_invalid"


async def test_logout_ends_the_session_only(client, sms_log, db):
    phone_tokens = await register(client, sms_log, "0912100007")
    tablet_tokens = await login(client, "0912100007")

    assert (
        await client.post("/api/v1/auth/logout", headers=bearer(phone_tokens))
    ).status_code == 204

    assert (await client.get("/api/v1/me", headers=bearer(phone_tokens))).status_code == 401
    assert (
        await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": phone_tokens["refresh_token"]}
        )
    ).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(tablet_tokens))).status_code == 200


async def test_sessions_are_listed_and_one_can_be_revoked(client, sms_log, db):
    mine = await register(client, sms_log, "0912100008")
    other = await client.post(
        "/api/v1/auth/login",
        json={"phone": "0912100008", "password": PASSWORD, "device_name": "Máy tính bảng"},
        headers={"User-Agent": "TN-App/2.1 (Android 15)"},
    )
    other_tokens = other.json()

    listed = (await client.get("/api/v1/me/sessions", headers=bearer(mine))).json()
    assert len(listed) == 2
    tablet = next(s for s in listed if s["device_name"] == "Máy tính bảng")
    assert tablet["user_agent"] == "TN-App/2.1 (Android 15)"
    assert tablet["ip"] == "203.0.113.10"
    assert [s["current"] for s in listed].count(True) == 1

    revoked = await client.delete(f"/api/v1/me/sessions/{tablet['id']}", headers=bearer(mine))
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(other_tokens))).status_code == 401


async def test_a_citizen_cannot_revoke_someone_elses_session(client, sms_log, db):
    alice = await register(client, sms_log, "0912100009")
    bob = await register(client, sms_log, "0912100010")

    response = await client.delete(
        f"/api/v1/me/sessions/{bob['session_id']}", headers=bearer(alice)
    )

    assert response.status_code == 404
    assert (await client.get("/api/v1/me", headers=bearer(bob))).status_code == 200


async def test_tampered_or_missing_token_is_refused(client, sms_log, db):
    tokens = await register(client, sms_log, "0912100011")
    head, payload, signature = tokens["access_token"].split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"

    for headers in (
        {},
        {"Authorization": f"Bearer {tampered}"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic abc"},
    ):
        response = await client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


async def test_sign_ins_and_failures_are_audited(client, sms_log, db):
    await register(client, sms_log, "0912100012")
    await client.post(
        "/api/v1/auth/login", json={"phone": "0912100012", "password": "sai-mat-khau-1"}
    )
    await login(client, "0912100012")

    actions = [e.action for e in (await db.execute(AuditEvent.__table__.select())).all()]
    assert "identity.registered" in actions
    assert "identity.login_failed" in actions
    assert "identity.login" in actions


async def test_a_raised_argon2_cost_upgrades_the_hash_at_next_sign_in(
    client, sms_log, db, monkeypatch
):
    import sqlalchemy as sa

    from app.core import security
    from app.core.config import get_settings
    from app.identity.models import User

    await register(client, sms_log, "0912100013")
    old_hash = (await db.execute(sa.select(User.password_hash))).scalar_one()
    monkeypatch.setenv("PASSWORD_HASH_TIME_COST", "2")
    get_settings.cache_clear()
    security._hasher.cache_clear()
    try:
        await login(client, "0912100013")
        new_hash = (await db.execute(sa.select(User.password_hash))).scalar_one()
        assert new_hash != old_hash and ",t=2," in new_hash
        await login(client, "0912100013")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        security._hasher.cache_clear()
