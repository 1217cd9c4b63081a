"""The OpenID Foundation's Basic OP checks, one test each, against the real server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from tests.oauth.support import REDIRECT, Browser, make_citizen, make_client, pkce, query_of

pytestmark = pytest.mark.slow


@pytest.fixture
async def rp(db: AsyncSession) -> Any:
    return await make_client(db)


@pytest.fixture
async def browser(live_url: str, db: AsyncSession) -> Any:
    await make_citizen(db)
    b = Browser(live_url)
    yield b
    await b.close()


async def exchange(live_url: str, rp: Any, code: str, verifier: str,
                   redirect_uri: str = REDIRECT) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return await http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }, auth=(rp.client.id, rp.client_secret))


async def id_token_claims(live_url: str, id_token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live_url) as http:
        keys = KeySet.import_key_set((await http.get("/oauth/jwks")).json())
    return jwt.decode(id_token, keys, algorithms=["RS256"]).claims


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
