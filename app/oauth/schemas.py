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


class OAuthError(BaseModel):
    """An RFC 6749 error answer (section 5.2), also used by introspection, revocation, PAR,
    UserInfo (RFC 6750: with `WWW-Authenticate`) and DPoP (RFC 9449)."""

    error: str = Field(examples=["invalid_grant", "invalid_client", "invalid_token"])
    error_description: str | None = None


class ClientCreate(BaseModel):
    """What a city admin registers for a partner application."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Cổng dịch vụ công ABC"])
    redirect_uris: list[str] = Field(
        default_factory=list, max_length=20, examples=[["https://abc.example.vn/callback"]]
    )
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    type: str = Field(pattern="^(public|confidential)$", examples=["confidential"])
    auth_method: str = Field(
        pattern="^(none|client_secret_basic|client_secret_post|private_key_jwt)$",
        examples=["client_secret_basic"],
    )
    scope: str = Field(default="openid", max_length=500, examples=["openid profile phone"])
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = Field(default=None, max_length=500)
    min_loa: int = Field(default=0, ge=0, le=2)
    backchannel_logout_uri: str | None = Field(default=None, max_length=500)
    grant_types: list[str] | None = None
    first_party: bool = False
    allow_cccd: bool = False
    require_par: bool = False
    require_dpop: bool = False
    id_token_signed_response_alg: str = Field(default="RS256", pattern="^(RS256|ES256)$")
    sector_identifier_uri: str | None = Field(
        default=None,
        max_length=500,
        description=(
            "https URL of a JSON array listing every redirect URI (OpenID Connect Core 8.1), "
            "fetched and checked at registration: clients listed there share pairwise subjects. "
            "Without it the client's subjects are its own."
        ),
    )


class ClientCreated(BaseModel):
    client_id: str
    client_secret: str | None = Field(description="Shown once; only its keyed hash is stored.")
    name: str
    type: str
    auth_method: str
    scope: str
    redirect_uris: list[str]
    grant_types: list[str]


class ClientUpdate(BaseModel):
    """What a city admin may change on a registered client; fields left out stay as they are,
    `null` clears an optional one (back-channel logout, keys)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    redirect_uris: list[str] | None = Field(default=None, max_length=20)
    post_logout_redirect_uris: list[str] | None = Field(default=None, max_length=20)
    scope: str | None = Field(default=None, max_length=500, examples=["openid profile phone"])
    min_loa: int | None = Field(default=None, ge=0, le=2)
    backchannel_logout_uri: str | None = Field(default=None, max_length=500)
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = Field(default=None, max_length=500)


class ClientStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(
        default=None,
        max_length=500,
        examples=["Đối tác báo lộ khoá bí mật / partner reported a leak"],
    )


class ClientOut(BaseModel):
    """A registered client as city admins see it (never its secret)."""

    client_id: str
    name: str
    type: str
    auth_method: str
    status: str = Field(examples=["active", "disabled"])
    scope: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    min_loa: int
    backchannel_logout_uri: str | None
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    first_party: bool
    allow_cccd: bool
    require_par: bool
    require_dpop: bool
    sector_identifier_uri: str | None = None
    created_at: datetime


class ClientList(BaseModel):
    items: list[ClientOut]


class ClientSecret(BaseModel):
    client_id: str
    client_secret: str = Field(
        description="Shown once; only its keyed hash is stored. The "
        "previous secret no longer works."
    )
