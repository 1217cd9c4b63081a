"""Audit log of personal-data access and changes: who, whose, what, when, from where, why.

Entries are written in the same transaction as the action they record, so an action that rolled
back leaves no entry and a committed one always has its entry. Kept for AUDIT_RETENTION_DAYS even
when the subject deletes the account (a legal record; see DELETE /api/v1/me), and no longer: the
periodic `maintenance.purge_audit_events` deletes older entries.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from app.core import clock
from app.core.config import get_settings
from app.core.db import id_field, json_field, new_id, utc_field
from app.core.tables import rows_matched, table_of


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_subject_at", "subject_id", "at"),)

    id: uuid.UUID = id_field()
    at: datetime = utc_field(default_now=True, index=True)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_role: str | None = Field(default=None, max_length=32)
    action: str = Field(max_length=100, index=True)
    subject_id: uuid.UUID | None = Field(default=None)
    resource: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=500)
    ip: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=128)
    details: dict[str, Any] = json_field()


class AuditContext:
    """Who is acting and from where; built per request by `app.identity.dependencies`."""

    def __init__(
        self,
        *,
        actor_id: uuid.UUID | None = None,
        actor_role: str | None = None,
        ip: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.actor_id = actor_id
        self.actor_role = actor_role
        self.ip = ip
        self.request_id = request_id


async def record(
    session: AsyncSession,
    ctx: AuditContext | None,
    action: str,
    *,
    subject_id: uuid.UUID | None = None,
    resource: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """One entry, in the caller's transaction: kept if and only if the action commits.

    One prebuilt Core INSERT on the session's connection, not the ORM unit of work: some
    entries are their request's only write (a partner's client_credentials token)."""
    ctx = ctx or AuditContext()
    await session.flush()  # the caller's pending changes first, as they happened
    await session.execute(
        _INSERT,
        {
            "id": new_id(),
            "at": clock.now(),
            "actor_id": ctx.actor_id,
            "actor_role": ctx.actor_role,
            "action": action,
            "subject_id": subject_id,
            "resource": resource,
            "reason": reason,
            "ip": ctx.ip,
            "request_id": ctx.request_id,
            "details": details or {},
        },
    )


_INSERT = sa.insert(table_of(AuditEvent))


async def events_about(session: AsyncSession, subject_id: uuid.UUID) -> list[AuditEvent]:
    rows = await session.execute(
        sa.select(AuditEvent)
        .where(col(AuditEvent.subject_id) == subject_id)
        .order_by(col(AuditEvent.at))
    )
    return list(rows.scalars())


# What an entry says about the person who acted: the subject's own, but another person's personal
# data (a staff member's account, address and request) when someone else acted.
ACTOR_FIELDS = ("actor_id", "ip", "request_id")


async def export_about(session: AsyncSession, subject_id: uuid.UUID) -> list[dict[str, Any]]:
    """The entries about a person, as their personal-data export shows them: what was done with
    their data, when, by which role and why; who acted and from where only for their own actions.
    Another person's data (a staff member's IP address, account id) is not theirs to receive."""
    out = []
    for event in await events_about(session, subject_id):
        row = event.model_dump(mode="json")
        if event.actor_id != subject_id:
            row.update(dict.fromkeys(ACTOR_FIELDS))
        out.append(row)
    return out


async def purge_expired(session: AsyncSession) -> int:
    """Delete the entries older than AUDIT_RETENTION_DAYS; returns how many."""
    cutoff = clock.now() - timedelta(days=get_settings().audit_retention_days)
    result = await session.execute(sa.delete(AuditEvent).where(col(AuditEvent.at) < cutoff))
    return int(rows_matched(result) or 0)
