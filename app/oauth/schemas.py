"""Request and response shapes of the OpenID Connect provider's JSON endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AllowedApp(BaseModel):
    client_id: str
    name: str
    scopes: list[str] = Field(examples=[["openid", "profile", "phone"]])
    granted_at: datetime


class AllowedApps(BaseModel):
    items: list[AllowedApp]


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class OpenIdConfiguration(BaseModel):
    """OpenID Provider Metadata (OpenID Connect Discovery 1.0, RFC 8414)."""

    model_config = ConfigDict(extra="allow")
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


class TokenAnswer(BaseModel):
    """RFC 6749 token response, or its error (`error`, `error_description`)."""

    model_config = ConfigDict(extra="allow")
    access_token: str | None = None
    token_type: str | None = Field(default=None, examples=["Bearer", "DPoP"])
    expires_in: int | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None


class OAuthAnswer(BaseModel):
    """An OAuth JSON answer (introspection, PAR, userinfo claims) or its RFC 6749 error."""

    model_config = ConfigDict(extra="allow")
