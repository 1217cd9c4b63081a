"""Attacks on partner sessions: a level the citizen lost, another user's logout hint, refresh
tokens a partner was never allowed, token answers cached on the way."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import AuditContext
from app.core.jobs import Job
from app.identity import service as identity
from app.identity.models import User
from app.oauth.service import BACKCHANNEL_LOGOUT
from app.tokens import service as token_service
from app.tokens.models import AuthSession, RefreshToken
from tests.oauth.support import (
    Browser,
    base_params,
    exchange,
    hidden_fields,
    id_token_claims,
    make_citizen,
    make_client,
    query_of,
    refresh,
)
from tests.support.flows import bearer, login, make_user, seed_wards
from tests.support.servers import forwarded_for, two_server_processes

pytestmark = pytest.mark.slow

CCCD = "019190123456"  # Thái Nguyên, female born 1990
LOA = "urn:thainguyen:id:loa:"
BCL = "https://rp.example.vn/backchannel-logout"
WARD = "TNG-PDP"


async def _citizen(db: AsyncSession) -> User:
    return (await db.execute(sa.select(User).where(User.phone == "+84912345678"))).scalar_one()


async def _verified_at_level_2(client: httpx.AsyncClient, db: AsyncSession) -> tuple[str, dict]:
    """The browser's citizen, declared and verified in person by their ward's staff."""
    await seed_wards(db)
    await make_user(db, "0981000101", "ward_staff", WARD)
    staff = await login(client, "0981000101")
    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(ward_code=WARD))
    await db.commit()
    citizen = await _citizen(db)
    await identity.declare_identity(
        db,
        citizen,
        cccd=CCCD,
        full_name="Nguyễn Thị Lan",
        date_of_birth=date(1990, 3, 8),
        gender="female",
        ctx=AuditContext(),
    )
    await db.commit()
    verified = await client.post(
        f"/api/v1/staff/citizens/{citizen.id}/verifications",
        json={"document_kind": "cccd_chip", "cccd": CCCD},
        headers=bearer(staff),
    )
    assert verified.status_code == 201, verified.text
    return str(citizen.id), staff


async def _signed_in(live_url: str, browser: Browser, rp: Any, **extra: str) -> dict[str, Any]:
    code, verifier, _ = await browser.code_for(
        rp.client.id, scope="openid profile offline_access", extra=extra or None
    )
    answer = await exchange(live_url, rp, code, verifier)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _introspect(live_url: str, rp: Any, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/introspect", data={"token": token}, auth=(rp.client.id, rp.client_secret)
        )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _partner(db: AsyncSession, name: str, **options: Any) -> Any:
    return make_client(
        db, name=name, scope="openid profile offline_access", backchannel_logout_uri=BCL, **options
    )


async def test_revoking_level_2_caps_or_ends_the_partner_sessions_that_relied_on_it(
    live_url: str, browser: Browser, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    citizen_id, staff = await _verified_at_level_2(client, db)
    casual = await _partner(db, "Không yêu cầu mức")  # min_loa 0: informed, not reliant
    strict = await _partner(db, "Yêu cầu mức 2", min_loa=2)
    asked = await _partner(db, "Hỏi mức 2 qua acr_values")
    tokens = {
        "casual": await _signed_in(live_url, browser, casual),
        "strict": await _signed_in(live_url, browser, strict),
        "asked": await _signed_in(live_url, browser, asked, acr_values=f"{LOA}2"),
    }
    for answer in tokens.values():
        assert (await id_token_claims(live_url, answer["id_token"]))["acr"] == f"{LOA}2"

    revoked = await client.post(
        f"/api/v1/staff/citizens/{citizen_id}/verifications/revoke",
        json={"reason": "Giấy tờ bị báo mất"},
        headers=bearer(staff),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["identity_level"] == 1

    # The partner that did not require level 2 keeps its session, which now says level 1:
    # refreshed ID and access tokens, and introspection of the token signed before.
    assert (await _introspect(live_url, casual, tokens["casual"]["access_token"]))[
        "acr"
    ] == f"{LOA}1"
    refreshed = await refresh(live_url, casual, tokens["casual"]["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert (await id_token_claims(live_url, refreshed.json()["id_token"]))["acr"] == f"{LOA}1"
    assert (await _introspect(live_url, casual, refreshed.json()["access_token"]))[
        "acr"
    ] == f"{LOA}1"

    # The partners that required level 2 have their sessions ended, and are told.
    ended_sids = set()
    for name, rp in (("strict", strict), ("asked", asked)):
        assert (await refresh(live_url, rp, tokens[name]["refresh_token"])).json()[
            "error"
        ] == "invalid_grant"
        assert (await _introspect(live_url, rp, tokens[name]["access_token"])) == {"active": False}
        ended_sids.add((await id_token_claims(live_url, tokens[name]["id_token"]))["sid"])
    jobs = (await db.execute(sa.select(Job).where(Job.kind == BACKCHANNEL_LOGOUT))).scalars()
    assert {job.payload["sid"] for job in jobs} == ended_sids
    live = await db.execute(
        sa.select(AuthSession.acr).where(
            AuthSession.user_id == (await _citizen(db)).id, AuthSession.revoked_at.is_(None)
        )
    )
    assert set(live.scalars()) <= {f"{LOA}0", f"{LOA}1"}  # browser and app sessions too


async def test_a_refresh_reads_the_level_the_citizen_has_now(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    """Even if a level changed without the sessions being capped, a refresh or an
    introspection never says more than the account's level now."""
    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(identity_level=2))
    await db.commit()
    rp = await _partner(db, "Đối tác")
    first = await _signed_in(live_url, browser, rp)
    assert (await id_token_claims(live_url, first["id_token"]))["acr"] == f"{LOA}2"
    await db.execute(
        sa.update(User).where(User.phone == "+84912345678").values(identity_level=1)
    )  # behind the token service's back
    await db.commit()
    refreshed = await refresh(live_url, rp, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert (await id_token_claims(live_url, refreshed.json()["id_token"]))["acr"] == f"{LOA}1"
    assert (await _introspect(live_url, rp, refreshed.json()["access_token"]))["acr"] == f"{LOA}1"


async def test_a_partner_requiring_level_2_gets_no_refresh_once_the_level_fell(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(identity_level=2))
    await db.commit()
    rp = await _partner(db, "Yêu cầu mức 2", min_loa=2)
    first = await _signed_in(live_url, browser, rp)
    await db.execute(
        sa.update(User).where(User.phone == "+84912345678").values(identity_level=1)
    )  # behind the token service's back
    await db.commit()
    assert (await refresh(live_url, rp, first["refresh_token"])).json()["error"] == "invalid_grant"


async def _browser_signed_in(browser: Browser, rp: Any) -> bool:
    """Whether the browser's sign-in still holds (prompt=none gets a code)."""
    _, params = base_params(rp.client.id, prompt="none")
    answer = await browser.authorize(params)
    return answer.status_code == 302 and "code" in query_of(answer.headers["location"])


async def test_another_citizens_id_token_hint_does_not_sign_this_browser_out_unasked(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await _partner(db, "Đối tác")
    alice_tokens = await _signed_in(live_url, browser, rp)
    await make_citizen(db, phone="0912345679")
    bob = Browser(live_url)
    try:
        await bob.code_for(rp.client.id, phone="0912345679")
        # A link (or a page) makes Bob's browser present Alice's ID token as the hint.
        page = await bob.http.get(
            "/oauth/logout",
            params={
                "id_token_hint": alice_tokens["id_token"],
                "post_logout_redirect_uri": "https://rp.example.vn/bye",
            },
        )
        assert page.status_code == 200 and 'name="confirm"' in page.text  # asked, not done
        assert await _browser_signed_in(bob, rp)
        assert await _browser_signed_in(browser, rp)
        assert (await refresh(live_url, rp, alice_tokens["refresh_token"])).status_code == 200
        # A forged confirmation (no CSRF token) changes nothing either.
        forged = {**hidden_fields(page.text), "csrf_token": "x" * 40}
        assert (await bob.http.post("/oauth/logout", data=forged)).status_code == 200
        assert await _browser_signed_in(bob, rp)
        # Bob confirms: Bob is signed out; Alice's sessions are not Bob's to end.
        done = await bob.http.post("/oauth/logout", data=hidden_fields(page.text))
        assert done.status_code == 302
        assert done.headers["location"].startswith("https://rp.example.vn/bye")
        assert not await _browser_signed_in(bob, rp)
        assert await _browser_signed_in(browser, rp)
        links = await db.execute(
            sa.select(AuthSession.revoked_at).where(AuthSession.user_id == (await _citizen(db)).id)
        )
        assert all(revoked is None for revoked in links.scalars())
    finally:
        await bob.close()


async def test_the_citizens_own_id_token_hint_signs_out_without_asking(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await _partner(db, "Đối tác")
    tokens = await _signed_in(live_url, browser, rp)
    bye = await browser.http.get("/oauth/logout", params={"id_token_hint": tokens["id_token"]})
    assert bye.status_code == 200 and 'name="confirm"' not in bye.text
    assert not await _browser_signed_in(browser, rp)
    assert (await refresh(live_url, rp, tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_token_bearing_answers_are_never_stored_by_a_cache(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    """RFC 6749 5.1 and OIDC Core 5.3.2: a shared cache on the way must keep no token."""
    rp = await _partner(
        db, "Đối tác", grant_types=["authorization_code", "refresh_token", "client_credentials"]
    )
    code, verifier, _ = await browser.code_for(rp.client.id, scope="openid profile offline_access")
    answers = {"code": await exchange(live_url, rp, code, verifier)}
    tokens = answers["code"].json()
    answers["refresh"] = await refresh(live_url, rp, tokens["refresh_token"])
    auth = (rp.client.id, rp.client_secret)
    async with httpx.AsyncClient(base_url=live_url) as http:
        answers["client_credentials"] = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=auth
        )
        access = answers["refresh"].json()["access_token"]
        answers["userinfo"] = await http.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {access}"}
        )
        answers["introspect"] = await http.post(
            "/oauth/introspect", data={"token": access}, auth=auth
        )
        answers["refused"] = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": "rt_unknown"},
            auth=auth,
        )
        answers["par"] = await http.post("/oauth/par", data=base_params(rp.client.id)[1], auth=auth)
    for name in ("code", "refresh", "client_credentials"):
        assert "access_token" in answers[name].json(), (name, answers[name].text)
    for name, answer in answers.items():
        assert answer.status_code < 500, (name, answer.text)
        assert answer.headers.get("cache-control") == "no-store", name
        assert answer.headers.get("pragma") == "no-cache", name


async def test_a_partner_gets_a_refresh_token_only_with_offline_access_consented(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    """OIDC Core 11: a refresh token (access while the citizen is away) only with the
    offline_access scope, which the citizen was asked for on the consent page."""
    rp = await _partner(db, "Đối tác")
    code, verifier, _ = await browser.code_for(rp.client.id, scope="openid profile")
    online = (await exchange(live_url, rp, code, verifier)).json()
    assert "access_token" in online and "refresh_token" not in online
    # The consent given for "openid profile" does not cover offline access: asked again.
    _, params = base_params(rp.client.id, prompt="none")
    answer = query_of((await browser.authorize(params)).headers["location"])
    assert answer["error"] == "consent_required" and "code" not in answer
    consent_page = await browser.follow_until_client(
        await browser.authorize(base_params(rp.client.id)[1]), consent=None
    )
    assert "Truy cập khi bạn không mở ứng dụng" in consent_page.text  # offline_access, shown
    offline = await _signed_in(live_url, browser, rp)
    assert offline["refresh_token"] and "offline_access" in offline["scope"].split()


async def test_a_partner_not_registered_for_offline_access_gets_no_refresh_token(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, name="Chỉ trực tuyến", scope="openid profile")
    answer = await _signed_in(live_url, browser, rp)  # asks for offline_access anyway
    assert "refresh_token" not in answer and "offline_access" not in answer["scope"].split()


async def test_a_first_party_client_gets_offline_access_without_a_consent_page(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await make_client(db, name="Cổng dịch vụ công", first_party=True)
    code, verifier, _ = await browser.code_for(rp.client.id, consent=None)
    answer = (await exchange(live_url, rp, code, verifier)).json()
    assert answer["refresh_token"]
    assert (await refresh(live_url, rp, answer["refresh_token"])).status_code == 200


async def test_one_partner_refresh_token_presented_at_once_everywhere_has_one_successor_at_most(
    live_url: str, browser: Browser, db: AsyncSession, backend: str
) -> None:
    """Two server processes; no grace window for retries (OAUTH_REFRESH_GRACE_SECONDS=0): the
    atomic spend lets one request win, every other one is reuse and ends the family."""
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    rp = await _partner(db, "Đối tác")
    presented = (await _signed_in(live_url, browser, rp))["refresh_token"]
    family_id = (
        await db.execute(
            sa.select(RefreshToken.session_id).where(
                RefreshToken.token_hash == token_service.hash_refresh_token(presented)
            )
        )
    ).scalar_one()
    await db.commit()
    with two_server_processes({"OAUTH_REFRESH_GRACE_SECONDS": "0"}) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/oauth/token",
                        data={"grant_type": "refresh_token", "refresh_token": presented},
                        auth=(rp.client.id, rp.client_secret),
                        headers=forwarded_for(n),
                    )
                    for n in range(24)
                )
            )
    served = [a for a in answers if a.status_code == 200]
    assert len(served) <= 1, [a.text for a in served]
    refused = [a for a in answers if a.status_code != 200]
    assert refused and {(a.status_code, a.json().get("error")) for a in refused} == {
        (400, "invalid_grant")
    }, {a.text for a in refused}
    rows = (
        (await db.execute(sa.select(RefreshToken).where(RefreshToken.session_id == family_id)))
        .scalars()
        .all()
    )
    assert len(rows) <= 2  # the token presented and at most one successor
    family = (
        await db.execute(
            sa.select(AuthSession)
            .where(AuthSession.id == family_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert family.revoked_at is not None and family.revoke_reason == "refresh_token_reuse"
    for answer in served:  # the successor the winner got died with its family
        assert (await refresh(live_url, rp, answer.json()["refresh_token"])).json()[
            "error"
        ] == "invalid_grant"


async def test_a_code_issued_before_the_level_fell_says_the_level_now(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(identity_level=2))
    await db.commit()
    casual = await _partner(db, "Không yêu cầu mức")
    strict = await _partner(db, "Yêu cầu mức 2", min_loa=2)
    codes = {rp.client.id: await browser.code_for(rp.client.id) for rp in (casual, strict)}
    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(identity_level=1))
    await db.commit()
    code, verifier, _ = codes[casual.client.id]
    answer = (await exchange(live_url, casual, code, verifier)).json()
    assert (await id_token_claims(live_url, answer["id_token"]))["acr"] == f"{LOA}1"
    code, verifier, _ = codes[strict.client.id]
    refused = await exchange(live_url, strict, code, verifier)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_the_grace_window_serves_one_retry_and_a_third_presentation_is_reuse(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    rp = await _partner(db, "Đối tác")
    presented = (await _signed_in(live_url, browser, rp))["refresh_token"]
    first = await refresh(live_url, rp, presented)
    retry = await refresh(live_url, rp, presented)  # the first answer was lost: served
    assert first.status_code == retry.status_code == 200
    third = await refresh(live_url, rp, presented)  # within the window still, but a third use
    assert third.status_code == 400 and third.json()["error"] == "invalid_grant"
    for served in (first, retry):
        assert (await refresh(live_url, rp, served.json()["refresh_token"])).json()[
            "error"
        ] == "invalid_grant"


async def test_a_burst_inside_the_grace_window_is_reuse_not_a_fork_of_the_family(
    live_url: str, browser: Browser, db: AsyncSession, backend: str
) -> None:
    """With the default grace window (a lost answer's retry is served), 24 presentations at
    once on two processes do not fork the family into 24 live branches: one retry at most,
    then reuse, which ends the family."""
    if backend != "postgresql":
        pytest.skip("the two-process race runs on PostgreSQL")
    rp = await _partner(db, "Đối tác")
    presented = (await _signed_in(live_url, browser, rp))["refresh_token"]
    family_id = (
        await db.execute(
            sa.select(RefreshToken.session_id).where(
                RefreshToken.token_hash == token_service.hash_refresh_token(presented)
            )
        )
    ).scalar_one()
    await db.commit()
    with two_server_processes() as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/oauth/token",
                        data={"grant_type": "refresh_token", "refresh_token": presented},
                        auth=(rp.client.id, rp.client_secret),
                        headers=forwarded_for(n),
                    )
                    for n in range(24)
                )
            )
    served = [a for a in answers if a.status_code == 200]
    assert len(served) <= 2, [a.text for a in served]
    assert {(a.status_code, a.json().get("error")) for a in answers if a.status_code != 200} == {
        (400, "invalid_grant")
    }
    rows = (
        (await db.execute(sa.select(RefreshToken).where(RefreshToken.session_id == family_id)))
        .scalars()
        .all()
    )
    assert len(rows) <= 3  # the token presented, its successor and one retry's at most
    family = (
        await db.execute(
            sa.select(AuthSession)
            .where(AuthSession.id == family_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert family.revoked_at is not None and family.revoke_reason == "refresh_token_reuse"
