"""Procedures, dossiers, their documents and timeline, daily code counters, idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, json_field, utc_field


class Procedure(SQLModel, table=True):
    __tablename__ = "procedures"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=300)
    name_en: str = Field(max_length=300)
    field: str = Field(max_length=100)
    field_en: str = Field(max_length=100)
    online_level: str = Field(max_length=16)  # full | partial
    competent_level: str = Field(max_length=16)  # ward | province
    processing_days: int
    fee_vnd: int = 0
    fee_note: str | None = Field(default=None, max_length=500)
    documents: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    form_schema: dict[str, Any] = json_field()
    # Names and code folded (no diacritics, lower case): searched with LIKE on both databases.
    search_text: str = Field(max_length=1000)
    active: bool = True


class Dossier(SQLModel, table=True):
    __tablename__ = "dossiers"
    __table_args__ = (
        # The staff queue: a ward's dossiers by status, newest first (cursor = id, UUIDv7).
        sa.Index("ix_dossiers_agency_status_id", "agency_code", "status", "id"),
        sa.Index("ix_dossiers_agency_id", "agency_code", "id"),
        # Overdue look-ups: a ward's open dossiers by deadline, most overdue first. Partial, so
        # it holds only the (few) dossiers whose clock runs.
        sa.Index(
            "ix_dossiers_open_due",
            "agency_code",
            "due_at",
            "id",
            postgresql_where=sa.text("status IN ('received', 'in_progress')"),
            sqlite_where=sa.text("status IN ('received', 'in_progress')"),
        ),
        # Supplements awaited past their deadline (the periodic stop): few rows, partial.
        sa.Index(
            "ix_dossiers_supplement_due",
            "supplement_due_at",
            postgresql_where=sa.text("status = 'supplement_requested'"),
            sqlite_where=sa.text("status = 'supplement_requested'"),
        ),
        sa.Index("ix_dossiers_citizen_id", "citizen_id", "id"),
        sa.Index("ix_dossiers_agency_period", "agency_code", "period"),
    )

    id: uuid.UUID = id_field()
    code: str = Field(max_length=40, unique=True)
    procedure_code: str = Field(foreign_key="procedures.code", max_length=32, index=True)
    citizen_id: uuid.UUID = Field(foreign_key="users.id")
    # The receiving agency: the chosen ward, or the province for province-level procedures.
    agency_code: str = Field(foreign_key="admin_units.code", max_length=32)
    status: str = Field(max_length=32)
    form: dict[str, Any] = json_field()
    applicant_name: str | None = Field(default=None, max_length=200)
    applicant_phone_last4: str | None = Field(default=None, max_length=4)
    period: str = Field(max_length=7)  # YYYY-MM (local) of submission, for statistics
    submitted_at: datetime = utc_field(default_now=True)
    received_at: datetime | None = utc_field(nullable=True)
    received_by_id: uuid.UUID | None = Field(default=None)
    assignee_id: uuid.UUID | None = Field(default=None, index=True)
    # Appointment shown to the citizen (moves with pauses and extensions).
    due_at: datetime | None = utc_field(nullable=True)
    # The legal deadline: moves with pauses, never with extensions; timeliness is judged on it.
    legal_due_at: datetime | None = utc_field(nullable=True)
    paused_at: datetime | None = utc_field(nullable=True)
    paused_workdays: int = 0
    supplement_requests: int = 0
    supplement_note: str | None = Field(default=None, max_length=2000)
    supplement_documents: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # Until when the citizen may provide the supplement (close of business, local).
    supplement_due_at: datetime | None = utc_field(nullable=True)
    extensions: int = 0
    resolved_at: datetime | None = utc_field(nullable=True)
    processing_days: int | None = None
    timeliness: str | None = Field(default=None, max_length=16)  # early | on_time | late
    outcome_note: str | None = Field(default=None, max_length=2000)
    outcome_reasons: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    result_media_id: uuid.UUID | None = Field(default=None, foreign_key="media_objects.id")
    returned_at: datetime | None = utc_field(nullable=True)
    closed_at: datetime | None = utc_field(nullable=True)
    rating: int | None = None
    rating_comment: str | None = Field(default=None, max_length=1000)
    rated_at: datetime | None = utc_field(nullable=True)
    updated_at: datetime = utc_field(default_now=True)


class DossierDocument(SQLModel, table=True):
    __tablename__ = "dossier_documents"

    id: uuid.UUID = id_field()
    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", index=True, ondelete="CASCADE")
    document_code: str = Field(max_length=64)
    media_id: uuid.UUID = Field(foreign_key="media_objects.id")
    stage: str = Field(max_length=16)  # submission | supplement | result
    added_by_id: uuid.UUID
    added_at: datetime = utc_field(default_now=True)


class DossierEvent(SQLModel, table=True):
    """The timeline: every transition with who, when, why."""

    __tablename__ = "dossier_events"
    __table_args__ = (sa.Index("ix_dossier_events_dossier_at", "dossier_id", "at"),)

    id: uuid.UUID = id_field()
    dossier_id: uuid.UUID = Field(foreign_key="dossiers.id", ondelete="CASCADE")
    at: datetime = utc_field(default_now=True)
    actor_id: uuid.UUID | None = None
    actor_role: str = Field(max_length=32)
    action: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    note: str | None = Field(default=None, max_length=2000)
    data: dict[str, Any] = json_field()


class DossierCounter(SQLModel, table=True):
    """Last number given per receiving agency and local day; bumped atomically in the
    submitting transaction, so a rolled-back submission leaves no gap."""

    __tablename__ = "dossier_counters"

    agency_code: str = Field(primary_key=True, max_length=32)
    day: str = Field(primary_key=True, max_length=6)  # yymmdd
    last: int = 0


class DossierIdempotencyKey(SQLModel, table=True):
    __tablename__ = "dossier_idempotency_keys"

    citizen_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    dossier_id: uuid.UUID | None = Field(
        default=None, foreign_key="dossiers.id", ondelete="CASCADE"
    )
    created_at: datetime = utc_field(default_now=True)
