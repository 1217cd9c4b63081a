"""The refresh_token grant, rule by rule: what it stores, what it signs, and who it refuses.

The rotation is the token service's one (`app.tokens.service.rotate_refresh_token`), in the
request's transaction, on both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.audit import AuditContext, AuditEvent
from app.identity.models import User
from app.oauth import service
from app.oauth.clients import client_view
from app.tokens import service as tokens
from app.tokens.models import AuthSession, RefreshToken
from tests.oauth.support import Browser, exchange, make_client, refresh

pytestmark = pytest.mark.slow


@pytest.fixture
async def tokens_of_rp(live_url: str, rp: Any, browser: Browser) -> dict[str, Any]:
    code, verifier, _ = await browser.code_for(
        rp.client.id, scope="openid profile phone offline_access"
    )
    answer = await exchange(live_url, rp, code, verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _refresh_with(live_url: str, rp: Any, token: str, **extra: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token, **extra},
            auth=(rp.client.id, rp.client_secret),
        )


async def _token_row(db: AsyncSession, token: str) -> RefreshToken:
    return (
        await db.execute(
            sa.select(RefreshToken)
            .where(RefreshToken.token_hash == tokens.hash_refresh_token(token))
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def test_a_refresh_spends_the_token_links_its_successor_and_touches_the_session(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any], db: AsyncSession
) -> None:
    before = await _token_row(db, tokens_of_rp["refresh_token"])
    clock.advance(timedelta(minutes=3))
    answer = await refresh(live_url, rp, tokens_of_rp["refresh_token"])
    assert answer.status_code == 200, answer.text
    spent = await _token_row(db, tokens_of_rp["refresh_token"])
    successor = await _token_row(db, answer.json()["refresh_token"])
    assert spent.used_at is not None
    assert spent.replaced_by_id == successor.id
    assert successor.session_id == before.session_id and successor.used_at is None
    family = await db.get(AuthSession, before.session_id, populate_existing=True)
    assert family is not None and family.last_used_at == spent.used_at
    assert family.last_used_at - before.created_at >= timedelta(minutes=3)
    assert family.ip == "127.0.0.1"


async def test_every_refresh_is_in_the_audit_log(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any], db: AsyncSession
) -> None:
    first = (await refresh(live_url, rp, tokens_of_rp["refresh_token"])).json()
    await refresh(live_url, rp, first["refresh_token"])
    family = (await _token_row(db, first["refresh_token"])).session_id
    entries = (
        (
            await db.execute(
                sa.select(AuditEvent)
                .where(
                    AuditEvent.action == "oauth.token_issued",
                    AuditEvent.resource == f"oauth_client:{rp.client.id}",
                )
                .order_by(AuditEvent.at)
            )
        )
        .scalars()
        .all()
    )
    issued = [e.details for e in entries]
    assert issued[0]["grant_type"] == "authorization_code"
    assert issued[1:] == [{"grant_type": "refresh_token", "session_id": str(family)}] * 2
    owner = (await db.execute(sa.select(User.id))).scalar_one()
    assert all(e.subject_id == owner and e.ip == "127.0.0.1" and e.request_id for e in entries[1:])


async def test_the_refreshed_id_token_is_signed_with_the_clients_alg_and_names_its_key(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, id_token_alg="ES256")
    code, verifier, _ = await browser.code_for(rp.client.id)
    first = (await exchange(live_url, rp, code, verifier)).json()
    answer = (await refresh(live_url, rp, first["refresh_token"])).json()
    async with httpx.AsyncClient(base_url=live_url) as http:
        keys = KeySet.import_key_set((await http.get("/oauth/jwks")).json())
    before = jwt.decode(first["id_token"], keys, algorithms=["ES256"])
    after = jwt.decode(answer["id_token"], keys, algorithms=["ES256"])
    assert after.header["alg"] == "ES256" and after.header["kid"] and after.header["typ"] == "JWT"
    for claim in ("sub", "aud", "sid", "acr", "auth_time"):
        assert after.claims[claim] == before.claims[claim]
    assert after.claims["at_hash"] != before.claims["at_hash"]
    access = jwt.decode(answer["access_token"], keys, algorithms=["ES256"])
    assert access.header["typ"] == "at+jwt" and access.claims["sid"] == before.claims["sid"]


async def test_a_refresh_may_narrow_the_scope_but_never_widen_it(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any]
) -> None:
    wider = await _refresh_with(
        live_url, rp, tokens_of_rp["refresh_token"], scope="openid profile phone address"
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrower = await _refresh_with(live_url, rp, tokens_of_rp["refresh_token"], scope="phone")
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "phone" and "id_token" not in narrower.json()
    # The family keeps what was granted: its next refresh may ask for all of it again.
    again = await _refresh_with(
        live_url, rp, narrower.json()["refresh_token"], scope="openid profile phone"
    )
    assert again.status_code == 200 and again.json()["id_token"]


async def test_a_refresh_of_a_disabled_account_is_refused(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any], db: AsyncSession
) -> None:
    await db.execute(sa.update(User).values(status="disabled"))
    await db.commit()
    refused = await refresh(live_url, rp, tokens_of_rp["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert (await _token_row(db, tokens_of_rp["refresh_token"])).used_at is None


async def test_a_refresh_after_the_citizen_withdrew_consent_is_refused(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any], db: AsyncSession
) -> None:
    owner = (await db.execute(sa.select(User))).scalar_one()
    await service.revoke_app(db, owner, rp.client.id, AuditContext())
    await db.commit()
    refused = await refresh(live_url, rp, tokens_of_rp["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_two_concurrent_refreshes_with_one_token_are_both_served(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any], db: AsyncSession
) -> None:
    answers = await asyncio.gather(
        *(refresh(live_url, rp, tokens_of_rp["refresh_token"]) for _ in range(2))
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    successors = {a.json()["refresh_token"] for a in answers}
    assert len(successors) == 2
    for successor in successors:
        assert (await refresh(live_url, rp, successor)).status_code == 200


async def _stale_read(db: AsyncSession, rp: Any, token: str) -> service.Grantee:
    """What the token endpoint read for `token` before another request spent it."""
    grantee = await service.lookup_refresh(db, token, rp.client.id)
    assert grantee is not None
    await db.commit()  # ends the read (not a rollback: that would expire the fixtures' rows)
    return grantee


async def test_a_rotation_that_lost_a_race_inside_the_grace_window_gets_its_own_successor(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any], db: AsyncSession
) -> None:
    presented = tokens_of_rp["refresh_token"]
    grantee = await _stale_read(db, rp, presented)
    assert (await refresh(live_url, rp, presented)).status_code == 200  # the other request
    client = await client_view(db, rp.client.id)
    assert client is not None
    successor = tokens.new_refresh_token()
    await service.commit_refresh(db, client.row, grantee, successor, ctx=AuditContext())
    await db.commit()
    assert (await refresh(live_url, rp, successor)).status_code == 200


async def test_a_rotation_that_lost_a_race_after_the_grace_window_revokes_the_family(
    live_url: str, rp: Any, tokens_of_rp: dict[str, Any], db: AsyncSession
) -> None:
    presented = tokens_of_rp["refresh_token"]
    grantee = await _stale_read(db, rp, presented)
    winner = (await refresh(live_url, rp, presented)).json()
    clock.advance(timedelta(seconds=30))
    client = await client_view(db, rp.client.id)
    assert client is not None
    with pytest.raises(service.GrantRefused) as refused:
        await service.commit_refresh(
            db, client.row, grantee, tokens.new_refresh_token(), ctx=AuditContext()
        )
    assert refused.value.commit
    await db.commit()
    assert (await refresh(live_url, rp, winner["refresh_token"])).json()["error"] == "invalid_grant"
    revoked = (
        (await db.execute(sa.select(AuditEvent).where(AuditEvent.action == "oauth.token_revoked")))
        .scalars()
        .all()
    )
    assert [e.details["reason"] for e in revoked] == ["refresh_token_reuse"]
