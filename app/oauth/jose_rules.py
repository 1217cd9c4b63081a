"""Which JOSE algorithms and keys the provider accepts from partners (client assertions, DPoP
proofs), written once: the discovery document advertises exactly these."""

from __future__ import annotations

from typing import Any, cast

from joserfc.jwk import ECKey, KeySet, KeySetSerialization, OKPKey, RSAKey

# RFC 7518 §3.3 and §3.5: RSA keys of 2048 bits or more. EC curves follow the algorithm
# (ES256: P-256, ES384: P-384), EdDSA is Ed25519 or Ed448 (RFC 8037).
MIN_RSA_BITS = 2048
CLIENT_ASSERTION_ALGS = ("RS256", "PS256", "ES256")
DPOP_ALGS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
CURVES = {"ES256": {"P-256"}, "ES384": {"P-384"}, "EdDSA": {"Ed25519", "Ed448"}}


def key_fits(key: Any, alg: str | None = None) -> bool:
    """A public key strong enough for the RFCs, of the curve its algorithm names."""
    if isinstance(key, RSAKey):
        return key.raw_value.key_size >= MIN_RSA_BITS and (alg is None or alg[:2] in ("RS", "PS"))
    if isinstance(key, ECKey | OKPKey):
        curve = key.as_dict(private=False).get("crv")
        if alg is None:
            return curve in {"P-256", "P-384", "P-521", "Ed25519", "Ed448"}
        return curve in CURVES.get(alg, set())
    return False


def usable_key_set(jwks: dict[str, Any]) -> KeySet:
    """A client's registered keys, without those too weak to trust (ValueError when none is left
    or the set is malformed)."""
    keys = KeySet.import_key_set(cast(KeySetSerialization, jwks))  # joserfc checks its shape
    strong = [key for key in keys.keys if key_fits(key)]
    if not strong:
        raise ValueError("no usable key")
    return KeySet(strong)
