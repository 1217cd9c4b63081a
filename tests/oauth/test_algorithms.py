"""Every algorithm the discovery document advertises works with keys of the sizes the RFCs
require (RFC 7518 §3: RSA 2048+, ES256 on P-256, ES384 on P-384; RFC 8037: Ed25519), as an
independent client library makes them: PyJWT on `cryptography`, never our own helpers. Keys
too weak for their algorithm are refused."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError
from app.oauth import dpop
from tests.oauth.support import REDIRECT, Browser, make_citizen, make_client

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def private_key(alg: str, weak: bool = False) -> Any:
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=1024 if weak else 2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP384R1() if weak else ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise AssertionError(alg)


def public_jwk(key: Any, kid: str | None = None) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, **({"kid": kid} if kid else {})}


async def discovery(live_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live_url) as http:
        return (await http.get("/.well-known/openid-configuration")).json()


def dpop_by_pyjwt(key: Any, alg: str, url: str) -> str:
    return pyjwt.encode(
        {
            "htm": "POST",
            "htu": url,
            "iat": int(time.time()),
            "jti": uuid.uuid4().hex,
            "nonce": dpop.new_nonce(),
        },
        key,
        algorithm=alg,
        headers={"typ": "dpop+jwt", "jwk": public_jwk(key)},
    )


def assertion_by_pyjwt(key: Any, alg: str, client_id: str, audience: str) -> str:
    now = int(time.time())
    return pyjwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        },
        key,
        algorithm=alg,
        headers={"kid": "k1"},
    )


DPOP_ALGS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"]
ASSERTION_ALGS = ["RS256", "PS256", "ES256"]
ID_TOKEN_ALGS = ["RS256", "ES256"]


async def test_discovery_advertises_exactly_the_algorithms_tested_here(live_url: str) -> None:
    config = await discovery(live_url)
    assert sorted(config["dpop_signing_alg_values_supported"]) == sorted(DPOP_ALGS)
    assert sorted(config["token_endpoint_auth_signing_alg_values_supported"]) == sorted(
        ASSERTION_ALGS
    )
    assert sorted(config["id_token_signing_alg_values_supported"]) == sorted(ID_TOKEN_ALGS)
    # No request objects (request / request_uri by value): nothing of theirs to advertise.
    assert config["request_parameter_supported"] is False
    assert "request_object_signing_alg_values_supported" not in config


@pytest.mark.parametrize("alg", DPOP_ALGS)
async def test_dpop_proofs_of_every_advertised_algorithm_bind_a_token(
    live_url: str,
    db: AsyncSession,
    rp: Any,
    alg: str,
) -> None:
    key = private_key(alg)
    proof = dpop_by_pyjwt(key, alg, f"{live_url}/oauth/token")
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(rp.client.id, rp.client_secret),
            headers={"DPoP": proof},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    claims = pyjwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"]["jkt"] == rfc7638(public_jwk(key))


def rfc7638(jwk: dict[str, Any]) -> str:
    members = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }[jwk["kty"]]
    canonical = "{" + ",".join(f'"{m}":"{jwk[m]}"' for m in members) + "}"
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
async def test_dpop_proofs_with_keys_too_weak_for_their_algorithm_are_refused(
    live_url: str,
    db: AsyncSession,
    rp: Any,
    alg: str,
) -> None:
    proof = dpop_by_pyjwt(private_key(alg, weak=True), alg, f"{live_url}/oauth/token")
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(rp.client.id, rp.client_secret),
            headers={"DPoP": proof},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize("alg", ASSERTION_ALGS)
async def test_client_assertions_of_every_advertised_algorithm_authenticate(
    live_url: str,
    db: AsyncSession,
    alg: str,
) -> None:
    key = private_key(alg)
    registered = await make_client(
        db,
        name=f"Đối tác {alg}",
        auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(key, kid="k1")]},
        grant_types=["client_credentials"],
        redirect_uris=[],
    )
    client_id = registered.client.id
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion_by_pyjwt(
                    key, alg, client_id, f"{live_url}/oauth/token"
                ),
            },
        )
    assert answer.status_code == 200, answer.text


async def test_a_client_assertion_in_an_unadvertised_algorithm_is_refused(
    live_url: str,
    db: AsyncSession,
) -> None:
    key = private_key("RS256")
    registered = await make_client(
        db,
        name="Đối tác",
        auth_method="private_key_jwt",
        jwks={"keys": [public_jwk(key, kid="k1")]},
        grant_types=["client_credentials"],
        redirect_uris=[],
    )
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion_by_pyjwt(
                    key, "RS512", registered.client.id, f"{live_url}/oauth/token"
                ),
            },
        )
    assert answer.json()["error"] == "invalid_client"


async def test_client_keys_too_weak_are_refused_at_registration(db: AsyncSession) -> None:
    with pytest.raises(AppError) as refused:
        await make_client(
            db,
            auth_method="private_key_jwt",
            jwks={"keys": [public_jwk(private_key("RS256", weak=True))]},
        )
    assert refused.value.error.code == "oauth.client_invalid"


@pytest.mark.parametrize("alg", ID_TOKEN_ALGS)
async def test_id_tokens_of_every_advertised_algorithm_verify_with_the_published_keys(
    live_url: str,
    db: AsyncSession,
    alg: str,
) -> None:
    await make_citizen(db)
    registered = await make_client(db, name=f"Đối tác {alg}", id_token_alg=alg)
    browser = Browser(live_url)
    code, verifier, params = await browser.code_for(registered.client.id)
    await browser.close()
    async with httpx.AsyncClient(base_url=live_url) as http:
        answer = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(registered.client.id, registered.client_secret),
        )
        published = (await http.get("/oauth/jwks")).json()
    id_token = answer.json()["id_token"]
    header = pyjwt.get_unverified_header(id_token)
    assert header["alg"] == alg
    key = pyjwt.PyJWKSet.from_dict(published)[header["kid"]]
    if alg == "RS256":
        assert key.key.key_size >= 2048
    else:
        assert key.key.curve.name == "secp256r1"
    claims = pyjwt.decode(
        id_token, key.key, algorithms=[alg], audience=registered.client.id, issuer=live_url
    )
    assert claims["nonce"] == params["nonce"]
