"""DPoP (RFC 9449) proof checking on joserfc: sender-constrained tokens.

A proof is a JWT signed by the client's key, whose public JWK is in its header; its thumbprint
(RFC 7638) is what tokens are bound to (`cnf.jkt`). Each proof's `jti` is remembered until it could
no longer pass the freshness check, so a proof cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.util import to_bytes
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.config import get_settings
from app.oauth import replay

ALGS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")


class DPoPError(Exception):
    """The proof is missing, malformed, stale or replayed (`invalid_dpop_proof`)."""


def _htu(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def ath(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def verify_proof(
    db: AsyncSession, proof: str, *, method: str, url: str, access_token: str | None = None
) -> str:
    """Check a DPoP proof for this request; return the key's thumbprint (jkt)."""
    try:
        compact = jws.extract_compact(to_bytes(proof))
        header = compact.headers()
        if header.get("typ") != "dpop+jwt" or header.get("alg") not in ALGS:
            raise DPoPError("typ or alg")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or "d" in jwk:
            raise DPoPError("jwk")
        key_type = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}.get(jwk.get("kty", ""))
        if key_type is None:
            raise DPoPError("kty")
        key = key_type.import_key(jwk)
        claims = json.loads(
            jws.deserialize_compact(proof, key, algorithms=[header["alg"]]).payload
        )
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise DPoPError("malformed") from exc
    if not isinstance(claims, dict):
        raise DPoPError("claims")
    now = clock.now().timestamp()
    max_age = get_settings().oauth_dpop_max_age_seconds
    iat = claims.get("iat")
    jti = claims.get("jti")
    if not isinstance(iat, int | float) or abs(now - iat) > max_age:
        raise DPoPError("iat")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise DPoPError("jti")
    if claims.get("htm") != method or not isinstance(claims.get("htu"), str) \
            or _htu(claims["htu"]) != _htu(url):
        raise DPoPError("htm/htu")
    if access_token is not None and claims.get("ath") != ath(access_token):
        raise DPoPError("ath")
    jkt = key.thumbprint()
    fresh = await replay.first_use(
        db, "dpop:" + hashlib.sha256(f"{jkt}:{jti}".encode()).hexdigest(),
        expires_at=clock.now() + timedelta(seconds=2 * max_age),
    )
    if not fresh:
        raise DPoPError("replayed")
    return jkt
