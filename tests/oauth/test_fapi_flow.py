"""A `private_key_jwt` client with PAR and DPoP (the Singpass / FAPI 2.0 shape), with authlib's
client and our own DPoP proofs, against the real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession

from app.oauth import clients
from tests.oauth.support import REDIRECT, Browser, dpop_proof, make_citizen, make_client, query_of

pytestmark = pytest.mark.slow

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_private_key_jwt_client_with_par_and_dpop(
    live_url: str,
    db: AsyncSession,
    tmp_path: Path,
) -> None:
    await make_citizen(db)
    client_key = RSAKey.generate_key(2048, private=True, auto_kid=True)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [client_key.as_dict(private=False)]}))
    # Registered as the CLI does (`--auth-method private_key_jwt --jwks-file F --require-par
    # --require-dpop`); the CLI itself is exercised by the partner flow test.
    registered = await make_client(
        db,
        name="Ngân hàng XYZ",
        auth_method="private_key_jwt",
        scope="openid profile offline_access",
        jwks=clients.load_jwks_file(str(jwks_file)),
        require_par=True,
        require_dpop=True,
    )
    client_id = registered.client.id
    assert registered.client_secret is None
    token_url, par_url = f"{live_url}/oauth/token", f"{live_url}/oauth/par"
    userinfo_url = f"{live_url}/oauth/userinfo"
    dpop_key = ECKey.generate_key("P-256", private=True)
    verifier = generate_token(64)
    authorize_params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile offline_access",
        "state": "s-par",
        "nonce": "n-par",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    browser = Browser(live_url)
    http = httpx.AsyncClient()

    # Without PAR this client is refused at the authorization endpoint.
    direct = await browser.authorize(authorize_params)
    assert direct.status_code == 400

    def assertion(audience: str) -> str:
        return private_key_jwt_sign(client_key, client_id, audience)

    pushed = await http.post(
        par_url,
        data={
            **authorize_params,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(par_url),
        },
        headers={"DPoP": dpop_proof(dpop_key, "POST", par_url)},
    )
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")

    # A bad assertion (another key) is refused.
    stranger = ECKey.generate_key("P-256", private=True)
    refused = await http.post(
        par_url,
        data={
            **authorize_params,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": private_key_jwt_sign(stranger, client_id, par_url, alg="ES256"),
        },
    )
    assert refused.status_code in (400, 401)
    assert refused.json()["error"] == "invalid_client"

    start = await browser.http.get(
        "/oauth/authorize", params={"client_id": client_id, "request_uri": request_uri}
    )
    callback = await browser.follow_until_client(start)
    answer = query_of(callback.headers["location"])
    assert answer["state"] == "s-par"

    rp = AsyncOAuth2Client(
        client_id,
        client_key,
        scope="openid profile offline_access",
        redirect_uri=REDIRECT,
        token_endpoint_auth_method=PrivateKeyJWT(token_url),
    )
    # The code was bound to the DPoP key at PAR: a token request without a proof fails.
    with pytest.raises(Exception, match="invalid_grant"):
        await rp.fetch_token(token_url, code=answer["code"], code_verifier=verifier)

    browser_2 = await browser.http.get("/oauth/authorize", params={**authorize_params})
    assert browser_2.status_code == 400  # still PAR-only

    # Start again through PAR, then use the proof.
    pushed = await http.post(
        par_url,
        data={
            **authorize_params,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(par_url),
        },
        headers={"DPoP": dpop_proof(dpop_key, "POST", par_url)},
    )
    callback = await browser.follow_until_client(
        await browser.http.get(
            "/oauth/authorize",
            params={"client_id": client_id, "request_uri": pushed.json()["request_uri"]},
        )
    )
    code = query_of(callback.headers["location"])["code"]
    proof = dpop_proof(dpop_key, "POST", token_url)
    token: dict[str, Any] = await rp.fetch_token(
        token_url, code=code, code_verifier=verifier, headers={"DPoP": proof}
    )
    assert token["token_type"] == "DPoP"
    keys = KeySet.import_key_set((await http.get(f"{live_url}/oauth/jwks")).json())
    access_claims = jwt.decode(token["access_token"], keys).claims
    assert access_claims["cnf"]["jkt"] == dpop_key.thumbprint()

    # UserInfo needs the DPoP scheme and a fresh proof bound to the token.
    access = token["access_token"]
    as_bearer = await http.get(userinfo_url, headers={"Authorization": f"Bearer {access}"})
    assert as_bearer.status_code == 401
    ok = await http.get(
        userinfo_url,
        headers={
            "Authorization": f"DPoP {access}",
            "DPoP": dpop_proof(dpop_key, "GET", userinfo_url, access_token=access),
        },
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["name"] == "Nguyễn Thị Lan"

    # A replayed proof is refused.
    replayed = await http.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(token_url),
        },
        headers={"DPoP": proof},
    )
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_dpop_proof"

    # Refresh with another key is refused; with the bound key it rotates.
    other_key = ECKey.generate_key("P-256", private=True)
    wrong = await http.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(token_url),
        },
        headers={"DPoP": dpop_proof(other_key, "POST", token_url)},
    )
    assert wrong.json()["error"] == "invalid_grant"
    fresh = await http.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(token_url),
        },
        headers={"DPoP": dpop_proof(dpop_key, "POST", token_url)},
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["token_type"] == "DPoP"

    # A client assertion is good once.
    used = assertion(token_url)
    first = await http.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion": used,
            "client_assertion_type": ASSERTION_TYPE,
        },
        headers={"DPoP": dpop_proof(dpop_key, "POST", token_url)},
    )
    assert first.status_code == 200, first.text
    again = await http.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion": used,
            "client_assertion_type": ASSERTION_TYPE,
        },
        headers={"DPoP": dpop_proof(dpop_key, "POST", token_url)},
    )
    assert again.json()["error"] == "invalid_client"
    await http.aclose()
    await browser.close()
    await rp.aclose()


async def test_private_key_jwt_with_keys_at_the_clients_jwks_uri(
    live_url: str, db: AsyncSession
) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tests.oauth.conftest import _free_port

    client_key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    port = _free_port()

    async def jwks(_request: Any) -> JSONResponse:
        return JSONResponse({"keys": [client_key.as_dict(private=False)]})

    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/jwks.json", jwks)]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    import asyncio

    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    try:
        registered = await make_client(
            db,
            name="Bảo hiểm",
            auth_method="private_key_jwt",
            jwks_uri=f"http://127.0.0.1:{port}/jwks.json",
        )
        token_url = f"{live_url}/oauth/token"
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": private_key_jwt_sign(
                        client_key, registered.client.id, token_url, alg="ES256"
                    ),
                },
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["token_type"] == "Bearer"
    finally:
        server.should_exit = True
        await task
