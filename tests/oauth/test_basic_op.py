"""The OpenID Foundation's Basic OP checks, one test each, against the real server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jws
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from tests.oauth.support import (
    REDIRECT,
    Browser,
    base_params,
    exchange,
    hidden_fields,
    id_token_claims,
    make_client,
    pkce,
    query_of,
)

pytestmark = pytest.mark.slow


async def test_code_flow_returns_state_and_tokens(live_url: str, rp: Any, browser: Browser) -> None:
    code, verifier, params = await browser.code_for(rp.client.id)
    response = await exchange(live_url, rp, code, verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    claims = await id_token_claims(live_url, body["id_token"])
    assert claims["nonce"] == params["nonce"]
    assert claims["aud"] == rp.client.id
    assert claims["iss"] == live_url


async def test_nonce_is_echoed_in_the_id_token(live_url: str, rp: Any, browser: Browser) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id, extra={"nonce": "nonce-Zx9"})
    body = (await exchange(live_url, rp, code, verifier)).json()
    assert (await id_token_claims(live_url, body["id_token"]))["nonce"] == "nonce-Zx9"


async def test_id_token_has_kid_of_a_published_rs256_key(
    live_url: str, rp: Any, browser: Browser
) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id)
    id_token = (await exchange(live_url, rp, code, verifier)).json()["id_token"]
    header = jws.extract_compact(id_token.encode()).headers()
    async with httpx.AsyncClient(base_url=live_url) as http:
        kids = {k["kid"] for k in (await http.get("/oauth/jwks")).json()["keys"]}
    assert header["alg"] == "RS256"
    assert header["kid"] in kids


async def test_alg_none_is_never_announced_nor_accepted(
    live_url: str, rp: Any, browser: Browser
) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        config = (await http.get("/.well-known/openid-configuration")).json()
        assert "none" not in config["id_token_signing_alg_values_supported"]
        code, verifier, _ = await browser.code_for(rp.client.id)
        access = (await exchange(live_url, rp, code, verifier)).json()["access_token"]
        # The same claims re-packed unsigned with alg=none must not pass.
        import base64
        import json

        head, payload, _sig = access.split(".")
        forged_head = (
            base64.urlsafe_b64encode(
                json.dumps(
                    {
                        "alg": "none",
                        "typ": "at+jwt",
                        "kid": json.loads(base64.urlsafe_b64decode(head + "==="))["kid"],
                    }
                ).encode()
            )
            .decode()
            .rstrip("=")
        )
        forged = f"{forged_head}.{payload}."
        response = await http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401


async def test_code_reuse_is_refused_and_its_tokens_revoked(
    live_url: str, rp: Any, browser: Browser
) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id)
    first = (await exchange(live_url, rp, code, verifier)).json()
    second = await exchange(live_url, rp, code, verifier)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    async with httpx.AsyncClient(base_url=live_url) as http:
        info = await http.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}
        )
        assert info.status_code == 401
        refreshed = await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=(rp.client.id, rp.client_secret),
        )
        assert refreshed.json()["error"] == "invalid_grant"


async def test_unregistered_redirect_uri_is_refused_without_redirecting(
    rp: Any, browser: Browser
) -> None:
    _, params = base_params(rp.client.id, redirect_uri="https://evil.example.com/cb")
    response = await browser.authorize(params)
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_prefix_matching_redirect_uri_is_refused(rp: Any, browser: Browser) -> None:
    for uri in (REDIRECT + "/more", REDIRECT + "?x=1", REDIRECT[:-1]):
        _, params = base_params(rp.client.id, redirect_uri=uri)
        response = await browser.authorize(params)
        assert response.status_code == 400, uri
        assert "location" not in response.headers


async def test_missing_response_type_is_refused(rp: Any, browser: Browser) -> None:
    _, params = base_params(rp.client.id, response_type="")
    response = await browser.authorize(params)
    assert response.status_code == 302
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_request"
    assert answer["state"] == "st-123"
    assert "code" not in answer


async def test_request_without_pkce_is_refused_at_authorize(rp: Any, browser: Browser) -> None:
    _, params = base_params(rp.client.id, code_challenge="", code_challenge_method="")
    answer = query_of((await browser.authorize(params)).headers["location"])
    assert answer["error"] == "invalid_request"


async def test_plain_pkce_is_refused(rp: Any, browser: Browser) -> None:
    _, params = base_params(rp.client.id, code_challenge_method="plain")
    answer = query_of((await browser.authorize(params)).headers["location"])
    assert answer["error"] == "invalid_request"


async def test_wrong_code_verifier_is_refused(live_url: str, rp: Any, browser: Browser) -> None:
    code, _verifier, _ = await browser.code_for(rp.client.id)
    other, _ = pkce()
    response = await exchange(live_url, rp, code, other)
    assert response.json()["error"] == "invalid_grant"


async def test_prompt_none_without_a_session_gives_login_required(
    rp: Any, browser: Browser
) -> None:
    _, params = base_params(rp.client.id, prompt="none")
    response = await browser.authorize(params)
    answer = query_of(response.headers["location"])
    assert response.headers["location"].startswith(REDIRECT)
    assert answer["error"] == "login_required"
    assert answer["state"] == "st-123"


async def test_prompt_none_without_consent_gives_consent_required(
    rp: Any, browser: Browser
) -> None:
    # Signed in, but the consent page was left unanswered.
    _, params = base_params(rp.client.id)
    await browser.follow_until_client(await browser.authorize(params), consent=None)
    _, params = base_params(rp.client.id, prompt="none")
    answer = query_of((await browser.authorize(params)).headers["location"])
    assert answer["error"] == "consent_required"


async def test_consent_is_remembered_per_client_and_scopes(rp: Any, browser: Browser) -> None:
    await browser.code_for(rp.client.id, scope="openid profile")
    _, params = base_params(rp.client.id, prompt="none", scope="profile openid")
    answer = query_of((await browser.authorize(params)).headers["location"])
    assert "code" in answer
    _, params = base_params(rp.client.id, prompt="none", scope="openid profile phone")
    answer = query_of((await browser.authorize(params)).headers["location"])
    assert answer["error"] == "consent_required"  # a wider scope set asks again


async def test_max_age_forces_a_new_login_and_auth_time_shows_it(
    live_url: str, rp: Any, browser: Browser
) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id)
    first = await id_token_claims(
        live_url, (await exchange(live_url, rp, code, verifier)).json()["id_token"]
    )
    clock.advance(timedelta(minutes=10))
    verifier, params = base_params(rp.client.id, max_age="60")
    response = await browser.authorize(params)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/oauth/login")
    final = await browser.follow_until_client(response)
    code = query_of(final.headers["location"])["code"]
    second = await id_token_claims(
        live_url, (await exchange(live_url, rp, code, verifier)).json()["id_token"]
    )
    assert second["auth_time"] >= first["auth_time"] + 600


async def test_prompt_login_forces_a_new_login(rp: Any, browser: Browser) -> None:
    await browser.code_for(rp.client.id)
    _, params = base_params(rp.client.id, prompt="login")
    response = await browser.authorize(params)
    assert response.headers["location"].startswith("/oauth/login")
    final = await browser.follow_until_client(response)
    assert "code" in query_of(final.headers["location"])


async def test_scopes_in_any_order(live_url: str, rp: Any, browser: Browser) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id, scope="phone profile openid")
    body = (await exchange(live_url, rp, code, verifier)).json()
    assert set(body["scope"].split()) == {"openid", "profile", "phone"}


async def test_unknown_parameters_are_ignored(live_url: str, rp: Any, browser: Browser) -> None:
    code, verifier, _ = await browser.code_for(
        rp.client.id, extra={"foo": "bar", "x-unknown": "1", "claims_locales": "vi"}
    )
    assert (await exchange(live_url, rp, code, verifier)).status_code == 200


async def test_post_authorization_request(live_url: str, rp: Any, browser: Browser) -> None:
    verifier, params = base_params(rp.client.id)
    final = await browser.follow_until_client(await browser.authorize(params, method="POST"))
    answer = query_of(final.headers["location"])
    assert answer["state"] == "st-123"
    assert (await exchange(live_url, rp, answer["code"], verifier)).status_code == 200


@pytest.fixture
async def access_token(live_url: str, rp: Any, browser: Browser) -> str:
    code, verifier, _ = await browser.code_for(rp.client.id, scope="openid profile phone")
    return (await exchange(live_url, rp, code, verifier)).json()["access_token"]


async def test_userinfo_by_get(live_url: str, access_token: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        response = await http.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
    assert response.status_code == 200
    assert response.json()["phone_number"] == "+84912345678"
    assert response.json()["name"] == "Nguyễn Thị Lan"


async def test_userinfo_by_post_with_header(live_url: str, access_token: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        response = await http.post(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
    assert response.status_code == 200
    assert "sub" in response.json()


async def test_userinfo_by_post_with_body(live_url: str, access_token: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        response = await http.post("/oauth/userinfo", data={"access_token": access_token})
    assert response.status_code == 200
    assert "sub" in response.json()


async def test_userinfo_sub_matches_id_token_and_is_pairwise(
    live_url: str, rp: Any, browser: Browser, db: AsyncSession
) -> None:
    other = await make_client(db, redirect_uris=["https://other.example.org/cb"], name="Khác")
    code, verifier, _ = await browser.code_for(rp.client.id)
    body = (await exchange(live_url, rp, code, verifier)).json()
    sub = (await id_token_claims(live_url, body["id_token"]))["sub"]
    async with httpx.AsyncClient(base_url=live_url) as http:
        info = (
            await http.get(
                "/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
            )
        ).json()
    assert info["sub"] == sub
    import sqlalchemy as sa

    from app.oauth.service import subject_for
    from app.tokens.models import AuthSession

    user_id = (await db.execute(sa.select(AuthSession.user_id).limit(1))).scalar_one()
    assert sub != str(user_id)
    assert subject_for(other.client, user_id) != sub


async def test_prompt_consent_asks_again(rp: Any, browser: Browser) -> None:
    await browser.code_for(rp.client.id)
    _, params = base_params(rp.client.id, prompt="consent")
    page = await browser.follow_until_client(await browser.authorize(params), consent=None)
    assert page.status_code == 200 and 'value="allow"' in page.text


async def test_a_public_client_runs_the_code_flow_with_pkce_only(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    app = await make_client(db, client_type="public", auth_method="none", name="Ứng dụng di động")
    code, verifier, _ = await browser.code_for(app.client.id)
    async with httpx.AsyncClient(base_url=live_url) as http:
        body = (
            await http.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                    "client_id": app.client.id,
                },
            )
        ).json()
        assert body["token_type"] == "Bearer" and body["refresh_token"]
        refreshed = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": app.client.id,
            },
        )
    assert refreshed.status_code == 200


async def test_signing_in_again_ends_the_previous_browser_session_but_keeps_logout_reach(
    live_url: str, rp: Any, browser: Browser
) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id)
    tokens = (await exchange(live_url, rp, code, verifier)).json()
    old_cookie = browser.http.cookies.get("tnid_op")
    _, params = base_params(rp.client.id, prompt="login")
    await browser.follow_until_client(await browser.authorize(params))
    assert browser.http.cookies.get("tnid_op") != old_cookie
    # The old cookie no longer signs anyone in.
    async with httpx.AsyncClient(base_url=live_url, cookies={"tnid_op": old_cookie}) as other:
        _, params = base_params(rp.client.id, prompt="none")
        answer = query_of((await other.get("/oauth/authorize", params=params)).headers["location"])
        assert answer["error"] == "login_required"
    # Logging out with the new cookie still ends the partner session opened before.
    await browser.http.post(
        "/oauth/logout", data=hidden_fields((await browser.http.get("/oauth/logout")).text)
    )
    async with httpx.AsyncClient(base_url=live_url) as http:
        info = await http.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
    assert info.status_code == 401
