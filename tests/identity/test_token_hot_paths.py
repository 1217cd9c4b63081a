"""Behaviour of the two hot paths the benchmark measures (GET /api/v1/me, POST /auth/refresh),
pinned so that speed-ups cannot change what they answer."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa

from app.core import clock
from app.core.db import session_factory
from app.tokens import service as tokens
from app.tokens.config import get_token_settings
from app.tokens.models import AuthSession, RefreshToken
from tests.conftest import count
from tests.support.flows import PASSWORD, bearer, login, make_user


async def _signed_in(client, db, phone: str = "0912000100") -> dict:
    await make_user(db, phone, "citizen")
    return await login(client, phone)


async def _refresh(client, refresh_token: str):
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def test_refresh_gives_a_working_pair_and_links_the_spent_token(client, db):
    first = await _signed_in(client, db)

    response = await _refresh(client, first["refresh_token"])

    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["session_id"] == first["session_id"]
    assert (await client.get("/api/v1/me", headers=bearer(second))).status_code == 200
    rows = (
        (
            await db.execute(
                sa.select(RefreshToken).order_by(RefreshToken.created_at, RefreshToken.id)
            )
        )
        .scalars()
        .all()
    )
    assert len(rows) == 2
    spent, successor = rows if rows[0].used_at is not None else rows[::-1]
    assert spent.used_at is not None and successor.used_at is None
    assert spent.replaced_by_id == successor.id
    assert (await _refresh(client, second["refresh_token"])).status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_session(client, db):
    first = await _signed_in(client, db)
    second = (await _refresh(client, first["refresh_token"])).json()

    reuse = await _refresh(client, first["refresh_token"])

    assert reuse.status_code == 401
    assert reuse.json()["code"] == "auth.refresh_token_reused"
    assert (await client.get("/api/v1/me", headers=bearer(second))).status_code == 401
    later = await _refresh(client, second["refresh_token"])
    assert later.json()["code"] == "auth.refresh_token_invalid"
    revoked = (await db.execute(sa.select(AuthSession.revoke_reason))).scalar_one()
    assert revoked == "refresh_token_reuse"


async def test_unknown_refresh_token_is_invalid_and_revokes_nothing(client, db):
    signed_in = await _signed_in(client, db)

    response = await _refresh(client, "rt_not-a-token-we-made")

    assert response.status_code == 401
    assert response.json()["code"] == "auth.refresh_token_invalid"
    assert (await client.get("/api/v1/me", headers=bearer(signed_in))).status_code == 200


async def test_a_retry_within_the_grace_window_gets_another_successor(client, db):
    signed_in = await _signed_in(client, db)
    _, first_successor = await tokens.rotate_refresh_token(db, signed_in["refresh_token"])
    await db.commit()

    _, second_successor = await tokens.rotate_refresh_token(
        db, signed_in["refresh_token"], grace_seconds=30
    )
    await db.commit()

    assert second_successor != first_successor
    spent = (
        await db.execute(
            sa.select(RefreshToken).where(
                RefreshToken.token_hash == tokens.hash_refresh_token(signed_in["refresh_token"])
            )
        )
    ).scalar_one()
    newest = (
        await db.execute(
            sa.select(RefreshToken).where(
                RefreshToken.token_hash == tokens.hash_refresh_token(second_successor)
            )
        )
    ).scalar_one()
    await db.refresh(spent)
    assert spent.replaced_by_id == newest.id
    assert (await _refresh(client, second_successor)).status_code == 200


async def test_refresh_after_logout_is_invalid(client, db):
    signed_in = await _signed_in(client, db)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(signed_in))).status_code == 204

    response = await _refresh(client, signed_in["refresh_token"])

    assert response.status_code == 401
    assert response.json()["code"] == "auth.refresh_token_invalid"


async def test_access_token_stops_working_at_logout_even_after_being_accepted(client, db):
    signed_in = await _signed_in(client, db)
    assert (await client.get("/api/v1/me", headers=bearer(signed_in))).status_code == 200

    await client.post("/api/v1/auth/logout", headers=bearer(signed_in))

    response = await client.get("/api/v1/me", headers=bearer(signed_in))
    assert response.status_code == 401
    assert response.json()["code"] == "auth.token_invalid"


async def test_access_token_expires_even_after_being_accepted(client, db):
    signed_in = await _signed_in(client, db)
    assert (await client.get("/api/v1/me", headers=bearer(signed_in))).status_code == 200

    clock.advance(timedelta(seconds=get_token_settings().access_token_ttl_seconds + 1))

    assert (await client.get("/api/v1/me", headers=bearer(signed_in))).status_code == 401


async def test_a_tampered_access_token_is_refused_after_the_genuine_one_was_accepted(client, db):
    signed_in = await _signed_in(client, db)
    assert (await client.get("/api/v1/me", headers=bearer(signed_in))).status_code == 200
    header, payload, signature = signed_in["access_token"].split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    for token in (f"{header}.{payload}.{flipped}", f"{header}.{payload[:-2]}xx.{signature}"):
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


async def test_access_token_of_another_audience_is_refused(client, db):
    signed_in = await _signed_in(client, db)
    session_id = signed_in["session_id"]
    user_id = (await client.get("/api/v1/me", headers=bearer(signed_in))).json()["id"]
    other, _ = tokens.issue_access_token(
        subject=user_id, session_id=session_id, audience="some-other-client"
    )

    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"})

    assert response.status_code == 401


async def test_a_sign_in_is_committed_before_its_answer_is_sent(app, db):
    """A client may use new tokens the moment it reads them, on another connection or worker."""
    await make_user(db, "0912000101", "citizen")
    committed_at_answer: list[int] = []

    async def sessions_visible_elsewhere() -> int:
        async with session_factory()() as other:
            return await count(other, AuthSession)

    body = json.dumps({"phone": "0912000101", "password": PASSWORD}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
            committed_at_answer.append(await sessions_visible_elsewhere())

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/login",
        "raw_path": b"/api/v1/auth/login",
        "query_string": b"",
        "root_path": "",
        "client": ("203.0.113.11", 50000),
        "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
    }
    await app(scope, receive, send)

    assert committed_at_answer == [1]


async def test_a_disabled_account_cannot_refresh_and_its_session_ends(client, db):
    first = await _signed_in(client, db, "0912000102")
    await db.execute(sa.text("UPDATE users SET status = 'disabled'"))
    await db.commit()

    response = await _refresh(client, first["refresh_token"])

    assert response.status_code in (401, 403), response.text
    db.expire_all()
    auth_session = (await db.execute(sa.select(AuthSession))).scalar_one()
    assert auth_session.revoked_at is not None


async def test_my_profile_shows_declared_identity_and_in_person_verification(client, db):
    """GET /me (one direct statement) answers what the staff-side ORM view of the same account
    shows, field for field, CCCD in full to its owner."""
    from app.identity import service as identity

    tokens_ = await _signed_in(client, db, "0912000103")
    declared = await client.put(
        "/api/v1/me/identity",
        headers=bearer(tokens_),
        json={
            "cccd": "001303001234",
            "full_name": "Nguyễn Thị Bình",
            "date_of_birth": "2003-05-14",
            "gender": "female",
        },
    )
    assert declared.status_code == 200, declared.text

    me = (await client.get("/api/v1/me", headers=bearer(tokens_))).json()

    user = await identity.find_user_by_phone(db, "+84912000103")
    assert user is not None
    expected = json.loads(
        json.dumps(await identity.profile_view(db, user, owner=True), default=str)
    )
    assert me["identity"]["cccd"] == "001303001234"
    assert me["identity_level"] == 1
    assert {k: v for k, v in me.items() if k not in {"created_at", "identity"}} == {
        k: v for k, v in expected.items() if k not in {"created_at", "identity"}
    }


async def count_spent(db) -> int:
    return (
        await db.execute(
            sa.select(sa.func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.used_at.is_not(None))
        )
    ).scalar_one()
