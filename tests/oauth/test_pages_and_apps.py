"""The login and consent pages (language, CSRF, brute-force protection), the citizen's list of
allowed apps, logout edge cases, and the audit trail."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import AuditEvent
from app.core.jobs import Job
from app.oauth.service import BACKCHANNEL_LOGOUT
from tests.oauth.support import (
    Browser,
    base_params,
    exchange,
    hidden_fields,
    make_client,
    query_of,
    userinfo,
)
from tests.support.flows import PASSWORD

pytestmark = pytest.mark.slow


async def login_page(browser: Browser, rp: Any, **extra: str) -> tuple[httpx.Response, str]:
    _, params = base_params(rp.client.id, **extra)
    start = await browser.authorize(params)
    page = await browser.http.get(start.headers["location"])
    return page, start.headers["location"]


async def test_pages_are_vietnamese_by_default_and_english_on_request(
    rp: Any, browser: Browser
) -> None:
    page, _ = await login_page(browser, rp)
    assert "<title>Đăng nhập Thai Nguyen ID</title>" in page.text
    assert 'lang="vi"' in page.text
    page, _ = await login_page(browser, rp, ui_locales="en-US vi")
    assert "<title>Sign in with Thai Nguyen ID</title>" in page.text
    assert "<script" not in page.text  # no JavaScript needed


async def test_login_form_without_a_valid_csrf_token_is_refused(rp: Any, browser: Browser) -> None:
    page, _ = await login_page(browser, rp)
    fields = hidden_fields(page.text)
    forged = {**fields, "csrf_token": "0" * 40, "phone": "0912345678", "password": PASSWORD}
    response = await browser.http.post("/oauth/login", data=forged)
    assert response.status_code == 403
    # From another browser (no CSRF cookie) even the right token does not pass.
    async with httpx.AsyncClient(base_url=browser.base_url) as stranger:
        response = await stranger.post(
            "/oauth/login", data={**fields, "phone": "0912345678", "password": PASSWORD}
        )
    assert response.status_code == 403
    assert "tnid_op" not in response.cookies


async def test_login_page_locks_like_the_app_login(
    live_url: str, rp: Any, browser: Browser
) -> None:
    page, _ = await login_page(browser, rp)
    fields = hidden_fields(page.text)
    statuses = []
    for _ in range(6):
        wrong = await browser.http.post(
            "/oauth/login", data={**fields, "phone": "0912345678", "password": "sai-mat-khau"}
        )
        statuses.append(wrong.status_code)
    assert statuses[:5] == [401] * 5
    locked = await browser.http.post(
        "/oauth/login", data={**fields, "phone": "0912345678", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert "Đăng nhập sai nhiều lần" in locked.text
    # The same lock holds for the app's own login: one account, one protection.
    async with httpx.AsyncClient(base_url=live_url) as http:
        app_login = await http.post(
            "/api/v1/auth/login", json={"phone": "0912345678", "password": PASSWORD}
        )
    assert app_login.status_code == 429


async def test_denying_consent_sends_access_denied(rp: Any, browser: Browser) -> None:
    _, params = base_params(rp.client.id)
    final = await browser.follow_until_client(await browser.authorize(params), consent="deny")
    answer = query_of(final.headers["location"])
    assert answer["error"] == "access_denied" and answer["state"] == "st-123"


async def test_citizen_lists_and_withdraws_allowed_apps(
    live_url: str, rp: Any, browser: Browser, db: AsyncSession
) -> None:
    rp_with_logout = await make_client(
        db, name="Có đăng xuất", backchannel_logout_uri="https://rp2.example.vn/bcl"
    )
    code, verifier, _ = await browser.code_for(rp.client.id, scope="openid phone")
    tokens = (await exchange(live_url, rp, code, verifier)).json()
    code, verifier, _ = await browser.code_for(rp_with_logout.client.id, scope="openid profile")
    await exchange(live_url, rp_with_logout, code, verifier)
    async with httpx.AsyncClient(base_url=live_url) as http:
        app_tokens = (
            await http.post(
                "/api/v1/auth/login", json={"phone": "0912345678", "password": PASSWORD}
            )
        ).json()
        auth = {"Authorization": f"Bearer {app_tokens['access_token']}"}
        listed = (await http.get("/api/v1/me/apps", headers=auth)).json()["items"]
        assert {a["client_id"]: a["scopes"] for a in listed} == {
            rp.client.id: ["openid", "phone"],
            rp_with_logout.client.id: ["openid", "profile"],
        }
        assert (
            await http.delete(f"/api/v1/me/apps/{rp.client.id}", headers=auth)
        ).status_code == 204
        assert (
            await http.delete(f"/api/v1/me/apps/{rp_with_logout.client.id}", headers=auth)
        ).status_code == 204
        assert (
            await http.delete(f"/api/v1/me/apps/{rp.client.id}", headers=auth)
        ).status_code == 404
        assert (await http.get("/api/v1/me/apps", headers=auth)).json()["items"] == []
        # An OIDC access token is not a key to the app's own API.
        assert (
            await http.get(
                "/api/v1/me/apps", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
        ).status_code == 401
    assert (await userinfo(live_url, tokens["access_token"])).status_code == 401
    _, params = base_params(rp.client.id, prompt="none")
    assert (
        query_of((await browser.authorize(params)).headers["location"])["error"]
        == "consent_required"
    )
    jobs = (await db.execute(sa.select(Job).where(Job.kind == BACKCHANNEL_LOGOUT))).scalars().all()
    assert [j.payload["client_id"] for j in jobs] == [rp_with_logout.client.id]


async def test_logout_without_id_token_hint_asks_first(
    live_url: str, rp: Any, browser: Browser
) -> None:
    await browser.code_for(rp.client.id)
    page = await browser.http.get("/oauth/logout")
    assert page.status_code == 200 and 'name="confirm"' in page.text
    _, params = base_params(rp.client.id, prompt="none")
    assert "code" in query_of((await browser.authorize(params)).headers["location"])
    done = await browser.http.post("/oauth/logout", data=hidden_fields(page.text))
    assert done.status_code == 200
    assert (
        query_of((await browser.authorize(params)).headers["location"])["error"] == "login_required"
    )


async def test_logout_refuses_an_unregistered_post_logout_redirect_uri(
    live_url: str, rp: Any, browser: Browser
) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id)
    id_token = (await exchange(live_url, rp, code, verifier)).json()["id_token"]
    response = await browser.http.get(
        "/oauth/logout",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example.com/"},
    )
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_sign_in_consent_token_and_revocation_are_audited(
    live_url: str, rp: Any, browser: Browser, db: AsyncSession
) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id)
    tokens = (await exchange(live_url, rp, code, verifier)).json()
    async with httpx.AsyncClient(base_url=live_url) as http:
        await http.post(
            "/oauth/revoke",
            data={"token": tokens["refresh_token"]},
            auth=(rp.client.id, rp.client_secret),
        )
    actions = [
        e.action
        for e in (await db.execute(sa.select(AuditEvent).order_by(AuditEvent.at))).scalars()
    ]
    for action in (
        "oauth.sign_in",
        "oauth.consent_granted",
        "oauth.token_issued",
        "oauth.token_revoked",
    ):
        assert action in actions, actions


async def test_city_admin_registers_a_client_through_the_api(
    live_url: str, db: AsyncSession
) -> None:
    from tests.support.flows import make_user

    await make_user(db, "0987654321", "city_admin")
    await make_user(db, "0911111111", "citizen")
    async with httpx.AsyncClient(base_url=live_url) as http:
        admin = (
            await http.post(
                "/api/v1/auth/login", json={"phone": "0987654321", "password": PASSWORD}
            )
        ).json()
        citizen = (
            await http.post(
                "/api/v1/auth/login", json={"phone": "0911111111", "password": PASSWORD}
            )
        ).json()
        body = {
            "name": "Bệnh viện C",
            "redirect_uris": ["https://bv.example.vn/cb"],
            "type": "confidential",
            "auth_method": "client_secret_post",
            "scope": "openid profile",
        }
        refused = await http.post(
            "/api/v1/admin/oauth/clients",
            json=body,
            headers={"Authorization": f"Bearer {citizen['access_token']}"},
        )
        assert refused.status_code == 403
        made = await http.post(
            "/api/v1/admin/oauth/clients",
            json=body,
            headers={"Authorization": f"Bearer {admin['access_token']}"},
        )
        assert made.status_code == 201, made.text
        secret = made.json()["client_secret"]
        token = await http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": made.json()["client_id"],
                "client_secret": secret,
            },
        )
        assert token.status_code == 200
        bad = await http.post(
            "/api/v1/admin/oauth/clients",
            json={**body, "redirect_uris": ["http://bv.example.vn/cb"]},
            headers={"Authorization": f"Bearer {admin['access_token']}"},
        )
        assert bad.status_code == 422
        assert bad.json()["code"] == "oauth.client_invalid"


async def test_erasing_the_account_tells_partners_and_forgets_consents(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    from app.oauth.models import Consent

    rp = await make_client(db, backchannel_logout_uri="https://rp.example.vn/bcl")
    code, verifier, _ = await browser.code_for(rp.client.id)
    tokens = (await exchange(live_url, rp, code, verifier)).json()
    async with httpx.AsyncClient(base_url=live_url) as http:
        app_tokens = (
            await http.post(
                "/api/v1/auth/login", json={"phone": "0912345678", "password": PASSWORD}
            )
        ).json()
        auth = {"Authorization": f"Bearer {app_tokens['access_token']}"}
        exported = (await http.get("/api/v1/me/export", headers=auth)).json()
        assert exported["oauth"]["allowed_apps"][0]["client_id"] == rp.client.id
        erased = await http.request(
            "DELETE", "/api/v1/me", json={"password": PASSWORD}, headers=auth
        )
        assert erased.status_code == 200, erased.text
        assert "oauth" in erased.json()["erased"]
    assert (await userinfo(live_url, tokens["access_token"])).status_code == 401
    assert (await db.execute(sa.select(sa.func.count()).select_from(Consent))).scalar_one() == 0
    jobs = (await db.execute(sa.select(Job).where(Job.kind == BACKCHANNEL_LOGOUT))).scalars().all()
    assert [j.payload["client_id"] for j in jobs] == [rp.client.id]


async def test_a_disabled_account_cannot_sign_in_on_the_page(
    rp: Any, browser: Browser, db: AsyncSession
) -> None:
    from app.identity.models import User

    await db.execute(sa.update(User).where(User.phone == "+84912345678").values(status="disabled"))
    await db.commit()
    page, _ = await login_page(browser, rp)
    response = await browser.http.post(
        "/oauth/login",
        data={**hidden_fields(page.text), "phone": "0912345678", "password": PASSWORD},
    )
    assert response.status_code == 403
    assert "Ứng dụng Đối tác" in response.text
    assert "tnid_op" not in response.cookies
