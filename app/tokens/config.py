"""Settings of the token service (`app/tokens`): the app's access and refresh tokens."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class TokenSettings(BaseSettings):
    """Tokens: the mobile app's access and refresh tokens (`app/tokens`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Lifetime of the app's access tokens.
    access_token_ttl_seconds: int = 900
    # Lifetime of the app's refresh tokens (a session's).
    refresh_token_ttl_days: int = 30
    # Grace for a concurrent retry with a just-used refresh token.
    refresh_reuse_grace_seconds: int = 0
    # `aud` of the mobile app's access tokens.
    first_party_audience: str = "thainguyen-app"


@lru_cache
def get_token_settings() -> TokenSettings:
    return TokenSettings()
