"""Tables of the OpenID Connect provider: clients, authorization requests and codes, consents,
links from a client's token family to the browser sign-in it came from, and replay guards.

Sessions, refresh tokens and signing keys are `app.tokens`' tables: one token service.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, json_field, utc_field


class OAuthClient(SQLModel, table=True):
    __tablename__ = "oauth_clients"

    id: str = Field(primary_key=True, max_length=100)  # the client_id
    name: str = Field(max_length=200)
    client_type: str = Field(max_length=16)  # public | confidential
    auth_method: str = Field(max_length=32)  # none | client_secret_basic | ... | private_key_jwt
    # keyed_hash of the server-made secret (high entropy): fast and constant-time compared.
    secret_hash: str | None = Field(default=None, max_length=64)
    redirect_uris: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    grant_types: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    scope: str = Field(default="openid", max_length=500)
    min_loa: int = 0
    first_party: bool = False
    allow_cccd: bool = False
    # Pairwise subjects are computed per sector: `client:<id>` (the client alone), or the host of
    # a verified sector_identifier_uri (OIDC Core 8.1), kept to check redirect URI changes.
    sector_identifier: str = Field(max_length=300)
    sector_identifier_uri: str | None = Field(default=None, max_length=500)
    jwks: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    jwks_uri: str | None = Field(default=None, max_length=500)
    backchannel_logout_uri: str | None = Field(default=None, max_length=500)
    require_par: bool = False
    require_dpop: bool = False
    # id_token_signed_response_alg (OpenID Dynamic Client Registration): RS256 or ES256.
    id_token_alg: str = Field(default="RS256", max_length=8)
    status: str = Field(default="active", max_length=16)
    created_at: datetime = utc_field(default_now=True)


class AuthorizationRequest(SQLModel, table=True):
    """An authorization request kept across the login and consent pages, or pushed (PAR)."""

    __tablename__ = "oauth_requests"

    id: str = Field(primary_key=True, max_length=64)  # random; the handle is its keyed hash
    client_id: str = Field(foreign_key="oauth_clients.id", ondelete="CASCADE", max_length=100)
    params: dict[str, Any] = json_field()
    pushed: bool = False
    created_at: datetime = utc_field(default_now=True)
    expires_at: datetime = utc_field()
    used_at: datetime | None = utc_field(nullable=True)


class AuthorizationCode(SQLModel, table=True):
    __tablename__ = "oauth_codes"

    id: uuid.UUID = id_field()
    code_hash: str = Field(max_length=64, unique=True)
    client_id: str = Field(foreign_key="oauth_clients.id", ondelete="CASCADE", max_length=100)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    browser_session_id: uuid.UUID | None = Field(default=None)
    redirect_uri: str = Field(max_length=500)
    scope: str = Field(max_length=500)
    nonce: str | None = Field(default=None, max_length=500)
    code_challenge: str = Field(max_length=128)
    code_challenge_method: str = Field(default="S256", max_length=8)
    acr: str = Field(max_length=64)
    auth_time: datetime = utc_field()
    dpop_jkt: str | None = Field(default=None, max_length=64)
    # The identity level the client required (its min_loa, raised by acr_values).
    required_loa: int = 0
    created_at: datetime = utc_field(default_now=True)
    expires_at: datetime = utc_field()
    used_at: datetime | None = utc_field(nullable=True)
    # The token family issued from this code: revoked if the code is presented again.
    issued_session_id: uuid.UUID | None = Field(default=None)


class Consent(SQLModel, table=True):
    """What a citizen allowed a client; remembered per client and scope set."""

    __tablename__ = "oauth_consents"
    __table_args__ = (sa.UniqueConstraint("user_id", "client_id", name="uq_oauth_consent"),)

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    client_id: str = Field(foreign_key="oauth_clients.id", ondelete="CASCADE", max_length=100)
    scope: str = Field(max_length=500)
    granted_at: datetime = utc_field(default_now=True)
    revoked_at: datetime | None = utc_field(nullable=True)


class ClientSession(SQLModel, table=True):
    """A client's token family (an `auth_sessions` row) and the browser sign-in it came from:
    logging out of the browser session ends these, and back-channel logout tells the clients."""

    __tablename__ = "oauth_client_sessions"

    auth_session_id: uuid.UUID = Field(
        primary_key=True, foreign_key="auth_sessions.id", ondelete="CASCADE"
    )
    browser_session_id: uuid.UUID | None = Field(default=None, index=True)
    client_id: str = Field(max_length=100, index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    dpop_jkt: str | None = Field(default=None, max_length=64)
    # The identity level the client required when it was authorized: the family ends if the
    # citizen's level falls below it (`app.tokens.service.identity_level_changed`).
    required_loa: int = 0


class UsedJti(SQLModel, table=True):
    """Replay guard: DPoP proofs and client assertions seen, until they could no longer pass."""

    __tablename__ = "oauth_used_jti"

    key: str = Field(primary_key=True, max_length=100)
    expires_at: datetime = utc_field(index=True)


class RevokedAccessToken(SQLModel, table=True):
    """Access tokens without a session (client_credentials) revoked before their expiry."""

    __tablename__ = "oauth_revoked_tokens"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = utc_field(index=True)
