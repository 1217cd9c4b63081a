"""Settings of the OpenID Connect provider (env: OAUTH_...): lifetimes of its codes, requests,
tokens and browser sessions, its outbound calls and its DPoP checks."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import get_settings


class OAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_prefix="OAUTH_", extra="ignore", case_sensitive=False
    )

    # Lifetime of an authorization code.
    code_ttl_seconds: int = 120
    # Lifetime of a pushed or saved authorization request.
    request_ttl_seconds: int = 600
    # Lifetime of partner apps' access tokens.
    access_token_ttl_seconds: int = 600
    # Lifetime of ID tokens.
    id_token_ttl_seconds: int = 600
    # Partner refresh tokens: grace for a concurrent retry before reuse revokes the family.
    refresh_grace_seconds: int = 10
    # The sign-in session at the provider's pages.
    browser_session_days: int = 7

    # Partner URLs the provider calls (jwks_uri, backchannel_logout_uri, sector_identifier_uri)
    # may name private, loopback or link-local addresses: checked at registration and again,
    # after resolving the host, at every call. Unset: allowed in development and test (local
    # fakes on 127.0.0.1), refused in production.
    outbound_allow_private: bool | None = None
    # One outbound fetch of a partner document (JWKS, sector identifier list): connect, read and
    # whole-call bounds, and the largest body read.
    outbound_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    outbound_max_bytes: int = Field(default=65_536, ge=1024)
    # A client's fetched keys are used this long before they are fetched again.
    jwks_cache_seconds: float = Field(default=300.0, ge=0)
    # After a failed fetch, nothing is fetched from that URL for this long, doubling with each
    # further failure up to the maximum (the circuit stays open meanwhile); the last good keys
    # are still used.
    jwks_retry_after_seconds: float = Field(default=10.0, ge=0)
    jwks_retry_max_seconds: float = Field(default=300.0, ge=0)

    # DPoP (RFC 9449): a proof's `iat` may be this old, and this far in the future (clock skew).
    dpop_max_age_seconds: int = Field(default=60, ge=1, le=600)
    dpop_max_future_seconds: int = Field(default=5, ge=0, le=60)
    # Server nonces (RFC 9449 §8): required in every proof at the token endpoint, PAR and
    # UserInfo. A nonce is an HMAC of a time window under SECRET_KEY: any process accepts it,
    # nothing is stored; it stays valid for one to two windows.
    dpop_nonce_required: bool = True
    dpop_nonce_window_seconds: int = Field(default=300, ge=10, le=3600)

    @property
    def private_targets_allowed(self) -> bool:
        if self.outbound_allow_private is not None:
            return self.outbound_allow_private
        return get_settings().environment in ("development", "test")


@lru_cache
def get_oauth_settings() -> OAuthSettings:
    return OAuthSettings()
