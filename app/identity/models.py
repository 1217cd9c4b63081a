"""Citizen and staff accounts, declared identity (CCCD), verifications, OTP codes, consents."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, utc_field
from app.core.tables import table_of
from app.tokens.models import AuthSession


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = id_field()
    # E.164; NULL once the account is erased, so the number can register again.
    phone: str | None = Field(default=None, max_length=20, unique=True)
    password_hash: str | None = Field(default=None, max_length=200)
    full_name: str | None = Field(default=None, max_length=200)
    role: str = Field(default="citizen", max_length=32, index=True)
    # Staff: the ward they serve. Citizens: their home ward (optional).
    ward_code: str | None = Field(default=None, foreign_key="admin_units.code", index=True)
    locale: str = Field(default="vi", max_length=8)
    email: str | None = Field(default=None, max_length=200)
    identity_level: int = 0
    status: str = Field(default="active", max_length=16)  # active | disabled | deleted
    failed_logins: int = 0
    locked_until: datetime | None = utc_field(nullable=True)
    registered_by_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = utc_field(default_now=True)
    updated_at: datetime = utc_field(default_now=True)
    deleted_at: datetime | None = utc_field(nullable=True)


class CitizenIdentity(SQLModel, table=True):
    """What the citizen declared; the CCCD number only encrypted, found by its blind index."""

    __tablename__ = "citizen_identities"

    user_id: uuid.UUID = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    cccd_encrypted: str = Field(max_length=200)
    cccd_index: str = Field(max_length=64, unique=True)
    cccd_last4: str = Field(max_length=4)
    full_name: str = Field(max_length=200)
    date_of_birth: date
    gender: str = Field(max_length=8)  # male | female
    declared_at: datetime = utc_field(default_now=True)


class IdentityVerification(SQLModel, table=True):
    """Level 2: seen in person by staff of the citizen's ward. Kept as history, revocable."""

    __tablename__ = "identity_verifications"

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    level: int = 2
    verified_by_id: uuid.UUID = Field(foreign_key="users.id")
    ward_code: str = Field(max_length=32)
    document_kind: str = Field(max_length=32)
    document_note: str | None = Field(default=None, max_length=500)
    verified_at: datetime = utc_field(default_now=True)
    revoked_at: datetime | None = utc_field(nullable=True)
    revoked_by_id: uuid.UUID | None = Field(default=None)
    revoke_reason: str | None = Field(default=None, max_length=500)


class OtpChallenge(SQLModel, table=True):
    __tablename__ = "otp_challenges"
    __table_args__ = (sa.Index("ix_otp_phone_purpose", "phone", "purpose", "created_at"),)

    id: uuid.UUID = id_field()
    phone: str = Field(max_length=20)
    purpose: str = Field(max_length=32)
    code_hash: str = Field(max_length=64)
    attempts: int = 0
    created_at: datetime = utc_field(default_now=True)
    expires_at: datetime = utc_field()
    consumed_at: datetime | None = utc_field(nullable=True)


class ConsentRecord(SQLModel, table=True):
    """Consent to processing under Law 91/2025, with the policy version the citizen saw."""

    __tablename__ = "consent_records"

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    purpose: str = Field(max_length=64)
    policy_version: str = Field(max_length=32)
    granted_at: datetime = utc_field(default_now=True)
    withdrawn_at: datetime | None = utc_field(nullable=True)
    ip: str | None = Field(default=None, max_length=64)


class StaffDuty(SQLModel, table=True):
    """A ward staff member on duty until `until`: urgent ward notices (camera alerts) go to the
    staff on duty. One row per person; going off duty deletes it, an expired one is off."""

    __tablename__ = "staff_duty"

    user_id: uuid.UUID = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    ward_code: str = Field(max_length=32, index=True)
    started_at: datetime = utc_field(default_now=True)
    until: datetime = utc_field()


def signed_in_account() -> tuple[sa.Join, tuple[sa.ColumnElement[bool], ...]]:
    """Accounts joined to their sign-ins, and what makes a bearer token's caller real: the
    account active and the session behind the token alive. Bind `user_id`, `session_id`, `now`.
    Every query that authenticates a caller uses it (the ORM principal, GET /me, staff reads)."""
    users, sessions = table_of(User), table_of(AuthSession)
    return users.join(sessions, sessions.c.user_id == users.c.id), (
        users.c.id == sa.bindparam("user_id"),
        users.c.status == "active",
        sessions.c.id == sa.bindparam("session_id"),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > sa.bindparam("now", type_=sessions.c.expires_at.type),
    )
