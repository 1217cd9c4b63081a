"""Token endpoint rules beyond the Basic OP plan: refresh rotation with its grace window and family
revocation, client_credentials, introspection and revocation permissions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from tests.oauth.support import Browser, exchange, make_client, refresh, userinfo

pytestmark = pytest.mark.slow


@pytest.fixture
async def tokens(live_url: str, rp: Any, browser: Browser) -> dict[str, Any]:
    code, verifier, _ = await browser.code_for(rp.client.id, scope="openid profile offline_access")
    return (await exchange(live_url, rp, code, verifier)).json()


async def test_refresh_rotates_and_a_retry_within_the_grace_window_is_served(
    live_url: str, rp: Any, tokens: dict[str, Any]
) -> None:
    first = await refresh(live_url, rp, tokens["refresh_token"])
    assert first.status_code == 200
    assert first.json()["refresh_token"] != tokens["refresh_token"]
    retry = await refresh(live_url, rp, tokens["refresh_token"])  # a concurrent retry
    assert retry.status_code == 200
    assert (await userinfo(live_url, retry.json()["access_token"])).status_code == 200


async def test_refresh_token_reuse_after_the_grace_window_revokes_the_family(
    live_url: str, rp: Any, tokens: dict[str, Any]
) -> None:
    successor = (await refresh(live_url, rp, tokens["refresh_token"])).json()
    clock.advance(timedelta(seconds=30))
    reused = await refresh(live_url, rp, tokens["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert (await refresh(live_url, rp, successor["refresh_token"])).json()[
        "error"
    ] == "invalid_grant"
    assert (await userinfo(live_url, successor["access_token"])).status_code == 401


async def test_refresh_token_of_another_client_is_refused(
    live_url: str, rp: Any, tokens: dict[str, Any], db: AsyncSession
) -> None:
    other = await make_client(db, name="Khác")
    assert (await refresh(live_url, other, tokens["refresh_token"])).json()[
        "error"
    ] == "invalid_grant"
    assert (await refresh(live_url, rp, tokens["refresh_token"])).status_code == 200


async def test_client_credentials_gives_a_jwt_access_token(live_url: str, rp: Any) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(rp.client.id, rp.client_secret),
        )
        keys = KeySet.import_key_set((await http.get("/oauth/jwks")).json())
    body = answer.json()
    assert answer.status_code == 200, body
    assert "refresh_token" not in body and "id_token" not in body
    token = jwt.decode(body["access_token"], keys, algorithms=["ES256"])
    assert token.header["typ"] == "at+jwt"
    assert token.claims["sub"] == rp.client.id == token.claims["client_id"]
    assert token.claims["iss"] == live_url


async def test_client_credentials_with_a_wrong_secret_is_refused(live_url: str, rp: Any) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(rp.client.id, rp.client_secret + "x"),
        )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


@pytest.mark.parametrize("authorization", ["Bearer ", "Basic", "Basic //79", "Basic 4pyTIMOg=="])
@pytest.mark.parametrize(
    "path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/par"]
)
async def test_a_malformed_authorization_header_is_an_unauthenticated_client(
    client: httpx.AsyncClient, path: str, authorization: str
) -> None:
    """A scheme without credentials, or Basic credentials that are not UTF-8 (//79 decodes to
    0xff 0xfe 0xfd): authlib's parser raised on both; RFC 6749 says invalid_client. (Over ASGI:
    httpx's own HTTP/1.1 refuses to send the trailing space that curl sends.)"""
    answer = await client.post(
        path,
        data={"grant_type": "client_credentials", "token": "x"},
        headers={"authorization": authorization},
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"


async def test_public_clients_cannot_use_client_credentials(
    live_url: str, db: AsyncSession
) -> None:
    app = await make_client(db, client_type="public", auth_method="none")
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "client_id": app.client.id}
        )
    assert answer.status_code in (400, 401)
    assert answer.json()["error"] in ("invalid_client", "unauthorized_client")


async def test_client_credentials_token_can_be_introspected_and_revoked(
    live_url: str, rp: Any
) -> None:
    async with httpx.AsyncClient(base_url=live_url, auth=(rp.client.id, rp.client_secret)) as http:
        access = (
            await http.post("/oauth/token", data={"grant_type": "client_credentials"})
        ).json()["access_token"]
        seen = (await http.post("/oauth/introspect", data={"token": access})).json()
        assert seen["active"] is True and seen["client_id"] == rp.client.id
        assert (await http.post("/oauth/revoke", data={"token": access})).status_code == 200
        assert (await http.post("/oauth/introspect", data={"token": access})).json() == {
            "active": False
        }


async def test_introspection_by_an_unrelated_client_says_inactive(
    live_url: str, tokens: dict[str, Any], db: AsyncSession
) -> None:
    other = await make_client(db, name="Khác")
    async with httpx.AsyncClient(base_url=live_url) as http:
        seen = await http.post(
            "/oauth/introspect",
            data={"token": tokens["access_token"]},
            auth=(other.client.id, other.client_secret),
        )
    assert seen.json() == {"active": False}


async def test_a_first_party_resource_server_may_introspect(
    live_url: str, tokens: dict[str, Any], db: AsyncSession
) -> None:
    api = await make_client(db, name="API thành phố", first_party=True)
    async with httpx.AsyncClient(base_url=live_url) as http:
        seen = await http.post(
            "/oauth/introspect",
            data={"token": tokens["access_token"]},
            auth=(api.client.id, api.client_secret),
        )
    assert seen.json()["active"] is True
    assert seen.json()["acr"] == "urn:thainguyen:id:loa:0"


async def test_introspection_needs_client_authentication(
    live_url: str, tokens: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        seen = await http.post("/oauth/introspect", data={"token": tokens["access_token"]})
    assert seen.status_code == 401


async def test_revoking_an_access_token_ends_its_refresh_token_too(
    live_url: str, rp: Any, tokens: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        done = await http.post(
            "/oauth/revoke",
            data={"token": tokens["access_token"], "token_type_hint": "access_token"},
            auth=(rp.client.id, rp.client_secret),
        )
    assert done.status_code == 200
    assert (await refresh(live_url, rp, tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoking_an_unknown_token_is_not_an_error(live_url: str, rp: Any) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        done = await http.post(
            "/oauth/revoke", data={"token": "no-such-token"}, auth=(rp.client.id, rp.client_secret)
        )
    assert done.status_code == 200


async def test_expired_code_is_refused(live_url: str, rp: Any, browser: Browser) -> None:
    code, verifier, _ = await browser.code_for(rp.client.id)
    clock.advance(timedelta(minutes=5))
    assert (await exchange(live_url, rp, code, verifier)).json()["error"] == "invalid_grant"


async def test_every_client_credentials_issue_is_audited_when_it_is_answered(
    live_url: str, rp: Any, db: AsyncSession
) -> None:
    import sqlalchemy as sa

    from app.core.audit import AuditEvent

    async with httpx.AsyncClient(base_url=live_url, auth=(rp.client.id, rp.client_secret)) as http:
        for _ in range(3):
            answer = await http.post("/oauth/token", data={"grant_type": "client_credentials"})
            assert answer.status_code == 200
        refused = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(rp.client.id, "tns_wrong"),
        )
        assert refused.status_code == 401
    issued = (
        (
            await db.execute(
                sa.select(AuditEvent).where(
                    AuditEvent.action == "oauth.token_issued",
                    AuditEvent.resource == f"oauth_client:{rp.client.id}",
                )
            )
        )
        .scalars()
        .all()
    )
    assert len(issued) == 3
    assert {e.details["grant_type"] for e in issued} == {"client_credentials"}
    assert all(e.request_id and e.ip for e in issued)


async def test_a_revocation_recorded_by_another_process_is_seen_within_the_sync_interval(
    live_url: str, rp: Any, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.oauth import revocations, service
    from app.oauth.models import RevokedAccessToken

    async with httpx.AsyncClient(base_url=live_url, auth=(rp.client.id, rp.client_secret)) as http:
        access = (
            await http.post("/oauth/token", data={"grant_type": "client_credentials"})
        ).json()["access_token"]
        assert (await http.post("/oauth/introspect", data={"token": access})).json()["active"]
        # Another worker revoked it: only its row tells this process.
        jti = service.decode_access_token(access)["jti"]  # type: ignore[index]
        db.add(RevokedAccessToken(jti=jti, expires_at=clock.now() + timedelta(minutes=15)))
        await db.commit()
        monkeypatch.setattr(revocations, "SYNC_SECONDS", 0.0)
        assert (await http.post("/oauth/introspect", data={"token": access})).json() == {
            "active": False
        }
