"""Signing keys, sign-in sessions (token families) and refresh tokens.

Shared by the first-party app login (`app.identity`) and the OpenID Connect provider
(`app.oauth`): one token service, one place for revocation.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, json_field, utc_field


class SigningKey(SQLModel, table=True):
    __tablename__ = "signing_keys"

    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=16)
    # The private JWK, encrypted with PII_ENCRYPTION_KEY; the public JWK in clear for the JWKS.
    private_jwk_encrypted: str
    public_jwk: dict[str, Any] = json_field()
    # active | next (published, signs KEY_PUBLISH_SECONDS after creation) | retired
    status: str = Field(default="active", max_length=16)
    created_at: datetime = utc_field(default_now=True)
    retired_at: datetime | None = utc_field(nullable=True)


class AuthSession(SQLModel, table=True):
    """One sign-in on one device (or for one OAuth client): a family of refresh tokens."""

    __tablename__ = "auth_sessions"
    __table_args__ = (sa.Index("ix_auth_sessions_user_active", "user_id", "revoked_at"),)

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    client_id: str | None = Field(default=None, max_length=100)
    scope: str = Field(default="", max_length=1000)
    device_name: str | None = Field(default=None, max_length=200)
    user_agent: str | None = Field(default=None, max_length=500)
    ip: str | None = Field(default=None, max_length=64)
    auth_time: datetime = utc_field(default_now=True)
    acr: str | None = Field(default=None, max_length=64)
    created_at: datetime = utc_field(default_now=True)
    last_used_at: datetime = utc_field(default_now=True)
    expires_at: datetime = utc_field()
    revoked_at: datetime | None = utc_field(nullable=True)
    revoke_reason: str | None = Field(default=None, max_length=64)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    id: uuid.UUID = id_field()
    session_id: uuid.UUID = Field(foreign_key="auth_sessions.id", ondelete="CASCADE", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = utc_field(default_now=True)
    used_at: datetime | None = utc_field(nullable=True)
    replaced_by_id: uuid.UUID | None = Field(default=None)
