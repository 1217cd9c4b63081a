"""Attacks on client authentication and sender-constraining (issue #23): a slow `jwks_uri` used to
stall the provider, partner URLs that reach the provider's own network, pairwise subjects shared
by unrelated partners, and DPoP proofs made in advance."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.core import clock
from app.core.errors import AppError
from app.oauth import client_keys, clients, dpop, outbound, service, tasks
from app.oauth.config import get_oauth_settings
from app.oauth.models import AuthorizationCode
from app.oauth.pages import SESSION_COOKIE
from tests.oauth.partner_fakes import PartnerServer
from tests.oauth.support import (
    REDIRECT,
    Browser,
    base_params,
    dpop_proof,
    exchange,
    id_token_claims,
    make_citizen,
    make_client,
)
from tests.support import databases
from tests.support.servers import forwarded_for

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def assertion(key: Any, client_id: str, audience: str, alg: str = "RS256") -> str:
    now = int(time.time())
    return jwt.encode(
        {"alg": alg, **({"kid": key.kid} if key.kid else {})},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        },
        key,
        algorithms=[alg],
    )


async def assertion_grant(
    http: httpx.AsyncClient, key: Any, client_id: str, live_url: str, **headers: str
) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(key, client_id, f"{live_url}/oauth/token"),
        },
        headers=headers,
    )


@pytest.fixture
def refuse_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in production: partner URLs may not reach internal addresses."""
    monkeypatch.setattr(get_oauth_settings(), "outbound_allow_private", False)


# ---------------------------------------------------------------- a slow jwks_uri


async def test_a_slow_jwks_uri_neither_stalls_a_code_exchange_nor_is_fetched_twice(
    live_url: str,
    db: AsyncSession,
    rp: Any,
) -> None:
    await make_citizen(db)
    timeout = get_oauth_settings().outbound_timeout_seconds
    attacker_key = RSAKey.generate_key(2048, private=True)
    browser = Browser(live_url)
    with PartnerServer({"keys": []}, delay=timeout + 1.5) as slow:
        victim = await make_client(
            db,
            name="Đối tác chậm",
            auth_method="private_key_jwt",
            jwks_uri=slow.url,
            grant_types=["client_credentials"],
            redirect_uris=[],
        )
        victim_id = victim.client.id

        async def exchange_seconds() -> float:
            code, verifier, _ = await browser.code_for(rp.client.id)
            started = time.perf_counter()
            answer = await exchange(live_url, rp, code, verifier)
            assert answer.status_code == 200, answer.text
            return time.perf_counter() - started

        baseline = statistics.median([await exchange_seconds() for _ in range(3)])
        code, verifier, _ = await browser.code_for(rp.client.id)

        async with httpx.AsyncClient(base_url=live_url, timeout=60) as http:
            attack = [
                asyncio.create_task(assertion_grant(http, attacker_key, victim_id, live_url))
                for _ in range(60)
            ]
            while slow.fetches == 0:  # noqa: ASYNC110 (another thread's counter)
                await asyncio.sleep(0.01)  # the attack is under way: the partner is waited on
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            during = await exchange(live_url, rp, code, verifier)
            attacked = time.perf_counter() - started
            answers = await asyncio.gather(*attack)
            # The circuit is open now: a second wave is refused at once, without a fetch.
            second = [
                await assertion_grant(http, attacker_key, victim_id, live_url) for _ in range(5)
            ]

    await browser.close()
    assert during.status_code == 200, during.text
    # Before the fix the exchange waited behind 60 fetches for seconds (over 100 times its
    # time alone); now it does not wait for them at all. A ratio, with room for a busy machine.
    assert attacked / baseline < 10, (attacked, baseline)
    assert {(a.status_code, a.json()["error"]) for a in answers + second} == {
        (400, "invalid_client")
    }
    assert slow.max_in_flight == 1
    assert slow.fetches == 1, slow.fetches


async def test_keys_from_a_jwks_uri_serve_many_requests_with_one_fetch(
    live_url: str,
    db: AsyncSession,
) -> None:
    key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    with PartnerServer({"keys": [key.as_dict(private=False)]}, delay=0.3) as partner:
        registered = await make_client(
            db,
            name="Đối tác",
            auth_method="private_key_jwt",
            jwks_uri=partner.url,
            grant_types=["client_credentials"],
            redirect_uris=[],
        )
        async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
            answers = await asyncio.gather(
                *[assertion_grant(http, key, registered.client.id, live_url) for _ in range(20)]
            )
    assert [a.status_code for a in answers] == [200] * 20, answers[0].text
    assert partner.fetches == 1


async def test_through_a_partner_outage_its_last_good_keys_still_serve(
    live_url: str,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    with PartnerServer({"keys": [key.as_dict(private=False)]}) as partner:
        registered = await make_client(
            db,
            name="Đối tác",
            auth_method="private_key_jwt",
            jwks_uri=partner.url,
            grant_types=["client_credentials"],
            redirect_uris=[],
        )
        async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
            before = await assertion_grant(http, key, registered.client.id, live_url)
            monkeypatch.setattr(get_oauth_settings(), "jwks_cache_seconds", 0.0)  # stale now
            partner.delay = get_oauth_settings().outbound_timeout_seconds + 0.5  # and down
            during = [
                await assertion_grant(http, key, registered.client.id, live_url) for _ in range(3)
            ]
    assert before.status_code == 200, before.text
    assert [a.status_code for a in during] == [200] * 3, during[0].text
    assert partner.fetches == 2  # one failed refetch, then the circuit stays open


async def test_a_partner_that_rotates_its_keys_is_fetched_again_for_the_new_key_id(
    live_url: str,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_keys, "UNKNOWN_KID_REFETCH_SECONDS", 0.0)
    old, new = (RSAKey.generate_key(2048, private=True, auto_kid=True) for _ in range(2))
    with PartnerServer({"keys": [old.as_dict(private=False)]}) as partner:
        registered = await make_client(
            db,
            name="Đối tác",
            auth_method="private_key_jwt",
            jwks_uri=partner.url,
            grant_types=["client_credentials"],
            redirect_uris=[],
        )
        async with httpx.AsyncClient(base_url=live_url) as http:
            before = await assertion_grant(http, old, registered.client.id, live_url)
            partner.body = {"keys": [new.as_dict(private=False)]}
            after = [
                await assertion_grant(http, new, registered.client.id, live_url) for _ in range(3)
            ]
    assert before.status_code == 200, before.text
    assert [a.status_code for a in after] == [200] * 3, after[0].text
    assert partner.fetches == 2


# ---------------------------------------------------------------- partner URLs and SSRF


@pytest.mark.parametrize(
    "uri",
    [
        "https://127.0.0.1/jwks",
        "https://10.1.2.3/jwks",
        "https://192.168.1.10/jwks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/jwks",
        "https://[fd00::1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://localhost/jwks",
        "https://db.internal/jwks",
        "https://0.0.0.0/jwks",
    ],
)
async def test_partner_urls_on_internal_addresses_are_refused_at_registration(
    db: AsyncSession,
    rp: Any,
    refuse_internal: None,
    uri: str,
) -> None:
    with pytest.raises(AppError) as jwks_uri:
        await make_client(db, auth_method="private_key_jwt", jwks_uri=uri)
    assert jwks_uri.value.error.code == "oauth.client_invalid"
    with pytest.raises(AppError) as logout_uri:
        await clients.update_client(db, rp.client.id, backchannel_logout_uri=uri)
    assert logout_uri.value.error.code == "oauth.client_invalid"
    with pytest.raises(AppError):
        await clients.update_client(db, rp.client.id, jwks_uri=uri)


async def test_admin_api_answers_an_internal_jwks_uri_with_a_problem(
    client: httpx.AsyncClient,
    db: AsyncSession,
    rp: Any,
    refuse_internal: None,
) -> None:
    from tests.support.flows import login, make_user

    await make_user(db, "0912000999", "city_admin")
    token = (await login(client, "0912000999"))["access_token"]
    answer = await client.patch(
        f"/api/v1/admin/oauth/clients/{rp.client.id}",
        json={"backchannel_logout_uri": "https://10.0.0.7/logout"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "oauth.client_invalid"


async def test_a_partner_url_that_resolves_to_an_internal_address_is_not_called(
    live_url: str,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    with PartnerServer({"keys": [key.as_dict(private=False)]}) as partner:
        registered = await make_client(
            db,
            name="Đối tác",
            auth_method="private_key_jwt",
            jwks_uri=partner.url,
            grant_types=["client_credentials"],
            redirect_uris=[],
        )
        # Its address turns internal after registration (DNS rebinding, a moved host): the
        # check at call time, after resolving, refuses it and nothing reaches the server.
        monkeypatch.setattr(get_oauth_settings(), "outbound_allow_private", False)
        async with httpx.AsyncClient(base_url=live_url) as http:
            refused = await assertion_grant(http, key, registered.client.id, live_url)
        with pytest.raises(outbound.OutboundRefused):
            await outbound.resolve_public("localhost", 443)
        with pytest.raises(outbound.OutboundRefused):
            await outbound.post_form(partner.url, {"logout_token": "x"})
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_client")
    assert partner.fetches == 0
    await outbound.resolve_public("93.184.215.14", 443)  # a public address is fine


async def test_a_back_channel_logout_to_an_internal_address_is_not_sent(
    live_url: str,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with PartnerServer() as partner:
        made = await make_client(db, backchannel_logout_uri=partner.url)
        payload = {"client_id": made.client.id, "sub": "s", "sid": "sid-1"}
        await tasks.send_backchannel_logout(db, payload)  # allowed here (ENVIRONMENT=test)
        monkeypatch.setattr(get_oauth_settings(), "outbound_allow_private", False)
        await tasks.send_backchannel_logout(db, payload)  # as in production: refused, not retried
    assert partner.posts == 1


# ---------------------------------------------------------------- pairwise subjects


async def _sub_at(live_url: str, browser: Browser, client_id: str, redirect_uri: str) -> str:
    code, verifier, _ = await browser.code_for(client_id, extra={"redirect_uri": redirect_uri})
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "client_id": client_id,
            },
        )
    assert answer.status_code == 200, answer.text
    return (await id_token_claims(live_url, answer.json()["id_token"]))["sub"]


async def test_two_loopback_partners_get_different_subjects_for_one_citizen(
    live_url: str,
    db: AsyncSession,
    browser: Browser,
) -> None:
    seen = []
    for name, uri in [
        ("Ứng dụng A", "http://127.0.0.1/callback"),
        ("Ứng dụng B", "http://127.0.0.1:8123/cb"),
    ]:
        made = await make_client(
            db, name=name, client_type="public", auth_method="none", redirect_uris=[uri]
        )
        seen.append(await _sub_at(live_url, browser, made.client.id, uri))
    assert seen[0] != seen[1], seen


async def test_private_use_scheme_partners_of_one_name_get_different_subjects(
    db: AsyncSession,
) -> None:
    citizen = await make_citizen(db)
    made = [
        await make_client(
            db, name="Ứng dụng", client_type="public", auth_method="none", redirect_uris=[uri]
        )
        for uri in ("vn.partner.c:/callback", "vn.partner.d:/callback")
    ]
    subs = {service.subject_for(m.client, citizen.id) for m in made}
    assert len(subs) == 2, subs


async def test_a_verified_sector_identifier_uri_shares_subjects_and_an_unlisted_uri_is_refused(
    live_url: str,
    db: AsyncSession,
    browser: Browser,
) -> None:
    first, second = "https://a.partner.vn/cb", "https://b.partner.vn/cb"
    with PartnerServer([first, second]) as sector:
        made = [
            await make_client(
                db,
                name=f"Đối tác {n}",
                client_type="public",
                auth_method="none",
                redirect_uris=[uri],
                sector_identifier_uri=sector.url,
            )
            for n, uri in (("A", first), ("B", second))
        ]
        with pytest.raises(AppError) as unlisted:
            await make_client(
                db,
                name="Kẻ lạ",
                client_type="public",
                auth_method="none",
                redirect_uris=["https://evil.example/cb"],
                sector_identifier_uri=sector.url,
            )
        with pytest.raises(AppError) as moved:
            await clients.update_client(
                db, made[0].client.id, redirect_uris=["https://evil.example/cb"]
            )
    assert unlisted.value.error.code == moved.value.error.code == "oauth.sector_identifier_invalid"
    a = await _sub_at(live_url, browser, made[0].client.id, first)
    b = await _sub_at(live_url, browser, made[1].client.id, second)
    assert a == b  # one organisation, one sector (OIDC Core 8.1)


async def test_a_sector_identifier_uri_must_be_https(db: AsyncSession) -> None:
    with pytest.raises(AppError) as refused:
        await make_client(db, sector_identifier_uri="http://partner.example/sector.json")
    assert refused.value.error.code == "oauth.sector_identifier_invalid"


# ---------------------------------------------------------------- DPoP freshness and nonces


async def _dpop_token(http: httpx.AsyncClient, rp: Any, proof: str) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(rp.client.id, rp.client_secret),
        headers={"DPoP": proof},
    )


async def test_dpop_proofs_made_in_advance_or_kept_are_refused(
    live_url: str,
    db: AsyncSession,
    rp: Any,
) -> None:
    key = ECKey.generate_key("P-256", private=True)
    url = f"{live_url}/oauth/token"
    now = int(time.time())
    async with httpx.AsyncClient(base_url=live_url) as http:
        kept = await _dpop_token(http, rp, dpop_proof(key, "POST", url, iat=now - 120))
        ahead = await _dpop_token(http, rp, dpop_proof(key, "POST", url, iat=now + 30))
        fresh = await _dpop_token(http, rp, dpop_proof(key, "POST", url, iat=now - 5))
    assert kept.status_code == ahead.status_code == 400
    assert kept.json()["error"] == ahead.json()["error"] == "invalid_dpop_proof"
    assert fresh.status_code == 200, fresh.text


async def test_dpop_nonce_is_demanded_by_the_token_endpoint_and_then_accepted(
    live_url: str,
    db: AsyncSession,
    rp: Any,
) -> None:
    key = ECKey.generate_key("P-256", private=True)
    url = f"{live_url}/oauth/token"
    async with httpx.AsyncClient(base_url=live_url) as http:
        bare = await _dpop_token(http, rp, dpop_proof(key, "POST", url, nonce=None))
        forged = await _dpop_token(http, rp, dpop_proof(key, "POST", url, nonce="1.forged"))
        nonce = bare.headers["DPoP-Nonce"]
        retried = await _dpop_token(http, rp, dpop_proof(key, "POST", url, nonce=nonce))
    assert bare.status_code == forged.status_code == 400
    assert bare.json()["error"] == forged.json()["error"] == "use_dpop_nonce"
    assert retried.status_code == 200, retried.text
    assert retried.json()["token_type"] == "DPoP"
    assert "DPoP-Nonce" in retried.headers


async def test_an_old_dpop_nonce_expires(live_url: str, db: AsyncSession, rp: Any) -> None:
    old = dpop.new_nonce()
    clock.advance(timedelta(seconds=2 * get_oauth_settings().dpop_nonce_window_seconds))
    key = ECKey.generate_key("P-256", private=True)
    async with httpx.AsyncClient(base_url=live_url) as http:
        stale = await _dpop_token(
            http,
            rp,
            dpop_proof(
                key, "POST", f"{live_url}/oauth/token", iat=int(clock.now().timestamp()), nonce=old
            ),
        )
    assert stale.status_code == 400
    assert stale.json()["error"] == "use_dpop_nonce"


async def test_userinfo_challenges_a_dpop_proof_without_nonce(
    live_url: str,
    db: AsyncSession,
    rp: Any,
    browser: Browser,
) -> None:
    key = ECKey.generate_key("P-256", private=True)
    code, verifier, _ = await browser.code_for(rp.client.id)
    token_url, userinfo_url = f"{live_url}/oauth/token", f"{live_url}/oauth/userinfo"
    async with httpx.AsyncClient(base_url=live_url) as http:
        issued = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(rp.client.id, rp.client_secret),
            headers={"DPoP": dpop_proof(key, "POST", token_url)},
        )
        access = issued.json()["access_token"]
        bare = await http.get(
            "/oauth/userinfo",
            headers={
                "Authorization": f"DPoP {access}",
                "DPoP": dpop_proof(key, "GET", userinfo_url, access_token=access, nonce=None),
            },
        )
        retried = await http.get(
            "/oauth/userinfo",
            headers={
                "Authorization": f"DPoP {access}",
                "DPoP": dpop_proof(
                    key, "GET", userinfo_url, access_token=access, nonce=bare.headers["DPoP-Nonce"]
                ),
            },
        )
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"] == 'DPoP error="use_dpop_nonce"'
    assert retried.status_code == 200, retried.text


# ---------------------------------------------------------------- one-time values, two processes


async def _codes_of(db: AsyncSession, client_id: str) -> int:
    return (
        await db.execute(
            sa.select(sa.func.count())
            .select_from(AuthorizationCode)
            .where(AuthorizationCode.client_id == client_id)
        )
    ).scalar_one()


async def test_a_pushed_request_uri_gives_one_code_to_concurrent_uses_across_two_servers(
    live_url: str,
    db: AsyncSession,
    rp: Any,
    browser: Browser,
    two_servers: str,
) -> None:
    await browser.code_for(rp.client.id)  # signed in, consent given: the next use is instant
    cookie = browser.http.cookies.get(SESSION_COOKIE)
    _verifier, params = base_params(rp.client.id)
    params.pop("__verifier")
    async with httpx.AsyncClient(base_url=live_url) as http:
        pushed = await http.post("/oauth/par", data=params, auth=(rp.client.id, rp.client_secret))
    assert pushed.status_code == 201, pushed.text
    before = await _codes_of(db, rp.client.id)

    async with httpx.AsyncClient(base_url=two_servers, timeout=60) as http:
        answers = await asyncio.gather(
            *[
                http.get(
                    "/oauth/authorize",
                    params={"client_id": rp.client.id, "request_uri": pushed.json()["request_uri"]},
                    headers={"Cookie": f"{SESSION_COOKIE}={cookie}", **forwarded_for(n)},
                )
                for n in range(20)
            ]
        )

    codes = [
        a for a in answers if a.status_code == 302 and "code=" in a.headers.get("location", "")
    ]
    assert all(a.status_code < 500 for a in answers), [a.status_code for a in answers]
    assert len(codes) == 1, [(a.status_code, a.headers.get("location")) for a in answers]
    assert await _codes_of(db, rp.client.id) - before == 1  # read committed: sees theirs


async def test_one_dpop_proof_is_accepted_once_across_two_servers(
    live_url: str,
    db: AsyncSession,
    rp: Any,
    two_servers: str,
) -> None:
    proof = dpop_proof(ECKey.generate_key("P-256", private=True), "POST", f"{live_url}/oauth/token")
    async with httpx.AsyncClient(base_url=two_servers, timeout=60) as http:
        answers = await asyncio.gather(
            *[
                http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(rp.client.id, rp.client_secret),
                    headers={"DPoP": proof, **forwarded_for(n)},
                )
                for n in range(20)
            ]
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 19, statuses
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_dpop_proof"}


async def test_one_client_assertion_is_accepted_once_across_two_servers(
    live_url: str,
    db: AsyncSession,
    two_servers: str,
) -> None:
    key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    registered = await make_client(
        db,
        name="Đối tác",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials"],
        redirect_uris=[],
    )
    signed = assertion(key, registered.client.id, f"{live_url}/oauth/token")
    async with httpx.AsyncClient(base_url=two_servers, timeout=60) as http:
        answers = await asyncio.gather(
            *[
                http.post(
                    "/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_assertion_type": ASSERTION_TYPE,
                        "client_assertion": signed,
                    },
                    headers=forwarded_for(n),
                )
                for n in range(20)
            ]
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 19, statuses


# ---------------------------------------------------------------- existing clients' sectors


INSERT_CLIENT = (
    "INSERT INTO oauth_clients (id, name, client_type, auth_method, redirect_uris,"
    " post_logout_redirect_uris, grant_types, scope, min_loa, first_party, allow_cccd,"
    " sector_identifier, require_par, require_dpop, id_token_alg, status, created_at)"
    " VALUES (:id, 'x', 'public', 'none', :uris, '[]', '[\"authorization_code\"]', 'openid',"
    " 0, false, false, :sector, false, false, 'RS256', 'active', :created)"
)


async def test_the_migration_parts_clients_that_shared_a_sector_and_keeps_the_rest(
    backend: str,
    tmp_path: Path,
) -> None:
    url = await databases.create_database(backend, tmp_path)
    engine = create_async_engine(url)
    clients_before = [  # id, redirect URIs, sector as the old default made it
        ("tn_loop_old", ["http://127.0.0.1/cb"], "127.0.0.1"),
        ("tn_loop_new", ["http://127.0.0.1:9000/cb"], "127.0.0.1"),
        ("tn_named_1", ["vn.a.app:/cb"], "Ứng dụng"),
        ("tn_named_2", ["vn.b.app:/cb"], "Ứng dụng"),
        ("tn_alone", ["vn.c.app:/cb"], "Ứng dụng riêng"),
        ("tn_web_1", ["https://rp.example.vn/cb"], "rp.example.vn"),
        ("tn_web_2", ["https://rp.example.vn/other"], "rp.example.vn"),
    ]
    try:
        await databases.migrate(url, "c8d2e5a1f7b4")
        async with engine.begin() as conn:
            for n, (client_id, uris, sector) in enumerate(clients_before):
                await conn.execute(
                    sa.text(INSERT_CLIENT),
                    {
                        "id": client_id,
                        "uris": json.dumps(uris),
                        "sector": sector,
                        "created": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=n),
                    },
                )
        await databases.migrate(url, "652c42558b6e")
        async with engine.connect() as conn:
            after = dict(
                (
                    await conn.execute(sa.text("SELECT id, sector_identifier FROM oauth_clients"))
                ).all()
            )
    finally:
        await engine.dispose()
        await databases.drop_database(url)
    assert after == {
        "tn_loop_old": "127.0.0.1",  # the oldest keeps its citizens' subjects
        "tn_loop_new": "client:tn_loop_new",  # the ones that collided with it are parted
        "tn_named_1": "Ứng dụng",
        "tn_named_2": "client:tn_named_2",
        "tn_alone": "Ứng dụng riêng",  # nobody shares it: unchanged
        "tn_web_1": "rp.example.vn",
        "tn_web_2": "rp.example.vn",  # OIDC Core's host default
    }


async def test_admin_api_registers_a_sector_identifier_uri_only_when_it_lists_every_redirect(
    client: httpx.AsyncClient,
    db: AsyncSession,
) -> None:
    from tests.support.flows import login, make_user

    await make_user(db, "0912000998", "city_admin")
    auth = {"Authorization": f"Bearer {(await login(client, '0912000998'))['access_token']}"}
    body = {
        "name": "Đối tác",
        "type": "public",
        "auth_method": "none",
        "redirect_uris": ["https://a.partner.vn/cb"],
    }
    with PartnerServer(["https://a.partner.vn/cb"]) as sector:
        made = await client.post(
            "/api/v1/admin/oauth/clients",
            headers=auth,
            json={**body, "sector_identifier_uri": sector.url},
        )
        refused = await client.post(
            "/api/v1/admin/oauth/clients",
            headers=auth,
            json={
                **body,
                "redirect_uris": ["https://evil.example/cb"],
                "sector_identifier_uri": sector.url,
            },
        )
    assert made.status_code == 201, made.text
    shown = await client.get(
        f"/api/v1/admin/oauth/clients/{made.json()['client_id']}", headers=auth
    )
    assert shown.json()["sector_identifier_uri"] == sector.url
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "oauth.sector_identifier_invalid"


# ---------------------------------------------------------------- authlib runs once per request


async def test_a_private_key_jwt_client_is_authenticated_once_per_request(
    live_url: str, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """authlib runs once, on what was read before it: the assertion is verified once, and its
    jti remembered once (a replay of it is refused)."""
    from app.oauth.server import PrivateKeyJWT

    key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    registered = await make_client(
        db,
        name="Đối tác",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        grant_types=["client_credentials"],
        redirect_uris=[],
    )
    verified = []
    original = PrivateKeyJWT.process_assertion_claims

    def counted(self: Any, assertion: str, resolve_key: Any) -> Any:
        verified.append(assertion)
        return original(self, assertion, resolve_key)

    monkeypatch.setattr(PrivateKeyJWT, "process_assertion_claims", counted)
    signed = assertion(key, registered.client.id, f"{live_url}/oauth/token")
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    async with httpx.AsyncClient(base_url=live_url) as http:
        first = await http.post("/oauth/token", data=data)
        replayed = await http.post("/oauth/token", data=data)
    assert first.status_code == 200, first.text
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_client"
    assert verified == [signed, signed]  # once per request


async def test_a_code_exchange_runs_the_grant_once(
    live_url: str, db: AsyncSession, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.oauth.server import AuthorizationCodeGrant

    rp = await make_client(db)
    runs = []
    original = AuthorizationCodeGrant.validate_token_request

    def counted(self: Any) -> Any:
        runs.append(1)
        return original(self)

    monkeypatch.setattr(AuthorizationCodeGrant, "validate_token_request", counted)
    code, verifier, _ = await browser.code_for(rp.client.id, scope="openid offline_access")
    answer = await exchange(live_url, rp, code, verifier)
    assert answer.status_code == 200, answer.text
    assert runs == [1]
    again = await exchange(live_url, rp, code, verifier)
    assert again.status_code == 400 and runs == [1, 1]
