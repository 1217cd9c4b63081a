"""Steps of a citizen's browser and of a partner's back end against the provider."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from app.oauth import clients, dpop
from tests.support.flows import PASSWORD, make_user

REDIRECT = "https://rp.example.vn/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    return verifier, challenge.rstrip("=")


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden_fields(page: str) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return {name: html.unescape(value) for name, value in fields}


async def make_client(db: AsyncSession, **overrides: Any) -> clients.NewClient:
    options: dict[str, Any] = {
        "name": "Ứng dụng Đối tác",
        "redirect_uris": [REDIRECT],
        "client_type": "confidential",
        "auth_method": "client_secret_basic",
        "scope": "openid profile phone address offline_access",
        "post_logout_redirect_uris": ["https://rp.example.vn/bye"],
    }
    options.update(overrides)
    created = await clients.create_client(db, **options)
    await db.commit()
    return created


async def make_citizen(db: AsyncSession, phone: str = "0912345678", **kwargs: Any) -> Any:
    return await make_user(db, phone, "citizen", full_name="Nguyễn Thị Lan", **kwargs)


class Browser:
    """A citizen's browser: follows our pages, keeps cookies, stops at the client's redirect."""

    def __init__(self, base_url: str, lang: str = "vi") -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(
            base_url=base_url, follow_redirects=False, headers={"Accept-Language": lang}
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def authorize(self, params: dict[str, str], method: str = "GET") -> httpx.Response:
        if method == "POST":
            return await self.http.post("/oauth/authorize", data=params)
        return await self.http.get("/oauth/authorize?" + urlencode(params))

    async def follow_until_client(
        self,
        response: httpx.Response,
        *,
        phone: str = "0912345678",
        password: str = PASSWORD,
        consent: str | None = "allow",
    ) -> httpx.Response:
        """Walk login and consent pages until a redirect leaves the provider."""
        for _ in range(10):
            if response.status_code not in (302, 303):
                return response
            location = response.headers["location"]
            if location.startswith("http") and not location.startswith(self.base_url):
                return response
            page = await self.http.get(location)
            if page.status_code in (302, 303):
                response = page
                continue
            if page.status_code != 200:
                return page
            path = urlsplit(location).path
            fields = hidden_fields(page.text)
            if path == "/oauth/login":
                response = await self.http.post(
                    "/oauth/login", data={**fields, "phone": phone, "password": password}
                )
            elif path == "/oauth/consent":
                if consent is None:
                    return page
                response = await self.http.post(
                    "/oauth/consent", data={**fields, "decision": consent}
                )
            else:
                response = page
        raise AssertionError("too many redirects")

    async def code_for(
        self,
        client_id: str,
        *,
        scope: str = "openid profile offline_access",
        extra: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[str, str, dict[str, str]]:
        verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": uuid.uuid4().hex,
            "nonce": uuid.uuid4().hex,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **(extra or {}),
        }
        final = await self.follow_until_client(await self.authorize(params), **kwargs)
        assert final.status_code == 302, (final.status_code, final.text, final.headers)
        answer = query_of(final.headers["location"])
        assert answer.get("state") == params["state"], answer
        assert "code" in answer, answer
        return answer["code"], verifier, params


CURRENT_NONCE: Any = object()  # dpop_proof's default: the server's current DPoP nonce


def dpop_proof(
    key: ECKey,
    method: str,
    url: str,
    access_token: str | None = None,
    iat: int | None = None,
    jti: str | None = None,
    nonce: str | None = CURRENT_NONCE,
) -> str:
    """A DPoP proof; with the nonce the server currently asks for (the stateless nonce a
    `use_dpop_nonce` answer would give: see test_dpop_nonce_is_demanded...), None for none."""
    claims: dict[str, Any] = {
        "htm": method,
        "htu": url,
        "iat": iat or int(time.time()),
        "jti": jti or uuid.uuid4().hex,
    }
    if nonce is CURRENT_NONCE:
        nonce = dpop.new_nonce()
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jwt.encode(header, claims, key, algorithms=["ES256"])


async def exchange(
    live_url: str, rp: Any, code: str, verifier: str, redirect_uri: str = REDIRECT
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(rp.client.id, rp.client_secret),
        )


async def refresh(live_url: str, rp: Any, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return await http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=(rp.client.id, rp.client_secret),
        )


async def id_token_claims(live_url: str, id_token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live_url) as http:
        keys = KeySet.import_key_set((await http.get("/oauth/jwks")).json())
    return jwt.decode(id_token, keys, algorithms=["RS256"]).claims


async def userinfo(live_url: str, access_token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return await http.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )


def base_params(client_id: str, **extra: str) -> tuple[str, dict[str, str]]:
    """An authorization request; empty values drop a parameter. The PKCE verifier is returned
    (and kept under `__verifier`, which the server ignores as an unknown parameter)."""
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile offline_access",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    params = {k: v for k, v in params.items() if v != ""}
    params["__verifier"] = verifier
    return verifier, params
