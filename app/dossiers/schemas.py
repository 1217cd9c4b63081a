"""Request and response models of the dossiers API (never the tables)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.dossiers.workflow import STAFF_ACTIONS, Status

StaffAction = Literal[STAFF_ACTIONS]  # type: ignore[valid-type]


class RequiredDocument(BaseModel):
    code: str = Field(examples=["giay_chung_sinh"])
    name: str = Field(examples=["Giấy chứng sinh"])
    name_en: str = Field(examples=["Medical birth certificate"])
    required: bool
    formats: list[str] = Field(examples=[["application/pdf", "image/jpeg", "image/png"]])
    max_bytes: int = Field(examples=[5242880])


class ProcedureSummary(BaseModel):
    code: str = Field(examples=["1.001193"])
    name: str = Field(examples=["Đăng ký khai sinh"])
    name_en: str = Field(examples=["Birth registration"])
    field: str = Field(examples=["Hộ tịch"])
    field_en: str = Field(examples=["Civil status"])
    online_level: Literal["full", "partial"]
    competent_level: Literal["ward", "province"]
    processing_days: int = Field(examples=[1], description="Working days from valid receipt")
    fee_vnd: int = Field(examples=[0])


class ProcedureOut(ProcedureSummary):
    fee_note: str | None = None
    documents: list[RequiredDocument]
    form_schema: dict[str, Any] = Field(description="JSON Schema (2020-12) of the form")


class AttachmentIn(BaseModel):
    document_code: str = Field(max_length=64, examples=["giay_chung_sinh"])
    media_id: uuid.UUID


class DossierCreate(BaseModel):
    procedure_code: str = Field(max_length=32, examples=["1.001193"])
    ward_code: str = Field(
        max_length=32, examples=["TNG-PDP"], description="The receiving ward (any ward may receive)"
    )
    form: dict[str, Any] = Field(default_factory=dict)
    documents: list[AttachmentIn] = Field(default_factory=list, max_length=30)


class SupplementIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)
    form: dict[str, Any] | None = Field(default=None, description="The whole corrected form")
    documents: list[AttachmentIn] = Field(default_factory=list, max_length=30)


class WithdrawIn(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


class RatingIn(BaseModel):
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=1000)


class TransitionIn(BaseModel):
    action: StaffAction
    note: str | None = Field(default=None, max_length=2000)
    reasons: list[str] | None = Field(default=None, max_length=20)
    assignee_id: uuid.UUID | None = None
    result_media_id: uuid.UUID | None = None
    apology: str | None = Field(default=None, max_length=4000)
    new_due_date: date | None = None
    requested_documents: list[str] | None = Field(default=None, max_length=20)


class DocumentOut(BaseModel):
    document_code: str
    media_id: uuid.UUID
    stage: str
    content_type: str
    size_bytes: int
    added_at: datetime


class EventOut(BaseModel):
    at: datetime
    action: str
    label: str
    from_status: str | None
    to_status: str
    actor_role: str
    actor_id: uuid.UUID | None = Field(default=None, description="Shown to staff only")
    note: str | None
    data: dict[str, Any]


class DossierSummary(BaseModel):
    code: str = Field(examples=["TNG-PDP-270203-0001"])
    procedure_code: str
    procedure_name: str
    agency_code: str
    status: Status
    submitted_at: datetime
    received_at: datetime | None
    due_at: datetime | None = Field(description="Appointment date for the result")
    timeliness: Literal["early", "on_time", "late"] | None
    overdue: bool
    paused: bool


class DossierOut(DossierSummary):
    form: dict[str, Any]
    documents: list[DocumentOut]
    legal_due_at: datetime | None
    assignee_id: uuid.UUID | None = Field(description="Shown to staff only")
    supplement_note: str | None
    supplement_documents: list[str]
    supplement_due_at: datetime | None = Field(
        description="While a supplement is awaited: until when the citizen may provide it; "
        "after that processing is stopped"
    )
    outcome_note: str | None
    outcome_reasons: list[str]
    result_media_id: uuid.UUID | None
    processing_days: int | None
    rating: int | None
    rating_comment: str | None
    allowed_actions: list[str]
    timeline: list[EventOut]


class StaffDossierOut(DossierOut):
    citizen_id: uuid.UUID
    applicant_name: str | None


class DossierPage(BaseModel):
    items: list[DossierSummary]
    next_cursor: str | None


class PublicStatus(BaseModel):
    code: str
    procedure_name: str
    procedure_name_en: str
    agency_code: str
    status: Status
    submitted_at: datetime
    received_at: datetime | None
    due_at: datetime | None
    timeliness: Literal["early", "on_time", "late"] | None


class StatsRow(BaseModel):
    agency_code: str
    period: str = Field(examples=["2027-02"])
    submitted: int
    received: int
    resolved: int
    on_time: int
    on_time_rate: float | None
    average_processing_days: float | None
    ratings: int
    satisfaction: float | None = Field(description="Average rating, 1 to 5")


class StatsOut(BaseModel):
    rows: list[StatsRow]
