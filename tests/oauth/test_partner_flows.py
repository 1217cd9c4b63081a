"""As a partner developer would try it: register with the CLI, then an independent client library
(authlib's httpx client) against the real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.config import PROJECT_ROOT
from tests.oauth.conftest import _free_port
from tests.oauth.support import REDIRECT, Browser, make_citizen, query_of
from tests.support.flows import run_jobs

pytestmark = pytest.mark.slow


def cli(database_url: str, live_url: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database_url, "PUBLIC_BASE_URL": live_url}
    done = subprocess.run(
        [sys.executable, "-m", "app", *args, "--format", "json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


class LogoutReceiver:
    """A partner back end's back-channel logout endpoint, on its own port."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.fail_next = 0  # answer 500 this many times first (a partner back end that is down)
        self.port = _free_port()

        async def receive(request: Request) -> Response:
            form = await request.form()
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=500)
            self.tokens.append(str(form["logout_token"]))
            return Response(status_code=200)

        self.app = Starlette(routes=[Route("/bcl", receive, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bcl"


@pytest.fixture
async def receiver() -> AsyncIterator[LogoutReceiver]:
    rx = LogoutReceiver()
    server = uvicorn.Server(
        uvicorn.Config(rx.app, host="127.0.0.1", port=rx.port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
        await asyncio.sleep(0.02)
    yield rx
    server.should_exit = True
    await task


async def test_partner_code_pkce_userinfo_refresh_introspect_revoke_logout(
    live_url: str,
    database_url: str,
    db: AsyncSession,
    receiver: LogoutReceiver,
) -> None:
    await make_citizen(db)
    registered = await asyncio.to_thread(
        cli,
        database_url,
        live_url,
        "clients",
        "create",
        "--name",
        "Cổng dịch vụ ABC",
        "--redirect-uri",
        REDIRECT,
        "--type",
        "confidential",
        "--auth-method",
        "client_secret_basic",
        "--scope",
        "openid profile phone offline_access",
        "--backchannel-logout-uri",
        receiver.url,
        "--post-logout-redirect-uri",
        "https://rp.example.vn/bye",
    )
    assert registered["client_secret"] and registered["client_id"].startswith("tn_")

    async with httpx.AsyncClient() as http:
        meta = (await http.get(f"{live_url}/.well-known/openid-configuration")).json()
        keys = KeySet.import_key_set((await http.get(meta["jwks_uri"])).json())
    assert meta["issuer"] == live_url

    rp = AsyncOAuth2Client(
        registered["client_id"],
        registered["client_secret"],
        scope="openid profile phone offline_access",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, ui_locales="vi"
    )
    browser = Browser(live_url)
    callback = await browser.follow_until_client(await browser.http.get(url))
    location = callback.headers["location"]
    assert query_of(location)["iss"] == live_url
    token = await rp.fetch_token(
        meta["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state
    )

    id_claims = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": live_url},
        aud={"essential": True, "value": registered["client_id"]},
        nonce={"essential": True, "value": nonce},
    ).validate(id_claims)
    assert id_claims["acr"] == "urn:thainguyen:id:loa:0"

    info = (await rp.get(meta["userinfo_endpoint"])).json()
    assert info["sub"] == id_claims["sub"]
    assert info["phone_number"] == "+84912345678"

    refreshed = await rp.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]

    seen = (
        await rp.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])
    ).json()
    assert seen["active"] is True and seen["sub"] == id_claims["sub"]
    assert seen["client_id"] == registered["client_id"]
    old = (
        await rp.introspect_token(
            meta["introspection_endpoint"],
            token=token["refresh_token"],
            token_type_hint="refresh_token",
        )
    ).json()
    assert old == {"active": False}

    revoked = await rp.revoke_token(
        meta["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    after = (
        await rp.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])
    ).json()
    assert after == {"active": False}
    assert (await rp.get(meta["userinfo_endpoint"])).status_code == 401

    # A second sign-in to the same app, then RP-initiated logout ends it and tells the back end.
    verifier = generate_token(64)
    url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(20)
    )
    callback = await browser.follow_until_client(await browser.http.get(url))
    second = await rp.fetch_token(
        meta["token_endpoint"],
        authorization_response=callback.headers["location"],
        code_verifier=verifier,
        state=state,
    )
    second_sid = jwt.decode(second["id_token"], keys, algorithms=["RS256"]).claims["sid"]
    bye = await browser.http.get(
        meta["end_session_endpoint"],
        params={
            "id_token_hint": second["id_token"],
            "post_logout_redirect_uri": "https://rp.example.vn/bye",
            "state": "bye-1",
        },
    )
    assert bye.status_code == 302
    assert bye.headers["location"] == "https://rp.example.vn/bye?state=bye-1"
    assert (await rp.get(meta["userinfo_endpoint"])).status_code == 401
    # The browser session ended too: prompt=none now needs a login.
    url, _ = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=generate_token(64), prompt="none"
    )
    assert query_of((await browser.http.get(url)).headers["location"])["error"] == "login_required"

    await run_jobs()
    assert len(receiver.tokens) == 1
    logout = jwt.decode(receiver.tokens[0], keys, algorithms=["RS256"])
    assert logout.header["typ"] == "logout+jwt"
    assert logout.claims["sid"] == second_sid
    assert logout.claims["sub"] == id_claims["sub"]
    assert "http://schemas.openid.net/event/backchannel-logout" in logout.claims["events"]
    assert "nonce" not in logout.claims
    await browser.close()
    await rp.aclose()
