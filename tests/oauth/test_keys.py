"""Signing keys rotate without breaking anyone: published before they sign, kept after."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jws
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.tokens import keys
from app.tokens.keys import key_store
from tests.oauth.support import Browser, exchange

pytestmark = pytest.mark.slow


async def kids(live_url: str) -> set[str]:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return {k["kid"] for k in (await http.get("/oauth/jwks")).json()["keys"]}


async def id_token_kid(live_url: str, rp: Any, browser: Browser) -> str:
    code, verifier, _ = await browser.code_for(rp.client.id)
    id_token = (await exchange(live_url, rp, code, verifier)).json()["id_token"]
    return jws.extract_compact(id_token.encode()).headers()["kid"]


async def test_rotated_key_is_published_before_it_signs_and_kept_after(
    live_url: str, rp: Any, browser: Browser, db: AsyncSession
) -> None:
    old_kid = await id_token_kid(live_url, rp, browser)
    new = await keys.rotate(db, "RS256")
    await db.commit()
    await key_store.load(db)
    try:
        assert {old_kid, new.kid} <= await kids(live_url)
        assert await id_token_kid(live_url, rp, browser) == old_kid  # not signing yet

        clock.advance(timedelta(seconds=keys.KEY_PUBLISH_SECONDS + 1))
        assert await id_token_kid(live_url, rp, browser) == new.kid
        assert old_kid in await kids(live_url)  # tokens it signed are still checkable

        clock.advance(timedelta(seconds=keys.KEY_RETAIN_SECONDS))
        assert old_kid not in await kids(live_url)
        assert new.kid in await kids(live_url)
    finally:
        # Keys outlive the test (kept between tests): leave one RS256 signer behind.
        await db.delete(new)
        await db.commit()
        clock.reset()
        await key_store.load(db)


async def test_a_client_registered_for_es256_gets_es256_id_tokens(
    live_url: str, browser: Browser, db: AsyncSession
) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    from tests.oauth.support import make_client

    rp = await make_client(db, id_token_alg="ES256")
    code, verifier, _ = await browser.code_for(rp.client.id)
    id_token = (await exchange(live_url, rp, code, verifier)).json()["id_token"]
    async with httpx.AsyncClient(base_url=live_url) as http:
        keyset = KeySet.import_key_set((await http.get("/oauth/jwks")).json())
    decoded = jwt.decode(id_token, keyset, algorithms=["ES256"])
    assert decoded.header["alg"] == "ES256" and decoded.header["kid"]
    assert decoded.claims["aud"] == rp.client.id
