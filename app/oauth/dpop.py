"""DPoP (RFC 9449) proof checking on joserfc: sender-constrained tokens.

A proof is a JWT signed by the client's key, whose public JWK is in its header; its thumbprint
(RFC 7638) is what tokens are bound to (`cnf.jkt`). Each proof's `jti` is remembered until it could
no longer pass the freshness check, so a proof cannot be replayed.

Freshness: `iat` at most OAUTH_DPOP_MAX_AGE_SECONDS (60) old and OAUTH_DPOP_MAX_FUTURE_SECONDS (5)
ahead, and a server nonce (RFC 9449 §8) in every proof: a proof made in advance by whoever held the
key for a moment is useless. A nonce is an HMAC of a time window under SECRET_KEY (stateless: any
process accepts what another issued); one is valid during its window and the next.
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
from app.core.security import constant_time_equals, keyed_hash
from app.oauth import jose_rules, replay
from app.oauth.config import get_oauth_settings

ALGS = jose_rules.DPOP_ALGS


class _ProofRegistry(jws.JWSRegistry):
    # The proof carries its public key: an RSA JWK (2048 to 4096 bits) makes a header longer
    # than joserfc's default bound of 512 bytes, which would refuse every RS256/PS256 proof.
    max_header_length = 2048


_REGISTRY = _ProofRegistry(algorithms=list(ALGS))
_KEY_TYPES: dict[str, type[ECKey] | type[RSAKey] | type[OKPKey]] = {
    "EC": ECKey,
    "RSA": RSAKey,
    "OKP": OKPKey,
}


class DPoPError(Exception):
    """The proof is missing, malformed, stale or replayed (`invalid_dpop_proof`)."""


class NonceNeeded(DPoPError):
    """The proof lacks a current server nonce (`use_dpop_nonce`; send `new_nonce()` with it)."""


def _nonce_for(window: int) -> str:
    return f"{window}.{keyed_hash(str(window), purpose='dpop-nonce')[:32]}"


def new_nonce() -> str:
    """The nonce clients must put in their next proofs (the `DPoP-Nonce` header)."""
    window = int(clock.now().timestamp()) // get_oauth_settings().dpop_nonce_window_seconds
    return _nonce_for(window)


def nonce_ok(nonce: object) -> bool:
    if not isinstance(nonce, str) or len(nonce) > 64:
        return False
    window, _, _mac = nonce.partition(".")
    if not window.isdigit():
        return False
    current = int(clock.now().timestamp()) // get_oauth_settings().dpop_nonce_window_seconds
    return int(window) in (current, current - 1) and constant_time_equals(
        nonce, _nonce_for(int(window))
    )


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
        if len(proof) > 8192:
            raise DPoPError("too long")
        compact = jws.extract_compact(to_bytes(proof), registry=_REGISTRY)
        header = compact.headers()
        if header.get("typ") != "dpop+jwt" or header.get("alg") not in ALGS:
            raise DPoPError("typ or alg")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or "d" in jwk:
            raise DPoPError("jwk")
        key_type = _KEY_TYPES.get(jwk.get("kty", ""))
        if key_type is None:
            raise DPoPError("kty")
        key = key_type.import_key(jwk)
        if not jose_rules.key_fits(key, header["alg"]):
            raise DPoPError("key too weak for its algorithm")
        claims = json.loads(jws.deserialize_compact(proof, key, registry=_REGISTRY).payload)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise DPoPError("malformed") from exc
    if not isinstance(claims, dict):
        raise DPoPError("claims")
    settings = get_oauth_settings()
    now = clock.now().timestamp()
    max_age = settings.dpop_max_age_seconds
    iat = claims.get("iat")
    jti = claims.get("jti")
    if (
        not isinstance(iat, int | float)
        or not -settings.dpop_max_future_seconds <= now - iat <= max_age
    ):
        raise DPoPError("iat")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise DPoPError("jti")
    if (
        claims.get("htm") != method
        or not isinstance(claims.get("htu"), str)
        or _htu(claims["htu"]) != _htu(url)
    ):
        raise DPoPError("htm/htu")
    if access_token is not None and claims.get("ath") != ath(access_token):
        raise DPoPError("ath")
    if settings.dpop_nonce_required and not nonce_ok(claims.get("nonce")):
        raise NonceNeeded("a DPoP nonce is required: use the DPoP-Nonce header's")
    jkt = key.thumbprint()
    fresh = await replay.first_use(
        db,
        "dpop:" + hashlib.sha256(f"{jkt}:{jti}".encode()).hexdigest(),
        expires_at=clock.now() + timedelta(seconds=max_age + settings.dpop_max_future_seconds + 60),
    )
    if not fresh:
        raise DPoPError("replayed")
    return jkt
