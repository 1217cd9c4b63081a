"""Forged bearer tokens: whatever an attacker puts in a token's header, an authenticated route
answers 401 (never a 500), before any key lookup the header could upset."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from joserfc import jws
from sqlalchemy.ext.asyncio import AsyncSession

from app.tokens.keys import key_store


def _b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _forged() -> dict[str, str]:
    kid, key = key_store.signing_key("ES256")
    body = _b64({"sub": "x", "sid": "y"})
    ours = {"alg": "ES256", "kid": kid, "typ": "at+jwt"}
    return {
        "header is a number (MQ.e30.x)": "MQ.e30.x",
        "header is a JSON array": f"{_b64([1, 2])}.{body}.x",
        "header is JSON null": f"{_b64(None)}.{body}.x",
        "header is a JSON string": f"{_b64('at+jwt')}.{body}.x",
        "kid is an object": f"{_b64({**ours, 'kid': {'a': 1}})}.{body}.x",
        "kid is a list": f"{_b64({**ours, 'kid': [kid]})}.{body}.x",
        "kid is a number": f"{_b64({**ours, 'kid': 7})}.{body}.x",
        "alg is a number": f"{_b64({**ours, 'alg': 7})}.{body}.x",
        "alg is a list": f"{_b64({**ours, 'alg': ['ES256']})}.{body}.x",
        "alg is none": f"{_b64({**ours, 'alg': 'none'})}.{body}.",
        "crit is a number": f"{_b64({**ours, 'crit': 5})}.{body}.x",
        "header not base64": "%%%.e30.x",
        "header not ASCII": "é.e30.x",
        "header not UTF-8": _b64(bytes([0xFF, 0xFE])) + f".{body}.x",
        "header deeply nested": f"{_b64(b'[' * 2500 + b']' * 2500)}.{body}.x",
        "too many segments": f"{_b64(ours)}.{body}.x.y",
        "one segment": _b64(ours),
        "huge token": f"{_b64(ours)}.{_b64(b'a' * 200_000)}.x",
        "signed by us, payload a list": jws.serialize_compact(ours, b"[1]", key),
        "signed by us, payload not JSON": jws.serialize_compact(ours, b"\xff", key),
        "signed by us, an extra jwk header": jws.serialize_compact(
            {**ours, "jwk": key.as_dict(private=False)}, body.encode(), key
        ),
    }


ROUTES = [("GET", "/api/v1/me"), ("GET", "/api/v1/me/apps"), ("GET", "/api/v1/me/sessions")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_forged_bearer_tokens_are_401_on_authenticated_routes(
    client: httpx.AsyncClient, db: AsyncSession, method: str, path: str
) -> None:
    failures = {}
    for name, token in _forged().items():
        answer = await client.request(
            method, path, headers={"Authorization": f"Bearer {token}".encode()}
        )
        if answer.status_code != 401 or answer.json().get("code") != "auth.token_invalid":
            failures[name] = (answer.status_code, answer.text[:200])
    assert not failures, failures


async def test_forged_tokens_are_invalid_at_userinfo_and_logout(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    for name, token in _forged().items():
        info = await client.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {token}".encode()}
        )
        assert info.status_code == 401, (name, info.status_code, info.text[:200])
        assert info.json() == {"error": "invalid_token"}
        out = await client.post("/oauth/logout", data={"id_token_hint": token})
        assert out.status_code == 400, (name, out.status_code)
